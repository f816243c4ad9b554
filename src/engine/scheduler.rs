//! The token-level scheduler: continuous batching over a [`DecodeSession`].
//!
//! Sequences wait in a queue and run in a set. Every [`Scheduler::step`]:
//! 1. cancelled sequences (running or waiting) leave and free their cache at once;
//! 2. waiting pages are admitted, oldest first, while the running set has room
//!    (`max_running`) and the free KV blocks cover the new prompt, what the running
//!    sequences' pending rows still need, and one spare block per running sequence;
//! 3. the step is planned: one row for every decoding sequence, then prompt chunks of the
//!    prefilling ones (oldest first) up to `step_tokens` rows in all, so a new page's prefill
//!    is interleaved with the others' decoding instead of stalling it;
//! 4. when the rows need more blocks than are free, the newest sequences are evicted (their
//!    cache freed, their state kept) and wait at the head of the queue to be recomputed;
//! 5. one batched forward runs; tokens are streamed to their owners, and finished or failed
//!    sequences leave and free their blocks.
//!
//! The scheduler knows pages only through [`SeqOwner`] (cancel flag, token hook, reply), so
//! the engine thread and tests drive it alike.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use super::batching::{DecodeSession, Feed, Prepared, SeqEvent};
use super::{EngineError, PageText};
use crate::model::paged_cache::BLOCK_SIZE;
use crate::model::{GenerationConfig, SeqId};

/// The owner of a sequence: where its tokens and result go.
pub trait SeqOwner: Send {
    /// True once the owner no longer wants the page.
    fn cancelled(&self) -> bool;
    /// A piece of generated text.
    fn token(&mut self, piece: &str);
    /// The page's result (called once). `ids` are the generated ids (EOS excluded).
    fn done(self: Box<Self>, result: Result<PageText, EngineError>, ids: &[u32]);
}

/// Limits of the scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// Most sequences decoding together.
    pub max_running: usize,
    /// Most rows (decode tokens + prefill rows) in one forward.
    pub step_tokens: usize,
}

impl Default for SchedulerConfig {
    /// 8 sequences, 256 rows per step.
    fn default() -> Self {
        SchedulerConfig { max_running: 8, step_tokens: DEFAULT_STEP_TOKENS }
    }
}

/// Default rows per step: large enough for efficient prefill products, small enough that a
/// prefilling page delays the decoding ones by a fraction of a second on a CPU.
pub const DEFAULT_STEP_TOKENS: usize = 256;

/// A page waiting to run.
struct Waiting {
    seq: SeqId,
    /// The prepared page; None for an evicted sequence (its state is in the session).
    page: Option<Prepared>,
    generation: GenerationConfig,
    owner: Box<dyn SeqOwner>,
}

/// A page in the running set.
struct Running {
    seq: SeqId,
    owner: Box<dyn SeqOwner>,
    generation: GenerationConfig,
}

/// What one step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepReport {
    /// Sequences in the forward.
    pub sequences: usize,
    /// Rows in the forward.
    pub rows: usize,
    /// Sequences that left (finished, failed or cancelled).
    pub finished: usize,
    /// Sequences evicted to make room.
    pub evicted: usize,
    /// Time in the forward.
    pub busy: Duration,
}

/// Continuous batching over one session; see the [module docs](self).
pub struct Scheduler<'s> {
    session: Box<dyn DecodeSession + 's>,
    config: SchedulerConfig,
    waiting: VecDeque<Waiting>,
    running: Vec<Running>,
    next_seq: SeqId,
}

impl<'s> Scheduler<'s> {
    /// A scheduler over `session`.
    pub fn new(session: Box<dyn DecodeSession + 's>, config: SchedulerConfig) -> Self {
        let config = SchedulerConfig {
            max_running: config.max_running.max(1),
            step_tokens: config.step_tokens.max(config.max_running.max(1) + 1),
        };
        Scheduler { session, config, waiting: VecDeque::new(), running: Vec::new(), next_seq: 0 }
    }

    /// Queues a prepared page.
    pub fn submit(&mut self, page: Prepared, generation: GenerationConfig, owner: Box<dyn SeqOwner>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.waiting.push_back(Waiting { seq, page: Some(page), generation, owner });
    }

    /// True when nothing runs or waits.
    pub fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.running.is_empty()
    }

    /// Sequences running.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Sequences waiting.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// The session (for statistics).
    pub fn session(&self) -> &dyn DecodeSession {
        self.session.as_ref()
    }

    /// Runs one step; see the [module docs](self).
    pub fn step(&mut self) -> StepReport {
        let mut report = StepReport { finished: self.sweep_cancelled(), ..Default::default() };
        self.admit(&mut report);
        let feeds = self.plan(&mut report);
        if feeds.is_empty() {
            return report;
        }
        report.sequences = feeds.len();
        report.rows = feeds.iter().map(|f| f.rows).sum();
        let started = Instant::now();
        let session = &mut self.session;
        let result = catch_unwind(AssertUnwindSafe(|| session.step(&feeds)))
            .unwrap_or_else(|_| Err(EngineError::Model("the engine panicked".into())));
        report.busy = started.elapsed();
        match result {
            Ok(events) => {
                for event in events {
                    match event {
                        SeqEvent::Token { seq, piece } => {
                            if let (Some(piece), Some(r)) = (piece, self.running.iter_mut().find(|r| r.seq == seq)) {
                                r.owner.token(&piece);
                            }
                        }
                        SeqEvent::Done { seq, result, ids } => {
                            if let Some(r) = self.take_running(seq) {
                                report.finished += 1;
                                r.owner.done(result, &ids);
                            }
                        }
                    }
                }
            }
            Err(e) => {
                // A failed forward leaves the cache of every sequence in it undefined.
                tracing::warn!(error = %e, sequences = feeds.len(), "batched step failed");
                for f in &feeds {
                    if let Some(r) = self.take_running(f.seq) {
                        report.finished += 1;
                        r.owner.done(Err(copy_error(&e)), &[]);
                    }
                }
            }
        }
        report
    }

    /// Removes a running sequence and frees its cache.
    fn take_running(&mut self, seq: SeqId) -> Option<Running> {
        let i = self.running.iter().position(|r| r.seq == seq)?;
        self.session.finish(seq);
        Some(self.running.remove(i))
    }

    /// Answers and drops cancelled sequences; returns how many.
    fn sweep_cancelled(&mut self) -> usize {
        let mut n = 0;
        let mut i = 0;
        while i < self.running.len() {
            if self.running[i].owner.cancelled() {
                let r = self.running.remove(i);
                self.session.finish(r.seq);
                r.owner.done(Err(EngineError::Cancelled), &[]);
                n += 1;
            } else {
                i += 1;
            }
        }
        let (gone, kept): (Vec<_>, Vec<_>) = self.waiting.drain(..).partition(|w| w.owner.cancelled());
        self.waiting = kept.into();
        for w in gone {
            self.session.finish(w.seq);
            w.owner.done(Err(EngineError::Cancelled), &[]);
            n += 1;
        }
        n
    }

    /// Blocks the running sequences still need for their pending rows.
    fn outstanding_blocks(&self) -> usize {
        self.running.iter().map(|r| self.session.blocks_needed(r.seq, self.session.pending(r.seq))).sum()
    }

    /// Moves waiting pages into the running set while there is room.
    fn admit(&mut self, report: &mut StepReport) {
        while self.running.len() < self.config.max_running {
            let Some(w) = self.waiting.front() else { break };
            let rows = match &w.page {
                Some(p) => p.prompt_tokens,
                None => self.session.pending(w.seq),
            };
            let need = self.session.blocks_for(rows + 1);
            let free = self.session.free_blocks().saturating_sub(self.outstanding_blocks());
            // An empty running set always admits, so a page larger than the cache fails
            // loudly below instead of waiting forever.
            if !self.running.is_empty() && free < need + self.running.len() {
                break;
            }
            let mut w = self.waiting.pop_front().expect("front exists");
            if let Some(page) = w.page.take() {
                if let Err(e) = self.session.start(w.seq, page, &w.generation) {
                    report.finished += 1;
                    w.owner.done(Err(e), &[]);
                    continue;
                }
            }
            self.running.push(Running { seq: w.seq, owner: w.owner, generation: w.generation });
        }
    }

    /// The feeds of this step, evicting the newest sequences when blocks run short.
    fn plan(&mut self, report: &mut StepReport) -> Vec<Feed> {
        loop {
            let mut feeds = Vec::with_capacity(self.running.len());
            let mut budget = self.config.step_tokens;
            let mut free = self.session.free_blocks();
            let mut short = false;
            // Decoding sequences first: one row each.
            for r in self.running.iter().filter(|r| self.session.decoding(r.seq)) {
                let rows = self.session.pending(r.seq).min(1);
                let need = self.session.blocks_needed(r.seq, rows);
                if need > free {
                    short = true;
                    break;
                }
                free -= need;
                budget = budget.saturating_sub(rows);
                feeds.push(Feed { seq: r.seq, rows });
            }
            // Then prompt chunks, oldest first, within the row budget and the free blocks.
            for r in self.running.iter().filter(|r| !self.session.decoding(r.seq)) {
                if short || budget == 0 {
                    break;
                }
                let pending = self.session.pending(r.seq);
                let mut rows = pending.min(budget);
                while rows > 0 && self.session.blocks_needed(r.seq, rows) > free {
                    // Shrink to what the free blocks hold.
                    rows = (rows - 1) / BLOCK_SIZE * BLOCK_SIZE;
                }
                if rows == 0 {
                    short = feeds.is_empty();
                    break;
                }
                free -= self.session.blocks_needed(r.seq, rows);
                budget -= rows;
                feeds.push(Feed { seq: r.seq, rows });
            }
            feeds.retain(|f| f.rows > 0);
            if !short {
                return feeds;
            }
            // Evict the newest sequence and plan again.
            match self.running.len() {
                0 => return Vec::new(),
                1 => {
                    let r = self.running.pop().expect("one running");
                    self.session.finish(r.seq);
                    report.finished += 1;
                    let msg = "the page needs more KV cache than the budget (--kv-cache-mb) holds";
                    r.owner.done(Err(EngineError::Model(msg.into())), &[]);
                }
                _ => {
                    let r = self.running.pop().expect("several running");
                    self.session.evict(r.seq);
                    report.evicted += 1;
                    self.waiting.push_front(Waiting {
                        seq: r.seq,
                        page: None,
                        generation: r.generation,
                        owner: r.owner,
                    });
                }
            }
        }
    }
}

/// A copy of an error, for every sequence of a failed step.
fn copy_error(e: &EngineError) -> EngineError {
    match e {
        EngineError::InvalidRequest(m) => EngineError::InvalidRequest(m.clone()),
        EngineError::Cancelled => EngineError::Cancelled,
        EngineError::Model(m) => EngineError::Model(m.clone()),
    }
}
