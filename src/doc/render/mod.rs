//! Renderers: one entry, [`render`], turns a [`Document`] into Markdown, JSON, standalone
//! HTML, hOCR, plain text or a searchable PDF, plus the extra files (cropped figures) the
//! caller should write next to it.

use std::collections::BTreeMap;
use std::sync::Arc;

use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::block::{Block, BlockKind};
use super::document::Document;
use super::math::MathDelimiters;
use super::table::Table;

mod figures;
mod glyphless_font;
mod hocr;
mod html;
mod json;
pub mod katex;
mod markdown;
mod pdf;
mod plain;
mod text_layout;

pub use figures::{figure_path, Figure};
pub use json::SCHEMA;

/// The official page separator of DeepSeek-OCR's PDF script (`{page}` is replaced by the
/// number of the page that follows).
pub const DEFAULT_PAGE_SEPARATOR: &str = "\n\n<--- Page Split --->\n\n";

/// Default folder (relative to the main output) for cropped figures.
pub const DEFAULT_FIGURE_DIR: &str = "figures";

/// Default JPEG quality of page images in searchable PDFs.
pub const DEFAULT_JPEG_QUALITY: u8 = 85;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Markdown (tables as GitHub Markdown when simple, HTML otherwise; LaTeX math).
    #[value(alias = "md")]
    #[serde(alias = "md")]
    Markdown,
    /// JSON, schema `docseek.document/1` (docs/json-schema.md).
    Json,
    /// One standalone HTML file (math rendered by an inlined KaTeX, figures inlined).
    Html,
    /// hOCR (HTML with `ocr_*` classes and boxes in pixels).
    Hocr,
    /// Plain text.
    #[value(alias = "txt")]
    #[serde(alias = "txt")]
    Text,
    /// A searchable PDF: the page images with an invisible, selectable text layer.
    Pdf,
}

impl Format {
    /// The usual file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Markdown => "md",
            Format::Json => "json",
            Format::Html => "html",
            Format::Hocr => "hocr",
            Format::Text => "txt",
            Format::Pdf => "pdf",
        }
    }

    /// The media type.
    pub fn mime(self) -> &'static str {
        match self {
            Format::Markdown => "text/markdown; charset=utf-8",
            Format::Json => "application/json",
            Format::Html => "text/html; charset=utf-8",
            Format::Hocr => "text/vnd.hocr+html; charset=utf-8",
            Format::Text => "text/plain; charset=utf-8",
            Format::Pdf => "application/pdf",
        }
    }
}

/// How to render.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// Text between pages in Markdown and plain text; `{page}` becomes the next page number.
    pub page_separator: String,
    /// Delimiters of formulas in Markdown and plain text.
    pub math: MathDelimiters,
    /// Folder (relative, `/`-separated) where cropped figures go and are linked from.
    pub figure_dir: String,
    /// Page images by page number: needed to crop figures and for the searchable PDF.
    pub page_images: BTreeMap<u32, Arc<RgbImage>>,
    /// Include blocks hidden by post-processing (running headers and footers).
    pub include_hidden: bool,
    /// Inline KaTeX in standalone HTML when the document has formulas.
    pub html_katex: bool,
    /// JPEG quality of page images in the searchable PDF (1–100).
    pub jpeg_quality: u8,
    /// Title of HTML/hOCR/PDF outputs (default: the document's source).
    pub title: Option<String>,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            page_separator: DEFAULT_PAGE_SEPARATOR.to_string(),
            math: MathDelimiters::default(),
            figure_dir: DEFAULT_FIGURE_DIR.to_string(),
            page_images: BTreeMap::new(),
            include_hidden: false,
            html_katex: true,
            jpeg_quality: DEFAULT_JPEG_QUALITY,
            title: None,
        }
    }
}

impl RenderOptions {
    /// Adds the image of page `number` (as the model saw it).
    pub fn with_page_image(mut self, number: u32, image: Arc<RgbImage>) -> Self {
        self.page_images.insert(number, image);
        self
    }

    /// Figures go to `<stem>_figures/` (the usual layout next to `<stem>.md`).
    pub fn with_figures_next_to(mut self, stem: &str) -> Self {
        self.figure_dir = format!("{stem}_figures");
        self
    }

    fn title_for(&self, doc: &Document) -> String {
        self.title.clone().or_else(|| doc.source.clone()).unwrap_or_else(|| "docseek document".to_string())
    }
}

/// A file to write next to the main output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraFile {
    /// Relative path, `/`-separated (e.g. `report_figures/page-1-fig-1.png`).
    pub path: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// A rendering: the main output and the extra files it links to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The format rendered.
    pub format: Format,
    /// The main output.
    pub content: Vec<u8>,
    /// Files the main output refers to (cropped figures), to write relative to it.
    pub files: Vec<ExtraFile>,
}

impl Rendered {
    /// The main output as text (lossy for PDF).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.content).into_owned()
    }
}

/// Why a rendering failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The format needs page images that were not given.
    #[error("{format:?} output needs the page image of page {page}")]
    MissingPageImage {
        /// The format.
        format: Format,
        /// The page without an image.
        page: u32,
    },
    /// Encoding an image failed.
    #[error("could not encode an image: {0}")]
    Image(#[from] image::ImageError),
    /// Serialising JSON failed.
    #[error("could not write JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Renders `doc` in `format`.
pub fn render(doc: &Document, format: Format, opts: &RenderOptions) -> Result<Rendered, RenderError> {
    let figures = figures::crop_figures(doc, opts)?;
    let (content, files) = match format {
        Format::Markdown => (markdown::render(doc, opts, &figures).into_bytes(), figures.files()),
        Format::Json => (json::render(doc, &figures)?, figures.files()),
        Format::Html => (html::render(doc, opts, &figures).into_bytes(), Vec::new()),
        Format::Hocr => (hocr::render(doc, opts).into_bytes(), Vec::new()),
        Format::Text => (plain::render(doc, opts).into_bytes(), Vec::new()),
        Format::Pdf => (pdf::render(doc, opts)?, Vec::new()),
    };
    Ok(Rendered { format, content, files })
}

/// Blocks of a page that a rendering includes.
fn visible<'a>(page: &'a super::document::Page, opts: &'a RenderOptions) -> impl Iterator<Item = &'a Block> + 'a {
    page.blocks.iter().filter(move |b| b.flags.continues.is_none() && (opts.include_hidden || !b.flags.hidden))
}

/// The table of a block, with the rows of its cross-page continuations when merged.
fn merged_table(doc: &Document, block: &Block) -> Option<Table> {
    let mut table = block.table.clone()?;
    let mut next = block.flags.continued_by;
    let mut guard = doc.pages.len() + 1;
    while let (Some(at), true) = (next, guard > 0) {
        guard -= 1;
        let Some(part) = doc.block(at) else { break };
        if let Some(t) = &part.table {
            table = table.append(t);
        }
        next = part.flags.continued_by;
    }
    Some(table)
}

/// The caption of a figure, for alt text: the caption block just after it, or the one just
/// before it unless that one follows another figure (and so belongs to it).
fn figure_caption<'a>(page: &'a super::document::Page, block: &Block) -> Option<&'a str> {
    let at = |i: usize| page.blocks.get(i);
    let is_caption = |b: &&Block| b.kind == BlockKind::ImageCaption;
    let after = at(block.index + 1).filter(is_caption);
    let before = block
        .index
        .checked_sub(1)
        .and_then(at)
        .filter(is_caption)
        .filter(|c| c.index == 0 || at(c.index - 1).is_none_or(|b| b.kind != BlockKind::Image));
    after.or(before).map(|b| b.text.lines().next().unwrap_or_default())
}

/// Replaces `{page}` in a separator.
fn separator(opts: &RenderOptions, next_page: u32) -> String {
    opts.page_separator.replace("{page}", &next_page.to_string())
}
