//! The no-repeat n-gram guards of the two reference decoders, and a loop detector.
//!
//! - [`NgramGuard::Hf`]: transformers' `NoRepeatNGramLogitsProcessor` (`no_repeat_ngram_size`,
//!   what the official HF `infer()` uses): every n-gram of the **whole** sequence, prompt
//!   included, bans its last token after its first n-1 tokens recur. Kept incrementally.
//! - [`NgramGuard::Vllm`]: the official vLLM `NoRepeatNGramLogitsProcessor(ngram_size,
//!   window_size, whitelist_token_ids)`: over the **generated** ids only; when at least n were
//!   generated, each n-gram starting in `[max(0, len - window), len - n]` whose first n-1 ids
//!   equal the last n-1 generated ids bans its last id, unless whitelisted. (As in the
//!   reference, n < 2 bans nothing.)

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::tokens::TABLE_CELL_IDS;

/// The official PDF script's n-gram size.
pub const DEFAULT_NGRAM_SIZE: usize = 20;
/// The official PDF script's window, in generated tokens (vLLM flavour).
pub const DEFAULT_NGRAM_WINDOW: usize = 50;

/// The no-repeat n-gram guard, in the two reference flavours (see the module docs and
/// `tests/fixtures/README.md`, "Decoding settings").
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
        NgramGuard::Vllm { size: DEFAULT_NGRAM_SIZE, window: DEFAULT_NGRAM_WINDOW, whitelist: TABLE_CELL_IDS.to_vec() }
    }
}

/// The running state of a guard for one sequence.
#[derive(Debug, Clone)]
pub enum NgramState {
    /// No guard.
    Off,
    /// HF flavour: prefix (n-1 ids) -> ids that followed it anywhere in the sequence.
    Hf {
        /// n.
        size: usize,
        /// Whole sequence so far (prompt + generated).
        seq: Vec<u32>,
        /// Followers of each (n-1)-prefix seen.
        followers: HashMap<Vec<u32>, Vec<u32>>,
    },
    /// vLLM flavour.
    Vllm {
        /// n.
        size: usize,
        /// Window over generated ids.
        window: usize,
        /// Never-banned ids.
        whitelist: Vec<u32>,
        /// Generated ids so far.
        generated: Vec<u32>,
    },
}

impl NgramState {
    /// Starts a guard after `prompt` (the HF flavour counts the prompt, vLLM does not).
    pub fn new(guard: &NgramGuard, prompt: &[u32]) -> Self {
        match guard {
            NgramGuard::Off => NgramState::Off,
            NgramGuard::Hf { size } => {
                let mut st = NgramState::Hf { size: *size, seq: Vec::new(), followers: HashMap::new() };
                for &t in prompt {
                    st.push(t);
                }
                st
            }
            NgramGuard::Vllm { size, window, whitelist } => {
                NgramState::Vllm { size: *size, window: *window, whitelist: whitelist.clone(), generated: Vec::new() }
            }
        }
    }

    /// Records a new token of the sequence.
    pub fn push(&mut self, token: u32) {
        match self {
            NgramState::Off => {}
            NgramState::Hf { size, seq, followers } => {
                seq.push(token);
                let n = *size;
                if n >= 1 && seq.len() >= n {
                    let gram = &seq[seq.len() - n..];
                    followers.entry(gram[..n - 1].to_vec()).or_default().push(gram[n - 1]);
                }
            }
            NgramState::Vllm { generated, .. } => generated.push(token),
        }
    }

    /// Ids banned at the next step (may repeat ids).
    pub fn banned(&self) -> Vec<u32> {
        match self {
            NgramState::Off => Vec::new(),
            NgramState::Hf { size, seq, followers } => {
                let n = *size;
                if n == 0 || seq.len() + 1 < n {
                    return Vec::new();
                }
                followers.get(&seq[seq.len() + 1 - n..]).cloned().unwrap_or_default()
            }
            NgramState::Vllm { size, window, whitelist, generated } => {
                let (n, len) = (*size, generated.len());
                if n < 2 || len < n {
                    return Vec::new();
                }
                let prefix = &generated[len - (n - 1)..];
                let start = len.saturating_sub(*window);
                (start..=len - n)
                    .filter(|&i| &generated[i..i + n - 1] == prefix)
                    .map(|i| generated[i + n - 1])
                    .filter(|t| !whitelist.contains(t))
                    .collect()
            }
        }
    }

    /// Sets the banned ids of `logits` to -inf; returns how many distinct ids were banned.
    pub fn apply(&self, logits: &mut [f32]) -> usize {
        let mut count = 0;
        for t in self.banned() {
            if let Some(v) = logits.get_mut(t as usize) {
                if *v != f32::NEG_INFINITY {
                    *v = f32::NEG_INFINITY;
                    count += 1;
                }
            }
        }
        count
    }
}

/// Stops a generation that has fallen into a loop: the last `span` generated ids repeat with
/// some period `p <= max_period`, at least `min_repeats` times and over at least `min_span`
/// ids. Such a page ends as [`super::PageOutcome::Repetition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoopGuard {
    /// Longest period looked for.
    pub max_period: usize,
    /// Fewest full repeats of the period.
    pub min_repeats: usize,
    /// Fewest ids covered by the repeating tail.
    pub min_span: usize,
}

impl Default for LoopGuard {
    /// A loop of up to 256 ids repeated 4+ times over 400+ ids: far beyond what a real page
    /// repeats verbatim (the n-gram guard already blocks short loops inside its window).
    fn default() -> Self {
        LoopGuard { max_period: 256, min_repeats: 4, min_span: 400 }
    }
}

/// Incremental periodicity tracker for [`LoopGuard`].
#[derive(Debug, Clone)]
pub struct LoopDetector {
    guard: LoopGuard,
    history: Vec<u32>,
    /// `run[p]`: how many latest ids equal the id p positions before them, consecutively.
    run: Vec<usize>,
}

impl LoopDetector {
    /// A detector for `guard`.
    pub fn new(guard: LoopGuard) -> Self {
        LoopDetector { guard, history: Vec::new(), run: vec![0; guard.max_period + 1] }
    }

    /// Adds a generated id; returns the loop period when the tail is now a loop.
    pub fn push(&mut self, token: u32) -> Option<usize> {
        self.history.push(token);
        let len = self.history.len();
        let mut found = None;
        for p in 1..=self.guard.max_period.min(len.saturating_sub(1)) {
            if self.history[len - 1 - p] == token {
                self.run[p] += 1;
            } else {
                self.run[p] = 0;
            }
            let span = self.run[p] + p;
            if found.is_none() && span >= self.guard.min_span && span >= p * self.guard.min_repeats {
                found = Some(p);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vllm(size: usize, window: usize, whitelist: Vec<u32>) -> NgramGuard {
        NgramGuard::Vllm { size, window, whitelist }
    }

    #[test]
    fn vllm_bans_inside_the_window_only_and_respects_the_whitelist() {
        let mut st = NgramState::new(&vllm(3, 16, vec![]), &[9, 9, 9]);
        for t in [1, 2, 3, 1, 2] {
            st.push(t);
        }
        // prefix (1, 2) was followed by 3 at i = 0.
        assert_eq!(st.banned(), vec![3]);
        let mut wl = NgramState::new(&vllm(3, 16, vec![3]), &[]);
        for t in [1, 2, 3, 1, 2] {
            wl.push(t);
        }
        assert!(wl.banned().is_empty());
        // A window of 4 starts at len - 4 = 1, so the n-gram at i = 0 is out of reach.
        let mut w = NgramState::new(&vllm(3, 4, vec![]), &[]);
        for t in [1, 2, 3, 1, 2] {
            w.push(t);
        }
        assert!(w.banned().is_empty());
        // Fewer than n generated ids: nothing (the prompt does not count).
        let st = NgramState::new(&vllm(3, 16, vec![]), &[1, 2, 3, 1, 2]);
        assert!(st.banned().is_empty());
    }

    #[test]
    fn hf_bans_over_the_whole_sequence_including_the_prompt() {
        let mut st = NgramState::new(&NgramGuard::Hf { size: 3 }, &[0, 7, 8, 5]);
        st.push(7);
        st.push(8);
        assert_eq!(st.banned(), vec![5]);
        let mut logits = vec![0f32; 10];
        assert_eq!(st.apply(&mut logits), 1);
        assert_eq!(logits[5], f32::NEG_INFINITY);
        // Too short for a 3-gram: cur_len + 1 < n.
        let st = NgramState::new(&NgramGuard::Hf { size: 3 }, &[4]);
        assert!(st.banned().is_empty());
    }

    #[test]
    fn loop_detector_needs_span_and_repeats() {
        let guard = LoopGuard { max_period: 8, min_repeats: 3, min_span: 12 };
        let mut d = LoopDetector::new(guard);
        let pattern = [5, 6, 7, 8];
        let mut hit = None;
        for i in 0..40 {
            if let Some(p) = d.push(pattern[i % 4]) {
                hit = Some((i, p));
                break;
            }
        }
        // Period 4 over 12 ids: first reached at index 11.
        assert_eq!(hit, Some((11, 4)));
        let mut d = LoopDetector::new(guard);
        assert!((0..40u32).all(|t| d.push(t).is_none()));
    }
}
