//! Structured documents: the grounding parser, the document model and its renderers.
//!
//! ```text
//! raw model text ──grounding──▶ pieces ──structure──▶ Block ──▶ Page ──▶ Document ──render──▶ md/json/html/hocr/txt/pdf
//! ```
//!
//! Callers (the batch CLI, the server) build a [`Document`] from one [`PageInput`] per page,
//! optionally run the reversible post-processing steps ([`Document::hide_headers_footers`],
//! [`Document::merge_continued_tables`]) and the language stage ([`annotate`]), then call
//! [`render`].
//!
//! ```no_run
//! use docseek::doc::{render, Document, Format, PageInput, PixelSize, PointSize, RenderOptions};
//! let raw = "<|ref|>title<|/ref|><|det|>[[100, 40, 900, 80]]<|/det|>\n# Hello";
//! let px = PixelSize { width: 1224, height: 1584 };
//! let doc = Document::new(None, [PageInput::from_raw(1, px, PointSize::from_pixels(px, 144.0), raw)]);
//! let md = render(&doc, Format::Markdown, &RenderOptions::default()).unwrap();
//! assert_eq!(md.text(), "# Hello\n");
//! ```

pub mod block;
pub mod document;
pub mod geometry;
pub mod grounding;
pub mod languages;
pub mod math;
pub mod postprocess;
pub mod render;
pub mod repetition;
pub mod structure;
pub mod table;

pub use block::{
    Block, BlockFlags, BlockKind, BlockRef, Language, LanguageAlternative, LanguageRun, Running, Warning, WarningCode,
};
pub use document::{Document, Page, PageInput};
pub use geometry::{BlockBox, PixelSize, PointBox, PointSize};
pub use languages::{annotate, annotate_with_hints, DocumentLanguage};
pub use math::MathDelimiters;
pub use render::{render, ExtraFile, Format, RenderError, RenderOptions, Rendered};
pub use table::{Cell, Table};
