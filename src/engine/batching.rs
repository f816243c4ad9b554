//! The seam between the token-level scheduler ([`super::scheduler`]) and a model that can
//! decode many pages together.
//!
//! A page goes through two phases: [`BatchEngine::prepare`] (tokenise the prompt, encode the
//! image: run by encoder workers, off the scheduler's thread) and a [`DecodeSession`], which
//! owns the KV cache and the per-page decoding state. The scheduler decides each step which
//! sequences feed how many rows (one decode token, or a chunk of a prompt); the session runs
//! them in one forward and reports, for every sequence whose pending rows were all fed, the
//! token it chose (or that it is done).

use std::any::Any;
use std::time::Duration;

use super::{EngineError, PageJob, PageText};
use crate::model::{GenerationConfig, SeqId};

/// A page made ready for decoding: image encoded, prompt laid out.
pub struct Prepared {
    /// The engine's own content (the real engine: prompt embeddings and ids).
    pub payload: Box<dyn Any + Send>,
    /// Prompt length in tokens.
    pub prompt_tokens: usize,
    /// Time preparing took (preprocessing and the vision encoder).
    pub encode: Duration,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared").field("prompt_tokens", &self.prompt_tokens).field("encode", &self.encode).finish()
    }
}

/// An engine that decodes many pages together.
pub trait BatchEngine: Send + Sync {
    /// Prepares one page; called from encoder worker threads while other pages decode.
    fn prepare(&self, job: &PageJob) -> Result<Prepared, EngineError>;

    /// Opens a decoding session whose KV cache takes `kv_cache_bytes` (None: the default for
    /// the device, see [`crate::model::paged_cache::default_budget_bytes`]).
    fn session(&self, kv_cache_bytes: Option<usize>) -> Result<Box<dyn DecodeSession + '_>, EngineError>;
}

/// Rows of one sequence in a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feed {
    /// The sequence.
    pub seq: SeqId,
    /// How many of its pending rows to feed (at least 1, at most [`DecodeSession::pending`]).
    pub rows: usize,
}

/// What a step did to one sequence.
#[derive(Debug)]
pub enum SeqEvent {
    /// The sequence chose a token; `piece` is its text once it completes a character.
    Token {
        /// The sequence.
        seq: SeqId,
        /// New text, if any.
        piece: Option<String>,
    },
    /// The sequence is done (stop token, budget, loop, or an error of its own).
    Done {
        /// The sequence.
        seq: SeqId,
        /// The page's result.
        result: Result<PageText, EngineError>,
        /// The generated ids (EOS excluded).
        ids: Vec<u32>,
    },
}

/// The decoding state of many sequences over one KV cache.
pub trait DecodeSession {
    /// Cache blocks in the session.
    fn total_blocks(&self) -> usize;

    /// Cache blocks no sequence holds.
    fn free_blocks(&self) -> usize;

    /// Blocks a prompt of `tokens` tokens takes.
    fn blocks_for(&self, tokens: usize) -> usize;

    /// Blocks `seq` still needs (beyond what it holds) to take `rows` more rows.
    fn blocks_needed(&self, seq: SeqId, rows: usize) -> usize;

    /// Starts `seq` from a prepared page with its decoding settings.
    fn start(&mut self, seq: SeqId, page: Prepared, generation: &GenerationConfig) -> Result<(), EngineError>;

    /// Rows of `seq` waiting to be fed: its prompt (or the rest of it), then one row per step.
    fn pending(&self, seq: SeqId) -> usize;

    /// True when `seq`'s prompt is fully fed (it is decoding).
    fn decoding(&self, seq: SeqId) -> bool;

    /// Runs one batched forward over `feeds` and returns the events of the sequences whose
    /// pending rows were all fed. An error fails the whole step.
    fn step(&mut self, feeds: &[Feed]) -> Result<Vec<SeqEvent>, EngineError>;

    /// Frees the cache of `seq` but keeps its state, so it can be fed again from its first row
    /// (preemption by recomputation).
    fn evict(&mut self, seq: SeqId);

    /// Forgets `seq` and frees its cache.
    fn finish(&mut self, seq: SeqId);
}
