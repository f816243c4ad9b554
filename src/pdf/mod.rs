//! Document intake: PDFs rendered by pdfium (in a crash-isolated worker process) and images
//! loaded directly, both turned into RGB page images.

pub mod selection;

pub use selection::PageSelection;

/// Default render resolution, as DeepSeek-OCR's official PDF script uses.
pub const DEFAULT_DPI: f32 = 144.0;
