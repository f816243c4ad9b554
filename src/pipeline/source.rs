//! Document intake for the pipeline: an input (path or bytes) opened as a [`PageSource`] that
//! renders one page at a time.
//!
//! This is a thin seam over the rasterizer (`crate::pdf`), so the pipeline does not depend on
//! how pages are produced.

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;

use image::RgbImage;

use super::report::DocumentError;
use crate::options::OcrOptions;

/// Images larger than this many pixels are refused (decompression bombs).
pub const MAX_IMAGE_PIXELS: u64 = 16_384 * 16_384;

/// Points per inch, for page sizes of images (rendered at the request's DPI).
const POINTS_PER_INCH: f32 = 72.0;

/// Where a document comes from.
#[derive(Debug, Clone)]
pub enum InputSource {
    /// A file on disk.
    Path(PathBuf),
    /// Bytes in memory (an upload).
    Bytes(Arc<[u8]>),
}

/// One rendered page.
#[derive(Debug, Clone)]
pub struct RenderedPage {
    /// The page image.
    pub image: Arc<RgbImage>,
    /// Page width in PDF points (images: pixels at the request's DPI).
    pub width_pt: f32,
    /// Page height in PDF points.
    pub height_pt: f32,
}

/// An opened document that renders pages on demand.
pub trait PageSource: Send {
    /// Pages in the document.
    fn page_count(&self) -> usize;

    /// Renders page `index` (0-based); the error is a one-line, user-facing message.
    fn render(&mut self, index: usize) -> Result<RenderedPage, String>;
}

/// Opens an input: PDFs through the rasterizer, images directly.
pub fn open(
    source: &InputSource,
    options: &OcrOptions,
) -> Result<Box<dyn PageSource>, DocumentError> {
    let bytes: Arc<[u8]> = match source {
        InputSource::Bytes(b) => b.clone(),
        InputSource::Path(p) => std::fs::read(p)
            .map_err(|e| DocumentError::Input(format!("cannot read {}: {e}", p.display())))?
            .into(),
    };
    if bytes.is_empty() {
        return Err(DocumentError::Input("empty file".into()));
    }
    if looks_like_pdf(&bytes) {
        return Err(DocumentError::Input(
            "PDF input needs the rasterizer, which is not built yet".into(),
        ));
    }
    let page = decode_image(&bytes, options.dpi)?;
    Ok(Box::new(ImageSource { page: Some(page) }))
}

/// Whether the bytes start like a PDF (`%PDF-` within the first KiB, as readers accept).
pub fn looks_like_pdf(bytes: &[u8]) -> bool {
    const PDF_HEADER_WINDOW: usize = 1024;
    let head = &bytes[..bytes.len().min(PDF_HEADER_WINDOW)];
    head.windows(5).any(|w| w == b"%PDF-")
}

/// Decodes an image with a pixel limit.
fn decode_image(bytes: &[u8], dpi: f32) -> Result<RenderedPage, DocumentError> {
    let reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| DocumentError::Input(format!("cannot read image: {e}")))?;
    if reader.format().is_none() {
        return Err(DocumentError::Input(
            "not a PDF or a supported image (PNG, JPEG, TIFF, WebP, GIF, BMP)".into(),
        ));
    }
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| DocumentError::Input(format!("corrupt image: {e}")))?;
    if w as u64 * h as u64 > MAX_IMAGE_PIXELS {
        return Err(DocumentError::Input(format!(
            "image too large: {w}x{h} pixels (limit {MAX_IMAGE_PIXELS} pixels)"
        )));
    }
    let reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| DocumentError::Input(format!("cannot read image: {e}")))?;
    let image = reader
        .decode()
        .map_err(|e| DocumentError::Input(format!("corrupt image: {e}")))?;
    let image = image.to_rgb8();
    let scale = POINTS_PER_INCH / dpi.max(1.0);
    Ok(RenderedPage {
        width_pt: image.width() as f32 * scale,
        height_pt: image.height() as f32 * scale,
        image: Arc::new(image),
    })
}

/// A single-page source over a decoded image.
struct ImageSource {
    page: Option<RenderedPage>,
}

impl PageSource for ImageSource {
    fn page_count(&self) -> usize {
        1
    }

    fn render(&mut self, index: usize) -> Result<RenderedPage, String> {
        if index != 0 {
            return Err(format!(
                "page {} out of range (an image has one page)",
                index + 1
            ));
        }
        self.page
            .take()
            .ok_or_else(|| "page already rendered".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_bytes(w: u32, h: u32) -> Vec<u8> {
        let mut out = Vec::new();
        RgbImage::from_pixel(w, h, image::Rgb([10, 20, 30]))
            .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn opens_images_and_rejects_garbage() {
        let opts = OcrOptions::default();
        let mut src = open(&InputSource::Bytes(png_bytes(30, 20).into()), &opts).unwrap();
        assert_eq!(src.page_count(), 1);
        let page = src.render(0).unwrap();
        assert_eq!(page.image.dimensions(), (30, 20));
        assert!((page.width_pt - 30.0 * 72.0 / opts.dpi).abs() < 1e-3);

        let err = open(&InputSource::Bytes(b"hello world".to_vec().into()), &opts)
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("not a PDF or a supported image"),
            "{err}"
        );
        let truncated = &png_bytes(30, 20)[..40];
        assert!(open(&InputSource::Bytes(truncated.to_vec().into()), &opts).is_err());
        assert!(open(&InputSource::Bytes(Vec::new().into()), &opts).is_err());
        let missing = open(&InputSource::Path("/nonexistent/x.png".into()), &opts)
            .err()
            .unwrap();
        assert!(missing.to_string().contains("cannot read"), "{missing}");
    }
}
