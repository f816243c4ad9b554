//! Resource limits of document intake, with defaults safe for a 24 GiB machine.

use serde::{Deserialize, Serialize};

/// Default `max_input_bytes`: 512 MiB.
pub const DEFAULT_MAX_INPUT_BYTES: u64 = 512 * 1024 * 1024;
/// Default `max_pages`.
pub const DEFAULT_MAX_PAGES: usize = 5_000;
/// Default `max_page_pixels`: 40 megapixels (A0 at 144 dpi is ~32 MP), 120 MB as RGB.
pub const DEFAULT_MAX_PAGE_PIXELS: u64 = 40_000_000;
/// Default `max_image_pixels`: 200 megapixels (800 MB as RGBA8 while decoding).
pub const DEFAULT_MAX_IMAGE_PIXELS: u64 = 200_000_000;
/// Default `max_stream_bytes`: 256 MiB, above any real page image (an A3 page scanned at 600
/// dpi in colour is 210 MB) and far below what a bomb asks for.
pub const DEFAULT_MAX_STREAM_BYTES: u64 = 256 * 1024 * 1024;
/// Default `max_worker_memory_mb`: 4 GiB of address space for one pdfium worker (a page at
/// `max_page_pixels` is 160 MB as a bitmap; the rest is headroom for pdfium's own caches).
pub const DEFAULT_MAX_WORKER_MEMORY_MB: u64 = 4096;
/// Default `page_timeout_secs`.
pub const DEFAULT_PAGE_TIMEOUT_SECS: u64 = 120;
/// Bytes per pixel the image decoder may need at most (RGBA, 16 bits per channel).
const MAX_DECODE_BYTES_PER_PIXEL: u64 = 8;

/// Limits on what one document may cost. Errors name the limit and the value that broke it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest input accepted, in bytes.
    pub max_input_bytes: u64,
    /// Most pages a document may have (the whole document, not the selection).
    pub max_pages: usize,
    /// Most pixels of one rendered page; larger pages are rendered at a lower dpi to fit.
    pub max_page_pixels: u64,
    /// Most pixels an input image may claim; larger ones are refused before decoding.
    pub max_image_pixels: u64,
    /// Longest time pdfium may spend on one page before the worker is killed.
    pub page_timeout_secs: u64,
    /// Most bytes one compressed PDF stream may inflate to; larger ones make the document fail
    /// before pdfium reads it (a decompression bomb). 0 = no check.
    pub max_stream_bytes: u64,
    /// Address-space limit of each pdfium worker process, in MiB (`RLIMIT_AS`); a document
    /// that needs more fails and the worker is restarted. 0 = no limit.
    pub max_worker_memory_mb: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_input_bytes: DEFAULT_MAX_INPUT_BYTES,
            max_pages: DEFAULT_MAX_PAGES,
            max_page_pixels: DEFAULT_MAX_PAGE_PIXELS,
            max_image_pixels: DEFAULT_MAX_IMAGE_PIXELS,
            page_timeout_secs: DEFAULT_PAGE_TIMEOUT_SECS,
            max_stream_bytes: DEFAULT_MAX_STREAM_BYTES,
            max_worker_memory_mb: DEFAULT_MAX_WORKER_MEMORY_MB,
        }
    }
}

impl Limits {
    /// The `image` crate's decoder limits matching these (a second line of defence after the
    /// header check).
    pub fn image_limits(&self) -> image::Limits {
        let side = u32::try_from(self.max_image_pixels).unwrap_or(u32::MAX);
        let mut l = image::Limits::default();
        l.max_image_width = Some(side);
        l.max_image_height = Some(side);
        l.max_alloc = Some(self.max_image_pixels.saturating_mul(MAX_DECODE_BYTES_PER_PIXEL));
        l
    }

    /// The scale factor (<= 1) that brings a `width` x `height` pixel page under
    /// `max_page_pixels`.
    pub fn page_fit(&self, width: f64, height: f64) -> f64 {
        let pixels = width * height;
        if pixels <= self.max_page_pixels as f64 || pixels <= 0.0 {
            1.0
        } else {
            (self.max_page_pixels as f64 / pixels).sqrt()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_fit() {
        let l: Limits = serde_json::from_str(r#"{"max_pages": 3}"#).unwrap();
        assert_eq!(l.max_pages, 3);
        assert_eq!(l.max_input_bytes, DEFAULT_MAX_INPUT_BYTES);
        assert!(serde_json::from_str::<Limits>(r#"{"max_pagez": 3}"#).is_err());
        let l = Limits { max_page_pixels: 100, ..Limits::default() };
        assert_eq!(l.page_fit(10.0, 10.0), 1.0);
        let s = l.page_fit(20.0, 20.0);
        assert!((s - 0.5).abs() < 1e-9);
    }
}
