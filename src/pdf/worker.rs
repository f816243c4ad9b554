//! The worker side of the rasterizer: binds pdfium, then serves [`Request`]s from a pipe until
//! the pipe closes. It runs in its own process (`docseek pdf-worker`) so that a pdfium crash on a
//! hostile PDF takes down only the worker, never the batch or the server.

use std::io::{Read, Write};
use std::path::Path;

use pdfium_render::prelude::*;

use super::protocol::{read_frame, write_frame, Request, Response, CRASH_AFTER_PAGES_ENV, HANG_AFTER_PAGES_ENV};
use super::{Limits, PageSize, PdfError, PtRect, TextChar, TextLayer, POINTS_PER_INCH};

/// Binds libpdfium at `library` and answers requests from `input` on `output` until `input`
/// ends. Errors about one document are answered, not returned; the `Err` of this function is
/// for a broken pipe or a library that cannot be loaded (after telling the parent).
pub fn serve(library: &Path, mut input: impl Read, mut output: impl Write) -> std::io::Result<()> {
    let bindings = match Pdfium::bind_to_library(library) {
        Ok(b) => b,
        Err(e) => {
            let error = PdfError::PdfiumUnloadable { path: library.to_path_buf(), reason: pdfium_reason(&e) };
            write_frame(&mut output, &Response::Error { error: error.clone() }, &[])?;
            return Err(std::io::Error::other(error.to_string()));
        }
    };
    let pdfium = Pdfium::new(bindings);
    write_frame(&mut output, &Response::Ready, &[])?;

    let test_hook = |name: &str| -> Option<usize> { std::env::var(name).ok().and_then(|v| v.parse().ok()) };
    let crash_after = test_hook(CRASH_AFTER_PAGES_ENV);
    let hang_after = test_hook(HANG_AFTER_PAGES_ENV);
    let mut rendered = 0usize;
    let mut doc: Option<PdfDocument<'_>> = None;
    while let Some((req, payload)) = read_frame::<Request>(&mut input)? {
        let (resp, pixels) = match req {
            Request::Open { path, password, max_pages, max_stream_bytes } => {
                doc = None;
                let source = OpenSource { path: path.as_deref(), bytes: payload, max_stream_bytes };
                match open(&pdfium, source, password.as_deref(), max_pages) {
                    Ok((d, page_sizes)) => {
                        doc = Some(d);
                        (Response::Opened { page_sizes }, Vec::new())
                    }
                    Err(error) => (Response::Error { error }, Vec::new()),
                }
            }
            Request::Render { index, dpi, max_page_pixels, text } => {
                if crash_after.is_some_and(|n| rendered >= n) {
                    eprintln!("docseek pdf-worker: {CRASH_AFTER_PAGES_ENV} reached, aborting on purpose");
                    std::process::abort();
                }
                if hang_after.is_some_and(|n| rendered >= n) {
                    eprintln!("docseek pdf-worker: {HANG_AFTER_PAGES_ENV} reached, hanging on purpose");
                    loop {
                        std::thread::park();
                    }
                }
                let limits = Limits { max_page_pixels, ..Limits::default() };
                match doc.as_ref() {
                    None => (Response::Error { error: not_open() }, Vec::new()),
                    Some(d) => match render(d, index, dpi, &limits, text) {
                        Ok((resp, px)) => {
                            rendered += 1;
                            (resp, px)
                        }
                        Err(error) => (Response::Error { error }, Vec::new()),
                    },
                }
            }
            Request::Close => {
                doc = None;
                (Response::Closed, Vec::new())
            }
        };
        write_frame(&mut output, &resp, &pixels)?;
    }
    Ok(())
}

/// Bytes per RGB pixel.
const RGB_BYTES: usize = 3;

fn not_open() -> PdfError {
    PdfError::RenderFailed { page: 0, reason: "no document is open in the worker".into() }
}

/// What to open: a file, or the bytes sent with the request.
struct OpenSource<'p> {
    path: Option<&'p Path>,
    bytes: Vec<u8>,
    max_stream_bytes: u64,
}

fn open<'a>(
    pdfium: &'a Pdfium,
    source: OpenSource<'_>,
    password: Option<&str>,
    max_pages: usize,
) -> Result<(PdfDocument<'a>, Vec<PageSize>), PdfError> {
    let OpenSource { path, bytes, max_stream_bytes } = source;
    // The bomb guard reads the file once; pdfium then reads it itself, lazily.
    match path {
        Some(p) => {
            let bytes = std::fs::read(p).map_err(|e| PdfError::from_io(p, &e))?;
            super::stream_guard::check_streams(&bytes, max_stream_bytes)?;
        }
        None => super::stream_guard::check_streams(&bytes, max_stream_bytes)?,
    }
    let loaded = match path {
        Some(p) => pdfium.load_pdf_from_file(p, password),
        None => pdfium.load_pdf_from_byte_vec(bytes, password),
    };
    let doc = loaded.map_err(|e| load_error(&e, password, path))?;
    let count = doc.pages().len().max(0) as usize;
    if count == 0 {
        return Err(PdfError::NoPages);
    }
    if count > max_pages {
        return Err(PdfError::TooManyPages { pages: count, limit: max_pages });
    }
    let mut sizes = Vec::with_capacity(count);
    for i in 0..count {
        let r = doc.pages().page_size(i as PdfPageIndex).map_err(|e| PdfError::CorruptPdf {
            reason: format!("page {} has no size: {}", i + 1, pdfium_reason(&e)),
        })?;
        sizes.push(PageSize { width_pt: r.width().value, height_pt: r.height().value });
    }
    Ok((doc, sizes))
}

fn load_error(e: &PdfiumError, password: Option<&str>, path: Option<&Path>) -> PdfError {
    match e {
        PdfiumError::PdfiumLibraryInternalError(PdfiumInternalError::PasswordError) => {
            if password.is_some_and(|p| !p.is_empty()) {
                PdfError::WrongPassword
            } else {
                PdfError::PasswordRequired
            }
        }
        PdfiumError::PdfiumLibraryInternalError(PdfiumInternalError::SecurityError) => PdfError::UnsupportedSecurity,
        PdfiumError::IoError(io) => match path {
            Some(p) => PdfError::from_io(p, io),
            None => PdfError::CorruptPdf { reason: io.to_string() },
        },
        other => PdfError::CorruptPdf { reason: pdfium_reason(other) },
    }
}

/// A short reason for a pdfium error, in words (never a debug dump of pdfium-render's types).
fn pdfium_reason(e: &PdfiumError) -> String {
    use PdfiumInternalError as I;
    match e {
        PdfiumError::PdfiumLibraryInternalError(internal) => match internal {
            I::FormatError => "pdfium cannot parse it (format error)".into(),
            I::FileError => "pdfium cannot read it (file error)".into(),
            I::PasswordError => "it is encrypted and the password is missing or wrong".into(),
            I::SecurityError => "it uses an unsupported security handler".into(),
            I::PageError => "the page is missing or damaged".into(),
            _ => "pdfium gave up on it without saying why (damaged or unsupported content)".into(),
        },
        PdfiumError::LoadLibraryError(l) => l.to_string(),
        PdfiumError::IoError(io) => io.to_string(),
        other => {
            // pdfium-render's remaining variants are unit-like names such as `PageIndexOutOfBounds`:
            // spell the name out in words.
            let name = format!("{other:?}");
            let word_start = |c: char| c.is_ascii_uppercase();
            let mut words = String::new();
            for (i, c) in name.chars().take_while(|c| c.is_ascii_alphanumeric()).enumerate() {
                if i > 0 && word_start(c) {
                    words.push(' ');
                }
                words.push(c.to_ascii_lowercase());
            }
            format!("pdfium: {words}")
        }
    }
}

fn render(
    doc: &PdfDocument<'_>,
    index: usize,
    dpi: f32,
    limits: &Limits,
    want_text: bool,
) -> Result<(Response, Vec<u8>), PdfError> {
    let fail = |reason: String| PdfError::RenderFailed { page: index + 1, reason };
    let page = doc.pages().get(index as PdfPageIndex).map_err(|e| fail(pdfium_reason(&e)))?;
    let (width_pt, height_pt) = (page.width().value, page.height().value);
    let scale = dpi / POINTS_PER_INCH;
    let fit = limits.page_fit(f64::from(width_pt * scale), f64::from(height_pt * scale)) as f32;
    let scale = scale * fit;
    // A 24-bit bitmap with pdfium's reversed byte order is RGB already (rows padded to 4 bytes);
    // cleared to white, annotations and form data drawn, as a viewer shows the page.
    let config = PdfRenderConfig::new()
        .scale_page_by_factor(scale)
        .set_format(PdfBitmapFormat::BGR)
        .set_reverse_byte_order(true);
    let bitmap = page.render_with_config(&config).map_err(|e| fail(pdfium_reason(&e)))?;
    let (w, h) = (bitmap.width().max(0) as usize, bitmap.height().max(0) as usize);
    if w == 0 || h == 0 {
        return Err(fail(format!("empty bitmap ({w}x{h})")));
    }
    let raw = bitmap.as_raw_bytes();
    let stride = raw.len() / h;
    let row = w * RGB_BYTES;
    if stride < row {
        return Err(fail(format!("bitmap stride {stride} too small for width {w}")));
    }
    let rgb = if stride == row {
        raw
    } else {
        let mut rgb = Vec::with_capacity(row * h);
        for line in raw.chunks_exact(stride) {
            rgb.extend_from_slice(&line[..row]);
        }
        rgb
    };
    let text = if want_text {
        Some(text_layer(&page).map_err(|e| fail(format!("text layer: {}", pdfium_reason(&e))))?)
    } else {
        None
    };
    let resp = Response::Page { index, width: w as u32, height: h as u32, width_pt, height_pt, dpi: dpi * fit, text };
    Ok((resp, rgb))
}

fn text_layer(page: &PdfPage<'_>) -> Result<TextLayer, PdfiumError> {
    let text = page.text()?;
    let mut chars = Vec::new();
    for ch in text.chars().iter() {
        let Some(c) = ch.unicode_char() else { continue };
        let generated = ch.is_generated().unwrap_or(false);
        let bbox = match ch.tight_bounds() {
            Ok(r) => {
                PtRect { left: r.left().value, bottom: r.bottom().value, right: r.right().value, top: r.top().value }
            }
            Err(_) => PtRect { left: 0.0, bottom: 0.0, right: 0.0, top: 0.0 },
        };
        chars.push(TextChar { c, bbox, generated });
    }
    Ok(TextLayer { text: text.all(), chars })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pdfium_errors_read_as_words_not_debug_dumps() {
        let unknown = PdfiumError::PdfiumLibraryInternalError(PdfiumInternalError::Unknown);
        let reason = pdfium_reason(&unknown);
        assert!(!reason.contains("PdfiumLibraryInternalError") && !reason.contains("Unknown"), "{reason}");
        assert!(reason.contains("damaged or unsupported"), "{reason}");
        let page = pdfium_reason(&PdfiumError::PageIndexOutOfBounds);
        assert_eq!(page, "pdfium: page index out of bounds");
        let format = pdfium_reason(&PdfiumError::PdfiumLibraryInternalError(PdfiumInternalError::FormatError));
        assert!(format.contains("format error"), "{format}");
    }
}
