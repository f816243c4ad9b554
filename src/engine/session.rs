//! The real [`DecodeSession`]: many pages over one [`DeepseekDecoder`] and one paged KV cache.
//!
//! Each sequence keeps its prompt embeddings, its [`TokenPicker`] (n-gram guard, greedy or
//! nucleus choice, loop detector, budget) and its detokenizer. Its rows are the prompt, then
//! every generated id; the cache holds the first `fed` of them, and the last generated id is
//! the one pending row of a decoding sequence. After an eviction `fed` is 0 and the rows are
//! fed again (prompt embeddings, then the embeddings of the ids generated so far), which
//! rebuilds the same cache.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use candle_core::Tensor;

use super::batching::{DecodeSession, Feed, Prepared, SeqEvent};
use super::{EngineError, PageText, PageTimings};
use crate::model::generation::{Next, TokenPicker};
use crate::model::paged_cache::blocks_for;
use crate::model::prompt::PromptTokenizer;
use crate::model::{DeepseekDecoder, GenerationConfig, PageOutcome, PagedKvCache, SeqChunk, SeqId};

/// A prepared prompt of the real engine (the [`Prepared::payload`]).
#[derive(Debug, Clone)]
pub struct PromptRows {
    /// Prompt embeddings `[n, hidden]`, image features spliced in.
    pub embeds: Tensor,
    /// Prompt ids (the HF n-gram flavour counts them).
    pub ids: Vec<u32>,
}

/// Turns generated ids into text pieces as soon as they form complete characters.
pub(crate) struct Detokenizer<'a> {
    tokenizer: &'a PromptTokenizer,
    ids: Vec<u32>,
    prefix: usize,
    read: usize,
    emitted: String,
}

impl<'a> Detokenizer<'a> {
    pub(crate) fn new(tokenizer: &'a PromptTokenizer) -> Self {
        Detokenizer { tokenizer, ids: Vec::new(), prefix: 0, read: 0, emitted: String::new() }
    }

    /// Adds an id; returns the new text, if it completes at least one character.
    pub(crate) fn push(&mut self, id: u32) -> Option<String> {
        self.ids.push(id);
        let before = self.tokenizer.decode(&self.ids[self.prefix..self.read]).ok()?;
        let after = self.tokenizer.decode(&self.ids[self.prefix..]).ok()?;
        if after.len() <= before.len() || after.ends_with('\u{FFFD}') {
            return None;
        }
        let piece = after.get(before.len()..)?.to_string();
        self.prefix = self.read;
        self.read = self.ids.len();
        self.emitted.push_str(&piece);
        Some(piece)
    }

    /// The full text and whatever was not streamed yet.
    pub(crate) fn finish(&self) -> (String, Option<String>) {
        let full = self.tokenizer.decode(&self.ids).unwrap_or_else(|_| self.emitted.clone());
        let rest = full.strip_prefix(self.emitted.as_str()).filter(|r| !r.is_empty()).map(str::to_string);
        (full, rest)
    }
}

/// One sequence's state.
struct SeqState<'a> {
    prompt: Tensor,
    prompt_len: usize,
    picker: TokenPicker,
    fed: usize,
    detok: Option<Detokenizer<'a>>,
    encode: Duration,
    prefill: Duration,
    decode: Duration,
}

impl SeqState<'_> {
    /// Rows the sequence has: the prompt and every generated id.
    fn rows(&self) -> usize {
        self.prompt_len + self.picker.ids().len()
    }
}

/// Decoding of many pages over one decoder and one paged cache.
pub struct DecoderSession<'a> {
    decoder: &'a DeepseekDecoder,
    tokenizer: Option<&'a PromptTokenizer>,
    cache: PagedKvCache,
    eos: Option<u32>,
    seqs: HashMap<SeqId, SeqState<'a>>,
}

impl<'a> DecoderSession<'a> {
    /// A session over `decoder` with a KV cache of `kv_cache_bytes`; without a tokenizer no
    /// text is produced (tests read the ids of [`SeqEvent::Done`]).
    pub fn new(
        decoder: &'a DeepseekDecoder,
        tokenizer: Option<&'a PromptTokenizer>,
        kv_cache_bytes: usize,
    ) -> candle_core::Result<Self> {
        Ok(DecoderSession {
            decoder,
            tokenizer,
            cache: decoder.new_paged_cache(kv_cache_bytes)?,
            eos: decoder.config().eos_token_id,
            seqs: HashMap::new(),
        })
    }

    /// The KV cache.
    pub fn cache(&self) -> &PagedKvCache {
        &self.cache
    }

    /// Embeddings of rows `from..from + n` of `s`.
    fn rows_of(&self, s: &SeqState, from: usize, n: usize) -> candle_core::Result<Tensor> {
        let mut parts = Vec::with_capacity(2);
        let end = from + n;
        if from < s.prompt_len {
            parts.push(s.prompt.narrow(0, from, end.min(s.prompt_len) - from)?);
        }
        if end > s.prompt_len {
            let first = from.max(s.prompt_len) - s.prompt_len;
            parts.push(self.decoder.embed(&s.picker.ids()[first..end - s.prompt_len])?);
        }
        if parts.len() == 1 {
            Ok(parts.remove(0))
        } else {
            Tensor::cat(&parts, 0)
        }
    }

    /// The result of a finished sequence, with what is left to stream.
    fn result(s: &SeqState, outcome: PageOutcome) -> (PageText, Option<String>) {
        let (raw, rest) = s.detok.as_ref().map_or((String::new(), None), Detokenizer::finish);
        let text = PageText {
            raw,
            outcome,
            prompt_tokens: s.prompt_len,
            generated_tokens: s.picker.ids().len(),
            timings: PageTimings { encode: s.encode, prefill: s.prefill, decode: s.decode },
        };
        (text, rest)
    }
}

fn model_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Model(e.to_string())
}

impl DecodeSession for DecoderSession<'_> {
    fn total_blocks(&self) -> usize {
        self.cache.num_blocks()
    }

    fn free_blocks(&self) -> usize {
        self.cache.free_blocks()
    }

    fn blocks_for(&self, tokens: usize) -> usize {
        blocks_for(tokens)
    }

    fn blocks_needed(&self, seq: SeqId, rows: usize) -> usize {
        let fed = self.seqs.get(&seq).map_or(0, |s| s.fed);
        self.cache.blocks_needed(seq, fed + rows)
    }

    fn start(&mut self, seq: SeqId, page: Prepared, generation: &GenerationConfig) -> Result<(), EngineError> {
        let rows = page
            .payload
            .downcast::<PromptRows>()
            .map_err(|_| EngineError::Model("a page prepared by another engine".into()))?;
        let prompt_len = rows.embeds.dim(0).map_err(model_err)?;
        if prompt_len == 0 {
            return Err(EngineError::InvalidRequest("empty prompt".into()));
        }
        let max_pos = self.decoder.config().max_position_embeddings;
        if prompt_len > max_pos {
            return Err(EngineError::InvalidRequest(format!(
                "a prompt of {prompt_len} tokens exceeds the model's {max_pos} positions"
            )));
        }
        let budget = TokenPicker::budget_for(generation, prompt_len, max_pos);
        let state = SeqState {
            prompt: rows.embeds,
            prompt_len,
            picker: TokenPicker::new(generation, &rows.ids, self.eos, budget),
            fed: 0,
            detok: self.tokenizer.map(Detokenizer::new),
            encode: page.encode,
            prefill: Duration::ZERO,
            decode: Duration::ZERO,
        };
        self.seqs.insert(seq, state);
        Ok(())
    }

    fn pending(&self, seq: SeqId) -> usize {
        self.seqs.get(&seq).map_or(0, |s| s.rows() - s.fed)
    }

    fn decoding(&self, seq: SeqId) -> bool {
        self.seqs.get(&seq).is_some_and(|s| s.fed >= s.prompt_len)
    }

    fn step(&mut self, feeds: &[Feed]) -> Result<Vec<SeqEvent>, EngineError> {
        let started = Instant::now();
        let mut chunks = Vec::with_capacity(feeds.len());
        let mut embeds = Vec::with_capacity(feeds.len());
        for f in feeds {
            let s = self.seqs.get(&f.seq).ok_or_else(|| model_err(format!("unknown sequence {}", f.seq)))?;
            if f.rows == 0 || s.fed + f.rows > s.rows() {
                return Err(model_err(format!(
                    "sequence {}: {} rows fed, {} pending",
                    f.seq,
                    f.rows,
                    s.rows() - s.fed
                )));
            }
            chunks.push(SeqChunk { seq: f.seq, start: s.fed, len: f.rows });
            embeds.push(self.rows_of(s, s.fed, f.rows).map_err(model_err)?);
        }
        let embeds = if embeds.len() == 1 { embeds.remove(0) } else { Tensor::cat(&embeds, 0).map_err(model_err)? };
        let logits = self.decoder.forward_batch(&embeds, &chunks, &mut self.cache).map_err(model_err)?;
        let logits: Vec<Vec<f32>> = logits.to_vec2().map_err(model_err)?;
        let took = started.elapsed();
        let mut events = Vec::new();
        for (f, mut row) in feeds.iter().zip(logits) {
            let s = self.seqs.get_mut(&f.seq).expect("checked above");
            if s.fed < s.prompt_len {
                s.prefill += took;
            } else {
                s.decode += took;
            }
            s.fed += f.rows;
            if s.fed < s.rows() {
                continue;
            }
            let outcome = if s.picker.step() >= s.picker.budget() {
                Some(PageOutcome::Length)
            } else {
                match s.picker.next(&mut row) {
                    Next::Eos => Some(PageOutcome::Finished),
                    Next::Token { id, stop } => {
                        let piece = s.detok.as_mut().and_then(|d| d.push(id));
                        events.push(SeqEvent::Token { seq: f.seq, piece });
                        stop
                    }
                }
            };
            if let Some(outcome) = outcome {
                let (text, rest) = Self::result(s, outcome);
                if rest.is_some() {
                    events.push(SeqEvent::Token { seq: f.seq, piece: rest });
                }
                let ids = s.picker.ids().to_vec();
                events.push(SeqEvent::Done { seq: f.seq, result: Ok(text), ids });
            }
        }
        Ok(events)
    }

    fn evict(&mut self, seq: SeqId) {
        self.cache.release(seq);
        if let Some(s) = self.seqs.get_mut(&seq) {
            s.fed = 0;
        }
    }

    fn finish(&mut self, seq: SeqId) {
        self.cache.release(seq);
        self.seqs.remove(&seq);
    }
}
