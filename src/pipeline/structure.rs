//! The last stage: per-page raw text → document structure ([`crate::doc`]) → languages per
//! block and page ([`crate::doc::languages`]) → output files in the requested formats, all
//! through [`crate::doc::render`] (figure crops land in `<stem>_figures/`; the searchable PDF
//! is drawn over the rendered page images).

use std::collections::HashSet;

use super::format::{OutputFormat, RAW_PAGE_SEPARATOR};
use super::report::{OutputFile, PageReport, PageStatus};
use super::source::RenderedPage;
use crate::doc::{self, Document, DocumentLanguage, PageInput, PixelSize, PointSize};
use crate::engine::{PageText, PageTimings};
use crate::model::PageOutcome;
use crate::options::OcrOptions;

/// One page as the structuring stage receives it.
#[derive(Debug, Clone)]
pub struct FinishedPage {
    /// The page's report.
    pub report: PageReport,
    /// Raw model text (empty when the page failed).
    pub raw: String,
    /// The rendered page (for sizes and figure crops); `None` when rendering failed.
    pub page: Option<RenderedPage>,
}

/// What the stage produced for one document.
#[derive(Debug, Clone)]
pub struct Structured {
    /// The structured document (pages with text only), languages filled in.
    pub document: Document,
    /// The output files.
    pub files: Vec<OutputFile>,
    /// The document's languages, largest share first.
    pub languages: Vec<DocumentLanguage>,
}

/// The document-model format of an output format (`None` for `raw`).
fn doc_format(format: OutputFormat) -> Option<doc::Format> {
    Some(match format {
        OutputFormat::Md => doc::Format::Markdown,
        OutputFormat::Json => doc::Format::Json,
        OutputFormat::Html => doc::Format::Html,
        OutputFormat::Hocr => doc::Format::Hocr,
        OutputFormat::Pdf => doc::Format::Pdf,
        OutputFormat::Txt => doc::Format::Text,
        OutputFormat::Raw => return None,
    })
}

/// Builds the document from its recognised pages (failed pages are left out).
pub fn build_document(name: &str, pages: &[FinishedPage]) -> Document {
    let inputs = pages.iter().filter_map(|p| {
        let outcome = match p.report.status {
            PageStatus::Finished => PageOutcome::Finished,
            PageStatus::Length => PageOutcome::Length,
            PageStatus::Repetition => PageOutcome::Repetition,
            PageStatus::Failed | PageStatus::Cancelled => return None,
        };
        let page = p.page.as_ref()?;
        let (width, height) = page.image.dimensions();
        let t = &p.report.timings;
        let text = PageText {
            raw: p.raw.clone(),
            outcome,
            prompt_tokens: p.report.prompt_tokens,
            generated_tokens: p.report.generated_tokens,
            timings: PageTimings { encode: t.encode, prefill: t.prefill, decode: t.decode },
        };
        let points = PointSize { width: page.width_pt, height: page.height_pt };
        Some(PageInput::new(p.report.page as u32, PixelSize { width, height }, points, text))
    });
    Document::new(Some(name.to_string()), inputs)
}

/// Structures a document, detects its languages and renders the requested outputs, named
/// `<stem><suffix>` (figure crops in `<stem>_figures/`).
pub fn render_outputs(
    name: &str,
    stem: &str,
    pages: &[FinishedPage],
    formats: &[OutputFormat],
    options: &OcrOptions,
) -> Result<Structured, String> {
    let mut document = build_document(name, pages);
    let languages = doc::annotate_with_hints(&mut document, &options.languages);
    let mut opts = doc::RenderOptions::default().with_figures_next_to(stem);
    for p in pages {
        if let Some(page) = &p.page {
            opts = opts.with_page_image(p.report.page as u32, page.image.clone());
        }
    }
    let mut files = Vec::new();
    let mut seen = HashSet::new();
    for &format in formats {
        let main = format!("{stem}{}", format.suffix());
        let Some(doc_format) = doc_format(format) else {
            files.push(OutputFile { path: main, media_type: format.media_type(), bytes: raw_text(pages).into_bytes() });
            continue;
        };
        let rendered = doc::render(&document, doc_format, &opts).map_err(|e| format!("{format} output: {e}"))?;
        files.push(OutputFile { path: main, media_type: format.media_type(), bytes: rendered.content });
        for extra in rendered.files {
            if seen.insert(extra.path.clone()) {
                files.push(OutputFile { path: extra.path, media_type: "image/png", bytes: extra.bytes });
            }
        }
    }
    Ok(Structured { document, files, languages })
}

/// The `raw` format: each page's model text, pages joined by the official separator.
pub fn raw_text(pages: &[FinishedPage]) -> String {
    pages.iter().map(|p| p.raw.as_str()).collect::<Vec<_>>().join(RAW_PAGE_SEPARATOR)
}
