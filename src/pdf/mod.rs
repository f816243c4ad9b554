//! Document intake: PDFs rendered by pdfium in a crash-isolated worker process, and images
//! (PNG, JPEG, TIFF incl. multi-page, WebP, BMP, GIF) decoded directly; both come out as RGB
//! page images, one page at a time.
//!
//! # Using it
//!
//! ```no_run
//! use std::ops::ControlFlow;
//! use docseek::pdf::{DocumentSource, Rasterizer, RasterizerConfig, RenderOptions};
//!
//! # fn main() -> Result<(), docseek::pdf::PdfError> {
//! // One per process; cheap to clone, Send + Sync (an Arc inside).
//! let raster = Rasterizer::new(RasterizerConfig::default())?;
//! let opts = RenderOptions { dpi: 144.0, pages: Some("1-3".parse().unwrap()), ..Default::default() };
//!
//! // Either iterate: `open` returns as soon as the document is open (page count and sizes known),
//! // then pages stream in while you consume them (pdfium renders ahead by at most one page).
//! let mut doc = raster.open(&DocumentSource::path("samples/en_tracemonkey_p1.pdf"), &opts)?;
//! println!("{} pages, rendering {}", doc.info().page_count, doc.info().selected.len());
//! for page in &mut doc {
//!     let page = page?; // a crashed worker or a bad page ends the document with an error
//!     println!("page {} is {}x{} px", page.index + 1, page.image.width(), page.image.height());
//! }
//!
//! // Or use a callback; return ControlFlow::Break(()) to stop early (the worker moves on).
//! let info = raster.render(&DocumentSource::path("samples/en_tracemonkey_p1.pdf"), &opts, |page| {
//!     println!("{}", page.index);
//!     ControlFlow::Continue(())
//! })?;
//! # let _ = info; Ok(()) }
//! ```
//!
//! Dropping a [`Document`] half-way is fine: the worker closes it and takes the next job.
//!
//! # How it works
//!
//! * The content type is sniffed from the bytes ([`sniff`]), never taken from the file name.
//! * Images are decoded in the calling thread with EXIF/TIFF orientation applied and the size
//!   checked *before* decoding ([`Limits::max_image_pixels`]); they need no pdfium.
//! * PDFs go to a pool of owner threads (one by default, [`RasterizerConfig::workers`]); each
//!   owns one `docseek pdf-worker` process (pdfium is not thread-safe and may crash on hostile
//!   input), spoken to over stdin/stdout with length-prefixed frames ([`protocol`]). If the
//!   worker dies or hangs, the document in flight fails with [`PdfError::WorkerCrashed`] or
//!   [`PdfError::WorkerTimeout`], a fresh worker is started, and other documents go on.
//! * libpdfium is searched as [`library`] documents (`--pdfium-lib`, `DOCSEEK_PDFIUM_LIB`, next to
//!   the executable, `vendor/pdfium/`, system); when it is missing, opening a PDF fails with
//!   [`PdfError::PdfiumMissing`], whose message says to run `scripts/setup.sh`.
//! * Pages larger than [`Limits::max_page_pixels`] are rendered at a lower dpi to fit
//!   ([`RenderedPage::dpi`] says which).
//!
//! Coordinates: page sizes and text boxes are in PDF points (1/72 inch), origin at the bottom
//! left of the page as rendered (after /Rotate); images are `image::RgbImage`, origin top left.

pub mod error;
pub mod image_input;
pub mod library;
pub mod limits;
pub mod protocol;
pub mod rasterizer;
pub mod selection;
pub mod sniff;
pub mod worker;

use image::RgbImage;
use serde::{Deserialize, Serialize};

pub use error::PdfError;
pub use library::PdfiumLibrary;
pub use limits::Limits;
pub use rasterizer::{Document, Rasterizer, RasterizerConfig};
pub use selection::PageSelection;
pub use sniff::{sniff, DocumentKind, DocumentSource};

/// Default render resolution, as DeepSeek-OCR's official PDF script uses.
pub const DEFAULT_DPI: f32 = 144.0;
/// PDF user-space units per inch.
pub const POINTS_PER_INCH: f32 = 72.0;
/// Lowest and highest dpi accepted.
pub const DPI_RANGE: std::ops::RangeInclusive<f32> = 18.0..=1200.0;

/// How to render one document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RenderOptions {
    /// Resolution of PDF pages in dots per inch (images keep their pixels; this is only their
    /// nominal dpi for point sizes).
    pub dpi: f32,
    /// Pages to render (default: all).
    pub pages: Option<PageSelection>,
    /// Password of an encrypted PDF.
    pub password: Option<String>,
    /// Also extract the PDF's native text layer with character boxes.
    pub text: bool,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions { dpi: DEFAULT_DPI, pages: None, password: None, text: false }
    }
}

impl From<&crate::options::OcrOptions> for RenderOptions {
    fn from(o: &crate::options::OcrOptions) -> Self {
        RenderOptions { dpi: o.dpi, pages: o.pages.clone(), password: o.password.clone(), text: false }
    }
}

/// A page size in PDF points.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PageSize {
    /// Width in points.
    pub width_pt: f32,
    /// Height in points.
    pub height_pt: f32,
}

/// What an opened document holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentInfo {
    /// PDF or which image format (sniffed).
    pub kind: DocumentKind,
    /// Pages in the whole document.
    pub page_count: usize,
    /// Size of every page, in points (for images: pixels at the nominal dpi).
    pub page_sizes: Vec<PageSize>,
    /// The 0-based pages that will be rendered, ascending (the selection applied).
    pub selected: Vec<usize>,
}

/// A rectangle in PDF points, origin bottom-left (`bottom < top`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PtRect {
    /// Left edge.
    pub left: f32,
    /// Bottom edge.
    pub bottom: f32,
    /// Right edge.
    pub right: f32,
    /// Top edge.
    pub top: f32,
}

/// One character of a PDF's native text layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextChar {
    /// The character (Unicode as the PDF maps it: a hint, not ground truth, for complex scripts).
    pub c: char,
    /// Tight glyph box in points.
    pub bbox: PtRect,
    /// True for characters pdfium inserted (spaces, line breaks) that are not in the content.
    pub generated: bool,
}

/// A page's native text layer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TextLayer {
    /// The page text in content order, with line breaks.
    pub text: String,
    /// Every character with its box (same order as `text`'s characters, roughly).
    pub chars: Vec<TextChar>,
}

/// One rendered page.
#[derive(Debug, Clone)]
pub struct RenderedPage {
    /// 0-based page index in the document.
    pub index: usize,
    /// The page as RGB pixels.
    pub image: RgbImage,
    /// Page width in points.
    pub width_pt: f32,
    /// Page height in points.
    pub height_pt: f32,
    /// The resolution actually used (lower than asked when the page hit `max_page_pixels`).
    pub dpi: f32,
    /// The native text layer, when asked for and the document is a PDF.
    pub text: Option<TextLayer>,
}

impl RenderedPage {
    /// Pixel position (origin top-left) of a point in PDF points (origin bottom-left).
    pub fn pt_to_px(&self, x_pt: f32, y_pt: f32) -> (f32, f32) {
        let sx = self.image.width() as f32 / self.width_pt;
        let sy = self.image.height() as f32 / self.height_pt;
        (x_pt * sx, (self.height_pt - y_pt) * sy)
    }

    /// PDF-point position (origin bottom-left) of a pixel position (origin top-left).
    pub fn px_to_pt(&self, x_px: f32, y_px: f32) -> (f32, f32) {
        let sx = self.width_pt / self.image.width() as f32;
        let sy = self.height_pt / self.image.height() as f32;
        (x_px * sx, self.height_pt - y_px * sy)
    }
}

/// Checks a dpi value against [`DPI_RANGE`].
pub fn check_dpi(dpi: f32) -> Result<f32, String> {
    if DPI_RANGE.contains(&dpi) {
        Ok(dpi)
    } else {
        Err(format!("dpi {dpi} is outside {}..={}", DPI_RANGE.start(), DPI_RANGE.end()))
    }
}
