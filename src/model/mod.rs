//! The DeepSeek MoE decoder (MHA and MLA), generation, prompting and model loading.
//!
//! - [`config`]: DeepSeek-V2-family config (plain or as an OCR `language_config`).
//! - [`decoder`]: the decoder itself, built from [`layers`], [`rope`], [`attention`] (MHA),
//!   [`mla`] (MLA over a latent cache), [`moe`], with its [`cache`].
//! - [`generation`]: decoding settings, the no-repeat n-gram guards, the loop detector and
//!   the token loop.
//! - [`batch`] and [`paged_cache`]: token-major batches of many sequences over the paged KV
//!   cache ([`DeepseekDecoder::forward_batch`]).

pub mod attention;
pub mod batch;
pub mod cache;
pub mod config;
pub mod cuda;
pub mod cuda_moe;
pub mod decoder;
pub mod device;
pub mod generation;
pub mod layers;
pub mod loader;
pub mod mla;
pub mod moe;
pub mod ngram;
pub mod paged_cache;
pub mod prompt;
pub mod quant_store;
pub mod rope;
pub mod synth;
pub mod task;
pub mod tokens;
pub mod weights;

pub use batch::SeqChunk;
pub use config::{Architecture, DeepseekV2Config, ModelConfig};
pub use decoder::{DeepseekDecoder, LogitsFor};
pub use device::{DeviceSpec, Dtype};
pub use generation::{GenerationConfig, NgramGuard, PageOutcome};
pub use paged_cache::{PagedKvCache, SeqId};
pub use task::Task;

/// Errors of the model layer.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// config.json is missing, unreadable or inconsistent.
    #[error("model config: {0}")]
    Config(String),
    /// A tensor operation failed (shapes, missing tensors, device errors).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The tokenizer could not be loaded or used.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The model could not be found or fetched.
    #[error("{0}")]
    Fetch(String),
    /// A file could not be read or written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
