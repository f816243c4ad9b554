//! What the pipeline hands back: per-page reports, stage timings, output files, errors.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::PageOutcome;

/// How one page ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageStatus {
    /// The model emitted EOS.
    Finished,
    /// The token budget ran out (text truncated).
    Length,
    /// Generation stopped because the output was looping.
    Repetition,
    /// Rendering or recognition failed; the report carries the error.
    Failed,
    /// The document was cancelled before this page finished.
    Cancelled,
}

impl PageStatus {
    /// Whether the page has model text (possibly truncated).
    pub fn has_text(self) -> bool {
        matches!(self, PageStatus::Finished | PageStatus::Length | PageStatus::Repetition)
    }
}

impl From<PageOutcome> for PageStatus {
    fn from(outcome: PageOutcome) -> Self {
        match outcome {
            PageOutcome::Finished => PageStatus::Finished,
            PageOutcome::Length => PageStatus::Length,
            PageOutcome::Repetition => PageStatus::Repetition,
        }
    }
}

/// Time spent per stage, summed over the pages (and documents) it covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StageTimings {
    /// Opening the document and rendering pages (the crash-isolated rasterizer).
    #[serde(with = "seconds")]
    pub raster: Duration,
    /// Image preprocessing and the vision encoder.
    #[serde(with = "seconds")]
    pub encode: Duration,
    /// Decoder prefill.
    #[serde(with = "seconds")]
    pub prefill: Duration,
    /// Token-by-token decoding.
    #[serde(with = "seconds")]
    pub decode: Duration,
    /// Document structuring, language detection and rendering of the output formats.
    #[serde(with = "seconds")]
    pub structure: Duration,
}

impl StageTimings {
    /// Adds another set of timings to this one.
    pub fn add(&mut self, other: &StageTimings) {
        self.raster += other.raster;
        self.encode += other.encode;
        self.prefill += other.prefill;
        self.decode += other.decode;
        self.structure += other.structure;
    }

    /// The sum of all stages.
    pub fn total(&self) -> Duration {
        self.raster + self.encode + self.prefill + self.decode + self.structure
    }
}

/// What happened to one page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageReport {
    /// 1-based page number in the document.
    pub page: usize,
    /// How the page ended.
    pub status: PageStatus,
    /// Why it failed (when `status` is `failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Rendered width in pixels (0 if rendering failed).
    pub width: u32,
    /// Rendered height in pixels (0 if rendering failed).
    pub height: u32,
    /// Prompt length in tokens.
    pub prompt_tokens: usize,
    /// Generated tokens.
    pub generated_tokens: usize,
    /// Where this page's time went.
    pub timings: StageTimings,
}

/// Overall result of one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentStatus {
    /// Every page has text and every requested output was produced.
    Ok,
    /// Some pages failed; outputs hold the others.
    Partial,
    /// Nothing usable: the document could not be opened, or no page could be recognised.
    Failed,
    /// Cancelled before it finished.
    Cancelled,
}

/// One output file of a document, named relative to the document's output folder.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputFile {
    /// Relative path with `/` separators, starting with the document's stem
    /// (`report.md`, `report.figures/p1-1.png`).
    pub path: String,
    /// MIME type.
    pub media_type: &'static str,
    /// File contents.
    pub bytes: Vec<u8>,
}

/// Everything the pipeline produced for one document.
#[derive(Debug, Clone)]
pub struct DocumentOutput {
    /// The request's display name.
    pub name: String,
    /// Overall status.
    pub status: DocumentStatus,
    /// Pages in the source document (before `--pages`).
    pub page_count: usize,
    /// One report per selected page, in page order.
    pub pages: Vec<PageReport>,
    /// Raw model text per selected page (empty for failed pages), in page order.
    pub raw_pages: Vec<String>,
    /// Rendered outputs in the requested formats, plus extra files such as figure crops.
    pub files: Vec<OutputFile>,
    /// Stage timings summed over the document.
    pub timings: StageTimings,
    /// Wall time from submission to completion (includes queueing behind other documents).
    pub elapsed: Duration,
    /// The first error met (page or output), for a one-line summary.
    pub error: Option<String>,
    /// The structured document (recognised pages, languages filled in); `None` when no page
    /// was recognised.
    pub document: Option<crate::doc::Document>,
    /// The document's languages, largest share first (empty when nothing was recognised).
    pub languages: Vec<crate::doc::DocumentLanguage>,
}

impl DocumentOutput {
    /// Tokens generated over all pages.
    pub fn generated_tokens(&self) -> usize {
        self.pages.iter().map(|p| p.generated_tokens).sum()
    }
}

/// Why a whole document failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DocumentError {
    /// The request is invalid (unknown format, bad option combination).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The rasterizer could not open the input (missing, corrupt, encrypted, unsupported, too
    /// big, worker crashed); [`PdfError::is_bad_input`](crate::pdf::PdfError::is_bad_input)
    /// tells the input's fault from the service's.
    #[error(transparent)]
    Intake(crate::pdf::PdfError),
    /// The input could not be processed for another reason.
    #[error("{0}")]
    Input(String),
    /// The document was cancelled.
    #[error("cancelled")]
    Cancelled,
}

/// `serde(with)` helpers writing durations as fractional seconds.
pub mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes a duration as seconds (f64).
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    /// Reads seconds (f64) into a duration; negative or non-finite values become zero.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Ok(Duration::try_from_secs_f64(secs).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_serialise_as_seconds_and_add_up() {
        let mut t = StageTimings { raster: Duration::from_millis(1500), ..Default::default() };
        t.add(&StageTimings { decode: Duration::from_millis(250), ..Default::default() });
        let json = serde_json::to_value(t).unwrap();
        assert_eq!(json["raster"], 1.5);
        assert_eq!(json["decode"], 0.25);
        let back: StageTimings = serde_json::from_value(json).unwrap();
        assert_eq!(back, t);
        assert_eq!(t.total(), Duration::from_millis(1750));
    }
}
