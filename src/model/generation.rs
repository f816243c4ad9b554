//! Generation settings and per-page outcomes shared by the decoder, the engine and its users,
//! and the token loop: prefill, KV-cached decode, n-gram guard, greedy or nucleus sampling,
//! EOS / budget / loop stops.
//!
//! Outcomes: `Finished` when the model emits EOS; `Length` when the budget (or the model's
//! max positions) runs out; `Repetition` when the [`LoopGuard`] sees the generated tail repeat
//! a period of up to `max_period` ids at least `min_repeats` times over `min_span` ids - the
//! runaway loops the official PDF script drops as pages without EOS.

use std::time::{Duration, Instant};

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::decoder::{DeepseekDecoder, LogitsFor};
use super::ngram::{LoopDetector, NgramState};
pub use super::ngram::{LoopGuard, NgramGuard};

/// Default budget of new tokens per page (the official `max_new_tokens`).
pub const DEFAULT_MAX_NEW_TOKENS: usize = 8192;

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
    /// Stop runaway loops early (None: only EOS and the budget stop a page).
    #[serde(default = "default_loop_guard")]
    pub loop_guard: Option<LoopGuard>,
}

fn default_loop_guard() -> Option<LoopGuard> {
    Some(LoopGuard::default())
}

impl Default for GenerationConfig {
    fn default() -> Self {
        GenerationConfig {
            max_new_tokens: DEFAULT_MAX_NEW_TOKENS,
            ngram: NgramGuard::default(),
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
            loop_guard: default_loop_guard(),
        }
    }
}

/// What the token loop produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// Generated ids (EOS excluded).
    pub ids: Vec<u32>,
    /// Why it stopped.
    pub outcome: PageOutcome,
    /// Prompt length.
    pub prompt_tokens: usize,
    /// Time in the prefill forward.
    pub prefill: Duration,
    /// Time in decode steps.
    pub decode: Duration,
}

/// What the per-token callback wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Go on.
    Continue,
    /// Stop now (cancelled by the caller).
    Stop,
}

/// Observes the loop: raw logits of each step (before bans) and each chosen id.
pub trait StepObserver {
    /// Raw f32 logits of step `step` (0 = prefill).
    fn on_logits(&mut self, _step: usize, _logits: &[f32]) {}
    /// The id chosen at step `step` (not called for EOS). Return `Step::Stop` to cancel.
    fn on_token(&mut self, _step: usize, _id: u32) -> Step {
        Step::Continue
    }
}

/// An observer that only watches.
pub struct Silent;

impl StepObserver for Silent {}

/// What [`TokenPicker::next`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The model chose EOS: the page is finished, no token is emitted.
    Eos,
    /// Emit `id`; when `stop` is set, the page ends after it (a loop, or the budget).
    Token {
        /// The chosen id.
        id: u32,
        /// Why the page ends after this token, if it does.
        stop: Option<PageOutcome>,
    },
}

/// The per-sequence decisions of the token loop, shared by [`generate`] and the batched
/// scheduler: n-gram bans, greedy or nucleus choice, EOS, the loop detector and the budget.
#[derive(Debug, Clone)]
pub struct TokenPicker {
    ngram: NgramState,
    loops: Option<LoopDetector>,
    sampler: Sampler,
    eos: Option<u32>,
    budget: usize,
    ids: Vec<u32>,
}

impl TokenPicker {
    /// A picker for a sequence whose prompt is `prompt_ids`, allowed `budget` new tokens.
    pub fn new(cfg: &GenerationConfig, prompt_ids: &[u32], eos: Option<u32>, budget: usize) -> Self {
        TokenPicker {
            ngram: NgramState::new(&cfg.ngram, prompt_ids),
            loops: cfg.loop_guard.map(LoopDetector::new),
            sampler: Sampler::new(cfg),
            eos,
            budget,
            ids: Vec::new(),
        }
    }

    /// New tokens allowed: `cfg.max_new_tokens`, capped by the model's positions after a
    /// prompt of `prompt_len`.
    pub fn budget_for(cfg: &GenerationConfig, prompt_len: usize, max_positions: usize) -> usize {
        cfg.max_new_tokens.min(max_positions.saturating_sub(prompt_len))
    }

    /// The ids emitted so far.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// The step the next call decides (0 = after the prefill).
    pub fn step(&self) -> usize {
        self.ids.len()
    }

    /// The token budget.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Decides the next token from the raw logits of the last position (bans are applied to
    /// `logits` in place). Must not be called once a stop was returned.
    pub fn next(&mut self, logits: &mut [f32]) -> Next {
        self.ngram.apply(logits);
        let id = self.sampler.pick(logits);
        if Some(id) == self.eos {
            return Next::Eos;
        }
        self.ids.push(id);
        self.ngram.push(id);
        let stop = if self.loops.as_mut().and_then(|d| d.push(id)).is_some() {
            Some(PageOutcome::Repetition)
        } else if self.ids.len() >= self.budget {
            Some(PageOutcome::Length)
        } else {
            None
        };
        Next::Token { id, stop }
    }
}

/// Runs prefill on `prompt_embeds` `[n, hidden]` (whose ids are `prompt_ids`, used by the HF
/// n-gram flavour) and decodes until EOS, the budget, a loop, or the observer stops it.
/// Returns `Ok(None)` when the observer cancelled.
pub fn generate(
    decoder: &DeepseekDecoder,
    prompt_embeds: &Tensor,
    prompt_ids: &[u32],
    eos: Option<u32>,
    cfg: &GenerationConfig,
    observer: &mut dyn StepObserver,
) -> candle_core::Result<Option<Generated>> {
    let n = prompt_embeds.dim(0)?;
    let budget = TokenPicker::budget_for(cfg, n, decoder.config().max_position_embeddings);
    let mut cache = decoder.new_cache(n + budget)?;
    let mut picker = TokenPicker::new(cfg, prompt_ids, eos, budget);
    let t0 = Instant::now();
    let mut logits = decoder.forward(prompt_embeds, &mut cache, LogitsFor::Last)?;
    let prefill = t0.elapsed();
    let t1 = Instant::now();
    let mut outcome = PageOutcome::Length;
    while picker.step() < budget {
        let step = picker.step();
        let mut row: Vec<f32> = logits.flatten_all()?.to_vec1()?;
        observer.on_logits(step, &row);
        match picker.next(&mut row) {
            Next::Eos => {
                outcome = PageOutcome::Finished;
                break;
            }
            Next::Token { id, stop } => {
                if observer.on_token(step, id) == Step::Stop {
                    return Ok(None);
                }
                if let Some(o) = stop {
                    outcome = o;
                    break;
                }
                let emb = decoder.embed(&[id])?;
                logits = decoder.forward(&emb, &mut cache, LogitsFor::Last)?;
            }
        }
    }
    let ids = picker.ids().to_vec();
    Ok(Some(Generated { ids, outcome, prompt_tokens: n, prefill, decode: t1.elapsed() }))
}

/// Greedy argmax, or temperature + top-p sampling with a seeded generator.
#[derive(Debug, Clone)]
pub struct Sampler {
    temperature: f32,
    top_p: f32,
    state: u64,
}

impl Sampler {
    /// A sampler for `cfg`.
    pub fn new(cfg: &GenerationConfig) -> Self {
        Sampler { temperature: cfg.temperature, top_p: cfg.top_p, state: cfg.seed ^ 0x9E37_79B9_7F4A_7C15 }
    }

    /// SplitMix64 step mapped to [0, 1).
    fn uniform(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Chooses an id from processed logits (banned ids are -inf). Greedy ties go to the lower id.
    pub fn pick(&mut self, logits: &[f32]) -> u32 {
        if self.temperature <= 0.0 {
            return argmax(logits);
        }
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut probs: Vec<(usize, f64)> = logits
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(i, &v)| (i, (((v - max) / self.temperature) as f64).exp()))
            .collect();
        probs.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal).then(a.0.cmp(&b.0)));
        let total: f64 = probs.iter().map(|p| p.1).sum();
        let mut kept = 0.0;
        let mut cut = probs.len();
        for (i, p) in probs.iter().enumerate() {
            kept += p.1 / total;
            if kept >= self.top_p as f64 {
                cut = i + 1;
                break;
            }
        }
        probs.truncate(cut.max(1));
        let mass: f64 = probs.iter().map(|p| p.1).sum();
        let mut r = self.uniform() * mass;
        for (i, p) in &probs {
            if r < *p {
                return *i as u32;
            }
            r -= p;
        }
        probs.last().map(|p| p.0 as u32).unwrap_or(0)
    }
}

/// Index of the largest value; ties go to the lower index (torch's argmax on CPU).
pub fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best as u32
}
