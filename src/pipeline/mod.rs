//! The document pipeline of `docseek ocr` (the server drives the same stages itself, in
//! `server::runner`, over the same engine thread, [`crate::engine::EngineThread`]):
//! document in (path or bytes) → rasterize (crash-isolated worker) → engine (page jobs, batched)
//! → document structure → languages per block → rendered outputs.
//!
//! A [`Pipeline`] is long-lived: it owns worker threads and one engine, and documents are
//! [submitted](Pipeline::submit) to it at any time. Stages overlap: `jobs` rasterizer
//! threads render the next pages (of this and other documents) into the shared page pipeline
//! ([`pages`], the same one the server uses), the engine's encoder worker encodes the next
//! pages while up to `batch_size` pages of any documents decode together token by token
//! (the engine's scheduler), and finished documents are structured and rendered by `jobs`
//! finishing threads while the engine goes on.
//!
//! Each request carries its own [`ProgressSink`] (page rendered, tokens, page done, document
//! done) and [`CancelToken`]. The result arrives through the completion callback given to
//! [`Pipeline::submit`], or through [`Pipeline::run`] / [`Ticket::wait`] when blocking is fine.
//!
//! ```no_run
//! # use std::sync::Arc;
//! use docseek::pipeline::{DocumentRequest, InputSource, OutputFormat, Pipeline, PipelineConfig};
//! let engine = Arc::new(docseek::engine::FakeEngine::new());
//! let pipeline = Pipeline::new(engine, PipelineConfig::default());
//! let request = DocumentRequest::new("scan.png", InputSource::Path("scan.png".into()))
//!     .with_formats(vec![OutputFormat::Raw]);
//! let output = pipeline.run(request).unwrap();
//! println!("{} pages, status {:?}", output.pages.len(), output.status);
//! ```

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::options::OcrOptions;

pub mod batch;
pub mod events;
pub mod format;
pub mod pages;
pub mod report;
mod scheduler;
pub mod source;
pub mod structure;
#[cfg(test)]
mod tests;

pub use events::{CancelToken, DocId, Event, NoProgress, ProgressSink};
pub use format::OutputFormat;
pub use report::{DocumentError, DocumentOutput, DocumentStatus, OutputFile, PageReport, PageStatus, StageTimings};
pub use scheduler::{Pipeline, Ticket};
pub use source::InputSource;

/// The result of one document.
pub type DocumentResult = Result<DocumentOutput, DocumentError>;

/// Settings of a pipeline (as opposed to those of one request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipelineConfig {
    /// Rasterizer threads (documents opened and rendered at once), and finishing threads.
    pub jobs: usize,
    /// Most pages decoding together (token-level batching; with an engine that cannot batch,
    /// most pages per engine call). Tokens are streamed as [`Event::Token`] either way.
    pub batch_size: usize,
    /// Rendered pages that may wait for the engine (bounds memory).
    pub queued_pages: usize,
    /// KV cache budget of the batched decoder in bytes (None: half the free memory).
    pub kv_cache_bytes: Option<usize>,
}

impl PipelineConfig {
    /// A configuration for `jobs` CPU workers and engine batches of `batch_size`.
    pub fn new(jobs: usize, batch_size: usize) -> Self {
        let jobs = jobs.max(1);
        let batch_size = batch_size.max(1);
        PipelineConfig { jobs, batch_size, queued_pages: 2 * batch_size + jobs, kv_cache_bytes: None }
    }
}

impl Default for PipelineConfig {
    /// One worker per CPU, one page decoding at a time.
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        PipelineConfig::new(cpus, 1)
    }
}

/// One document to process.
#[derive(Clone)]
pub struct DocumentRequest {
    /// Display name (a relative path or an upload's file name); used in events and errors.
    pub name: String,
    /// Stem of the output file names (`report` → `report.md`).
    pub stem: String,
    /// Where the document comes from.
    pub source: InputSource,
    /// OCR options.
    pub options: OcrOptions,
    /// Output formats to render.
    pub formats: Vec<OutputFormat>,
    /// Receives this document's progress events.
    pub sink: Arc<dyn ProgressSink>,
    /// Cancels this document.
    pub cancel: CancelToken,
}

impl std::fmt::Debug for DocumentRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocumentRequest")
            .field("name", &self.name)
            .field("stem", &self.stem)
            .field("source", &self.source)
            .field("formats", &self.formats)
            .finish_non_exhaustive()
    }
}

impl DocumentRequest {
    /// A request with default options, the `raw` format, no progress and a fresh cancel token;
    /// the stem is the name's file name without its extension.
    pub fn new(name: impl Into<String>, source: InputSource) -> Self {
        let name = name.into();
        let stem = default_stem(&name);
        DocumentRequest {
            name,
            stem,
            source,
            options: OcrOptions::default(),
            formats: vec![OutputFormat::Raw],
            sink: Arc::new(NoProgress),
            cancel: CancelToken::new(),
        }
    }

    /// Sets the OCR options.
    pub fn with_options(mut self, options: OcrOptions) -> Self {
        self.options = options;
        self
    }

    /// Sets the output formats.
    pub fn with_formats(mut self, formats: Vec<OutputFormat>) -> Self {
        self.formats = formats;
        self
    }

    /// Sets the output stem.
    pub fn with_stem(mut self, stem: impl Into<String>) -> Self {
        self.stem = stem.into();
        self
    }

    /// Sets the progress sink.
    pub fn with_sink(mut self, sink: Arc<dyn ProgressSink>) -> Self {
        self.sink = sink;
        self
    }

    /// Sets the cancel token.
    pub fn with_cancel(mut self, cancel: CancelToken) -> Self {
        self.cancel = cancel;
        self
    }

    /// Checks what can be checked before any work: formats given, and the options
    /// ([`OcrOptions::validate`](crate::options::OcrOptions::validate), as the server does).
    pub fn validate(&self) -> Result<(), DocumentError> {
        if self.formats.is_empty() {
            return Err(DocumentError::InvalidRequest("no output format requested".into()));
        }
        self.options.validate().map_err(|e| DocumentError::InvalidRequest(e.to_string()))
    }
}

/// The file name of `name` without directories and without its last extension.
fn default_stem(name: &str) -> String {
    let file = name.rsplit(['/', '\\']).next().unwrap_or(name);
    match file.rfind('.') {
        Some(dot) if dot > 0 => file[..dot].to_string(),
        _ if file.is_empty() => "document".to_string(),
        _ => file.to_string(),
    }
}

/// Counters over a pipeline's lifetime, for throughput figures and the overlap of stages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PipelineStats {
    /// Documents finished (any status).
    pub documents: usize,
    /// Pages finished (any status).
    pub pages: usize,
    /// Tokens generated.
    pub tokens: usize,
    /// Stage time summed over all pages and documents (raster, encode, prefill, decode,
    /// structure); with overlap, its total exceeds the wall time.
    pub stages: StageTimings,
    /// Time the engine thread spent inside engine calls.
    #[serde(with = "report::seconds")]
    pub engine_busy: Duration,
    /// Wall time since the pipeline started.
    #[serde(with = "report::seconds")]
    pub wall: Duration,
}

impl PipelineStats {
    /// Stage time over wall time: above 1 means stages ran at the same time.
    pub fn overlap(&self) -> f64 {
        let wall = self.wall.as_secs_f64();
        if wall > 0.0 {
            self.stages.total().as_secs_f64() / wall
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod request_tests {
    use super::*;

    #[test]
    fn stems_and_validation() {
        assert_eq!(default_stem("a/b/report.pdf"), "report");
        assert_eq!(default_stem("scan"), "scan");
        assert_eq!(default_stem(".hidden"), ".hidden");
        assert_eq!(default_stem(""), "document");
        let req = DocumentRequest::new("x.png", InputSource::bytes(Vec::new()));
        assert!(req.validate().is_ok());
        assert!(req.clone().with_formats(vec![]).validate().is_err());
        let mut locate = req.clone();
        locate.options.task = crate::model::Task::Locate;
        assert!(matches!(locate.validate(), Err(DocumentError::InvalidRequest(_))));
    }
}
