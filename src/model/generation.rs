//! Generation settings and per-page outcomes shared by the decoder, the engine and its users.

use serde::{Deserialize, Serialize};

/// Default budget of new tokens per page (the official `max_new_tokens`).
pub const DEFAULT_MAX_NEW_TOKENS: usize = 8192;

/// The no-repeat n-gram guard, in the two reference flavours (dossier §5.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NgramGuard {
    /// No guard.
    Off,
    /// transformers' `no_repeat_ngram_size`: bans over the whole sequence, prompt included.
    Hf {
        /// n-gram size.
        size: usize,
    },
    /// The official vLLM processor: a window over generated tokens only, with whitelisted ids.
    Vllm {
        /// n-gram size.
        size: usize,
        /// How many of the latest generated tokens are scanned.
        window: usize,
        /// Token ids that are never banned (e.g. `<td>`, `</td>`).
        whitelist: Vec<u32>,
    },
}

impl Default for NgramGuard {
    /// The official PDF script's setting: n = 20 over a window of 50, `<td>`/`</td>` whitelisted.
    fn default() -> Self {
        NgramGuard::Vllm { size: 20, window: 50, whitelist: vec![128821, 128822] }
    }
}

/// How one page's generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageOutcome {
    /// The model emitted EOS.
    Finished,
    /// The token budget ran out.
    Length,
    /// Stopped because the output was looping.
    Repetition,
}

/// Settings of one page's generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationConfig {
    /// Upper bound on new tokens (also capped by the model's max positions).
    pub max_new_tokens: usize,
    /// Repetition guard.
    pub ngram: NgramGuard,
    /// 0 = greedy.
    pub temperature: f32,
    /// Nucleus sampling mass (used only when `temperature > 0`).
    pub top_p: f32,
    /// Seed for sampling.
    pub seed: u64,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        GenerationConfig {
            max_new_tokens: DEFAULT_MAX_NEW_TOKENS,
            ngram: NgramGuard::default(),
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
        }
    }
}
