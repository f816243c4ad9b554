//! The pipe protocol between the rasterizer and its `docseek pdf-worker` process.
//!
//! Each message is one frame: `u32` little-endian header length, the header as JSON, `u64`
//! little-endian payload length, the payload bytes (empty for most messages; the PDF bytes of an
//! in-memory `Open`, or the raw RGB pixels of a `Page`, row-major, no padding).

use std::io::{self, Read, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{PageSize, PdfError, TextLayer};

/// Largest header accepted (a text layer of a dense page is a few MB of JSON).
pub const MAX_HEADER_BYTES: u32 = 256 * 1024 * 1024;
/// Largest payload accepted (2 GiB: above any page `Limits` allows and any input we accept).
pub const MAX_PAYLOAD_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// Environment variable, honoured only by the worker: abort the process when asked for a page
/// after this many pages were rendered (for crash-isolation tests).
pub const CRASH_AFTER_PAGES_ENV: &str = "DOCSEEK_TEST_WORKER_CRASH_AFTER_PAGES";
/// Environment variable, honoured only by the worker: hang (sleep forever) when asked for a page
/// after this many pages were rendered (for page-timeout tests).
pub const HANG_AFTER_PAGES_ENV: &str = "DOCSEEK_TEST_WORKER_HANG_AFTER_PAGES";

/// Parent -> worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Open a PDF from `path`, or from the payload when `path` is `None`.
    Open {
        /// File to open.
        path: Option<PathBuf>,
        /// Password of an encrypted PDF.
        password: Option<String>,
        /// Refuse documents with more pages.
        max_pages: usize,
    },
    /// Render one page of the open document.
    Render {
        /// 0-based page index.
        index: usize,
        /// Requested dpi.
        dpi: f32,
        /// Scale down pages with more pixels.
        max_page_pixels: u64,
        /// Extract the text layer too.
        text: bool,
    },
    /// Close the open document.
    Close,
}

/// Worker -> parent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Response {
    /// Sent once at start: pdfium is bound.
    Ready,
    /// The document is open.
    Opened {
        /// Page sizes in points (their count is the page count).
        page_sizes: Vec<PageSize>,
    },
    /// A rendered page; the payload holds `width * height * 3` RGB bytes.
    Page {
        /// 0-based page index.
        index: usize,
        /// Pixel width.
        width: u32,
        /// Pixel height.
        height: u32,
        /// Page width in points.
        width_pt: f32,
        /// Page height in points.
        height_pt: f32,
        /// dpi used.
        dpi: f32,
        /// Text layer, when asked for.
        text: Option<TextLayer>,
    },
    /// The document is closed.
    Closed,
    /// The request failed.
    Error {
        /// Why.
        error: PdfError,
    },
}

/// Writes one frame.
pub fn write_frame<T: Serialize>(w: &mut impl Write, header: &T, payload: &[u8]) -> io::Result<()> {
    let json = serde_json::to_vec(header).map_err(io::Error::other)?;
    let len = u32::try_from(json.len()).map_err(|_| io::Error::other("frame header too large"))?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(&json)?;
    w.write_all(&(payload.len() as u64).to_le_bytes())?;
    w.write_all(payload)?;
    w.flush()
}

/// Reads one frame; `Ok(None)` on a clean end of stream before a frame starts.
pub fn read_frame<T: for<'de> Deserialize<'de>>(r: &mut impl Read) -> io::Result<Option<(T, Vec<u8>)>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len);
    if len > MAX_HEADER_BYTES {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame header of {len} bytes")));
    }
    let mut json = vec![0u8; len as usize];
    r.read_exact(&mut json)?;
    let header = serde_json::from_slice(&json).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let mut plen = [0u8; 8];
    r.read_exact(&mut plen)?;
    let plen = u64::from_le_bytes(plen);
    if plen > MAX_PAYLOAD_BYTES {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame payload of {plen} bytes")));
    }
    let mut payload = vec![0u8; plen as usize];
    r.read_exact(&mut payload)?;
    Ok(Some((header, payload)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_eof_is_clean() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &Request::Close, b"").unwrap();
        write_frame(&mut buf, &Response::Error { error: PdfError::NoPages }, b"xyz").unwrap();
        let mut r = &buf[..];
        let (a, p): (Request, _) = read_frame(&mut r).unwrap().unwrap();
        assert!(matches!(a, Request::Close) && p.is_empty());
        let (b, p): (Response, _) = read_frame(&mut r).unwrap().unwrap();
        assert!(matches!(b, Response::Error { error: PdfError::NoPages }));
        assert_eq!(p, b"xyz");
        assert!(read_frame::<Request>(&mut r).unwrap().is_none());
        // A frame cut short is an error, not a clean end.
        let mut cut = &buf[..6];
        assert!(read_frame::<Request>(&mut cut).is_err());
    }
}
