//! The seam between the model and its users: an `OcrEngine` turns one page image into raw
//! model text. The server and the batch CLI only see this trait, so they can be tested with
//! [`FakeEngine`] and run unchanged with the real model.
//!
//! Engines that decode many pages together also implement [`BatchEngine`] (page preparation
//! on encoder workers, a [`DecodeSession`] over a paged KV cache); the engine owner
//! ([`owner`]) then runs them under the token-level [`scheduler`].

use std::sync::Arc;
use std::time::Duration;

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::model::{GenerationConfig, PageOutcome, Task};
use crate::Mode;

pub mod batching;
pub mod deepseek;
pub mod fake;
pub mod owner;
pub mod scheduler;
pub mod session;

pub use batching::{BatchEngine, DecodeSession, Prepared};
pub use deepseek::DeepseekEngine;
pub use fake::FakeEngine;
pub use owner::{CancelFlag, EngineConfig, EngineObserver, EngineThread, PageRequest};

/// One page to recognise.
#[derive(Debug, Clone)]
pub struct PageJob {
    /// The page image (RGB, as rendered or loaded).
    pub image: Arc<RgbImage>,
    /// Resolution mode.
    pub mode: Mode,
    /// What to ask the model.
    pub task: Task,
    /// Target text for [`Task::Locate`].
    pub locate: Option<String>,
    /// Decoding settings.
    pub generation: GenerationConfig,
}

impl PageJob {
    /// The job for one page image under `options`: the one place a page job is built from
    /// OCR options (the batch pipeline, server jobs and the OpenAI endpoint all come here).
    pub fn new(image: Arc<RgbImage>, options: &crate::options::OcrOptions) -> Self {
        PageJob {
            image,
            mode: options.mode,
            task: options.task,
            locate: options.locate.clone(),
            generation: options.generation(),
        }
    }
}

#[cfg(test)]
impl PageJob {
    /// An 8×8 free-OCR page with default settings, for unit tests of the engine plumbing.
    pub(crate) fn test_page() -> Self {
        PageJob {
            image: Arc::new(image::RgbImage::new(8, 8)),
            mode: crate::Mode::Tiny,
            task: Task::Free,
            locate: None,
            generation: GenerationConfig::default(),
        }
    }
}

/// Whether generation should go on after a streamed token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep generating.
    Continue,
    /// Stop now (the caller cancelled); the page ends as cancelled.
    Stop,
}

/// Receives decoded text pieces as they are generated.
pub trait TokenSink {
    /// Called once per generated token with its decoded text piece.
    fn on_token(&mut self, piece: &str) -> Flow;
}

impl<F: FnMut(&str) -> Flow> TokenSink for F {
    fn on_token(&mut self, piece: &str) -> Flow {
        self(piece)
    }
}

/// A sink that ignores tokens.
pub struct NoSink;

impl TokenSink for NoSink {
    fn on_token(&mut self, _piece: &str) -> Flow {
        Flow::Continue
    }
}

/// Where time went for one page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PageTimings {
    /// Preprocessing + vision encoder.
    pub encode: Duration,
    /// Decoder prefill.
    pub prefill: Duration,
    /// Token-by-token decoding.
    pub decode: Duration,
}

/// The engine's answer for one page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageText {
    /// Raw model text (special tokens such as `<|ref|>` kept, EOS stripped).
    pub raw: String,
    /// How generation ended.
    pub outcome: PageOutcome,
    /// Prompt length in tokens (BOS + image slots + prompt text).
    pub prompt_tokens: usize,
    /// Generated tokens.
    pub generated_tokens: usize,
    /// Stage timings.
    pub timings: PageTimings,
}

/// What an engine is, for `/v1/info` and logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineInfo {
    /// Model id or folder.
    pub model: String,
    /// Architecture (`deepseek-ocr`, `deepseek-ocr-2`, `fake`).
    pub architecture: String,
    /// Device (`cpu`, `cuda:0`).
    pub device: String,
    /// Weight dtype (`f32`, `bf16`).
    pub dtype: String,
}

/// Why an engine could not recognise a page.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The request itself is wrong (e.g. locate without a target).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The caller stopped the page through its [`TokenSink`].
    #[error("cancelled")]
    Cancelled,
    /// The model failed (tensor error, out of memory, ...).
    #[error("model error: {0}")]
    Model(String),
}

/// Turns page images into raw model text. Implementations are shared across threads; the
/// real engine serialises work on its own inference thread.
pub trait OcrEngine: Send + Sync {
    /// Describes the engine.
    fn info(&self) -> EngineInfo;

    /// Recognises one page, streaming text pieces into `sink`.
    fn recognize(&self, job: &PageJob, sink: &mut dyn TokenSink) -> Result<PageText, EngineError>;

    /// Recognises several pages; engines that batch override this. Results are in job order.
    fn recognize_batch(&self, jobs: &[PageJob]) -> Vec<Result<PageText, EngineError>> {
        jobs.iter().map(|job| self.recognize(job, &mut NoSink)).collect()
    }

    /// The engine's token-level batching, when it has one (the engine owner then schedules
    /// its pages token by token instead of calling `recognize`).
    fn batching(&self) -> Option<&dyn BatchEngine> {
        None
    }
}

/// Loads the engine that `args` names: `fake`, or a DeepSeek-OCR / OCR-2 checkpoint.
/// Pages decoding together when the user gives no batch size, on a GPU: weights read once per
/// step serve the whole batch there, and the H200 measured 3,792 tok/s at 64 sequences and
/// 5,595 at 256 against 157 at one (docs/benchmarks.md); the KV budget bounds it further.
pub const GPU_DEFAULT_BATCH: usize = 128;

/// The batch size to use: `given`, else `cpu_default` on the CPU and [`GPU_DEFAULT_BATCH`] on
/// a GPU (`info.device` is `cuda:N`).
pub fn default_batch(given: Option<usize>, info: &EngineInfo, cpu_default: usize) -> usize {
    given.unwrap_or(if info.device.starts_with("cuda") { GPU_DEFAULT_BATCH } else { cpu_default }).max(1)
}

pub fn load(args: &crate::options::ModelArgs) -> anyhow::Result<Arc<dyn OcrEngine>> {
    if args.model == "fake" {
        return Ok(Arc::new(FakeEngine::from_env()?));
    }
    Ok(Arc::new(DeepseekEngine::load(args)?))
}
