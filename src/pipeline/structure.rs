//! The last stage: per-page raw text → document structure → languages → output files.
//!
//! A seam over the document model (`crate::doc`) and language routing (`docseek_langs`).

use super::format::{OutputFormat, RAW_PAGE_SEPARATOR};
use super::report::{OutputFile, PageReport};
use super::source::RenderedPage;
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

/// Whether this build can produce `format`.
pub fn is_supported(format: OutputFormat) -> bool {
    matches!(format, OutputFormat::Raw)
}

/// Builds the requested outputs of one document, named `<stem><suffix>`.
pub fn render_outputs(
    stem: &str,
    pages: &[FinishedPage],
    formats: &[OutputFormat],
    _options: &OcrOptions,
) -> Result<Vec<OutputFile>, String> {
    let mut files = Vec::new();
    for &format in formats {
        let bytes = match format {
            OutputFormat::Raw => raw_text(pages).into_bytes(),
            other => {
                return Err(format!(
                    "output format {other} is not available in this build"
                ))
            }
        };
        files.push(OutputFile {
            path: format!("{stem}{}", format.suffix()),
            media_type: format.media_type(),
            bytes,
        });
    }
    Ok(files)
}

/// The `raw` format: each page's model text, pages joined by the official separator.
pub fn raw_text(pages: &[FinishedPage]) -> String {
    pages
        .iter()
        .map(|p| p.raw.as_str())
        .collect::<Vec<_>>()
        .join(RAW_PAGE_SEPARATOR)
}
