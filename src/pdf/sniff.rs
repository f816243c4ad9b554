//! Where a document comes from, and what it is: the content type is sniffed from the bytes,
//! never trusted from a file name or a client's declared type.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Limits, PdfError};

/// How many leading bytes sniffing looks at (PDF allows junk before `%PDF-` within 1 KiB).
pub const SNIFF_BYTES: usize = 1024;
const PDF_MAGIC: &[u8] = b"%PDF-";

/// A document to open: a file or bytes in memory (an upload).
#[derive(Debug, Clone)]
pub enum DocumentSource {
    /// A file on disk.
    Path(PathBuf),
    /// Bytes in memory; cheap to clone.
    Bytes(Arc<[u8]>),
}

impl DocumentSource {
    /// A file on disk.
    pub fn path(p: impl Into<PathBuf>) -> Self {
        DocumentSource::Path(p.into())
    }

    /// Bytes in memory.
    pub fn bytes(b: impl Into<Arc<[u8]>>) -> Self {
        DocumentSource::Bytes(b.into())
    }
}

/// What kind of document a source holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    /// A PDF, rendered by pdfium.
    Pdf,
    /// A PNG image.
    Png,
    /// A JPEG image.
    Jpeg,
    /// A TIFF image (possibly several pages).
    Tiff,
    /// A WebP image.
    Webp,
    /// A BMP image.
    Bmp,
    /// A GIF image (first frame).
    Gif,
}

impl DocumentKind {
    /// The `image` crate's format, for image kinds.
    pub fn image_format(self) -> Option<image::ImageFormat> {
        use image::ImageFormat as F;
        Some(match self {
            DocumentKind::Pdf => return None,
            DocumentKind::Png => F::Png,
            DocumentKind::Jpeg => F::Jpeg,
            DocumentKind::Tiff => F::Tiff,
            DocumentKind::Webp => F::WebP,
            DocumentKind::Bmp => F::Bmp,
            DocumentKind::Gif => F::Gif,
        })
    }

    /// A short display name ("PDF", "PNG", ...).
    pub fn name(self) -> &'static str {
        match self {
            DocumentKind::Pdf => "PDF",
            DocumentKind::Png => "PNG",
            DocumentKind::Jpeg => "JPEG",
            DocumentKind::Tiff => "TIFF",
            DocumentKind::Webp => "WebP",
            DocumentKind::Bmp => "BMP",
            DocumentKind::Gif => "GIF",
        }
    }
}

/// Sniffs the kind of a document from its first bytes.
pub fn sniff(head: &[u8]) -> Result<DocumentKind, PdfError> {
    use image::ImageFormat as F;
    if head.is_empty() {
        return Err(PdfError::Empty);
    }
    let window = &head[..head.len().min(SNIFF_BYTES)];
    if window.windows(PDF_MAGIC.len()).any(|w| w == PDF_MAGIC) {
        return Ok(DocumentKind::Pdf);
    }
    match image::guess_format(head) {
        Ok(F::Png) => Ok(DocumentKind::Png),
        Ok(F::Jpeg) => Ok(DocumentKind::Jpeg),
        Ok(F::Tiff) => Ok(DocumentKind::Tiff),
        Ok(F::WebP) => Ok(DocumentKind::Webp),
        Ok(F::Bmp) => Ok(DocumentKind::Bmp),
        Ok(F::Gif) => Ok(DocumentKind::Gif),
        Ok(other) => Err(PdfError::NotADocument { looks_like: format!("an unsupported {other:?} image") }),
        Err(_) => Err(PdfError::NotADocument { looks_like: describe(window) }),
    }
}

/// A guess at what non-document bytes are, for the error message.
fn describe(head: &[u8]) -> String {
    if head.starts_with(b"PK\x03\x04") {
        return "a ZIP archive (an Office document?)".into();
    }
    let text = match std::str::from_utf8(head) {
        Ok(t) => Some(t),
        // A multi-byte character cut at the window's end is still text.
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).ok(),
        Err(_) => None,
    };
    match text {
        Some(t) if t.chars().all(|c| !c.is_control() || c.is_whitespace()) => {
            let t = t.trim_start().to_ascii_lowercase();
            if t.starts_with("<!doctype html") || t.starts_with("<html") {
                "HTML text".into()
            } else if t.starts_with('<') {
                "XML or markup text".into()
            } else {
                "plain text".into()
            }
        }
        _ => {
            let hex: Vec<String> = head.iter().take(4).map(|b| format!("{b:02x}")).collect();
            format!("unknown binary data starting with {}", hex.join(" "))
        }
    }
}

/// A source checked against the limits and sniffed: what the rasterizer works from.
#[derive(Debug, Clone)]
pub(crate) struct Intake {
    pub kind: DocumentKind,
    pub data: DocumentSource,
}

impl Intake {
    /// Checks existence, size and content type, reading only the head of a file.
    pub fn inspect(source: &DocumentSource, limits: &Limits) -> Result<Intake, PdfError> {
        let kind = match source {
            DocumentSource::Path(path) => {
                let meta = std::fs::metadata(path).map_err(|e| PdfError::from_io(path, &e))?;
                if meta.is_dir() {
                    return Err(PdfError::IsDirectory { path: path.clone() });
                }
                if !meta.is_file() {
                    // A FIFO or a device reports 0 bytes and may block forever when read.
                    return Err(PdfError::NotAFile { path: path.clone() });
                }
                check_size(meta.len(), limits)?;
                let mut head = Vec::with_capacity(SNIFF_BYTES);
                std::fs::File::open(path)
                    .and_then(|f| f.take(SNIFF_BYTES as u64).read_to_end(&mut head))
                    .map_err(|e| PdfError::from_io(path, &e))?;
                sniff(&head)?
            }
            DocumentSource::Bytes(b) => {
                check_size(b.len() as u64, limits)?;
                sniff(b)?
            }
        };
        Ok(Intake { kind, data: source.clone() })
    }

    /// All the bytes (reads the file for path sources).
    pub fn read_all(&self) -> Result<Arc<[u8]>, PdfError> {
        match &self.data {
            DocumentSource::Bytes(b) => Ok(b.clone()),
            DocumentSource::Path(p) => std::fs::read(p).map(Into::into).map_err(|e| PdfError::from_io(p, &e)),
        }
    }

    /// The file path, for path sources.
    pub fn path(&self) -> Option<&Path> {
        match &self.data {
            DocumentSource::Path(p) => Some(p),
            DocumentSource::Bytes(_) => None,
        }
    }
}

fn check_size(bytes: u64, limits: &Limits) -> Result<(), PdfError> {
    if bytes == 0 {
        Err(PdfError::Empty)
    } else if bytes > limits.max_input_bytes {
        Err(PdfError::InputTooLarge { bytes, limit: limits.max_input_bytes })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_content() {
        assert_eq!(sniff(b"%PDF-1.7\n...").unwrap(), DocumentKind::Pdf);
        assert_eq!(sniff(b"junk\r\n%PDF-1.4").unwrap(), DocumentKind::Pdf);
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n0000").unwrap(), DocumentKind::Png);
        assert_eq!(sniff(b"\xff\xd8\xff\xe0").unwrap(), DocumentKind::Jpeg);
        assert_eq!(sniff(b"").unwrap_err(), PdfError::Empty);
        let e = sniff(b"Hello, this is a text file renamed to .pdf\n").unwrap_err();
        assert_eq!(e, PdfError::NotADocument { looks_like: "plain text".into() });
        let e = sniff(b"<!DOCTYPE html><html>").unwrap_err();
        assert!(e.to_string().contains("HTML"), "{e}");
        let e = sniff(b"\x00\x01\x02\x03\x04").unwrap_err();
        assert!(e.to_string().contains("00 01 02 03"), "{e}");
    }

    #[test]
    fn inspect_checks_paths_and_limits() {
        let dir = tempfile::tempdir().unwrap();
        let lim = Limits::default();
        let missing = DocumentSource::path(dir.path().join("nope.pdf"));
        assert!(matches!(Intake::inspect(&missing, &lim), Err(PdfError::NotFound { .. })));
        let d = DocumentSource::path(dir.path());
        assert!(matches!(Intake::inspect(&d, &lim), Err(PdfError::IsDirectory { .. })));
        let empty = dir.path().join("empty.png");
        std::fs::write(&empty, b"").unwrap();
        assert_eq!(Intake::inspect(&DocumentSource::path(&empty), &lim).unwrap_err(), PdfError::Empty);
        #[cfg(unix)]
        {
            let fifo = dir.path().join("pipe.pdf");
            let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
            // SAFETY: a plain libc call on a valid, NUL-terminated path.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            let e = Intake::inspect(&DocumentSource::path(&fifo), &lim).unwrap_err();
            assert_eq!(e, PdfError::NotAFile { path: fifo.clone() });
            assert!(e.to_string().ends_with("pipe.pdf is not a regular file"), "{e}");
        }
        let small = Limits { max_input_bytes: 4, ..lim };
        let e = Intake::inspect(&DocumentSource::bytes(b"%PDF-1.4".to_vec()), &small).unwrap_err();
        assert_eq!(e, PdfError::InputTooLarge { bytes: 8, limit: 4 });
    }
}
