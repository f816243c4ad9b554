//! A deterministic stand-in for the model, for tests of everything around it.
//!
//! Its output is real DeepSeek-OCR grounding syntax derived from the page image (size and
//! mean brightness), so the structuring, language and rendering stages get realistic input.
//!
//! It also batches like the real engine ([`BatchEngine`]): a "prompt" of one row, then one
//! text piece per step for every running page, with the per-token delay paid once per step,
//! so the pipeline and the server exercise the token-level scheduler without a model.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::batching::{BatchEngine, DecodeSession, Feed, Prepared, SeqEvent};
use super::{EngineError, EngineInfo, Flow, OcrEngine, PageJob, PageText, PageTimings, TokenSink};
use crate::model::{GenerationConfig, PageOutcome, SeqId, Task};

/// Environment variable read by [`FakeEngine::from_env`]: a per-token delay in milliseconds,
/// honoured only by the fake engine (`--model fake`).
pub const FAKE_TOKEN_DELAY_ENV: &str = "DOCSEEK_FAKE_TOKEN_DELAY_MS";

/// Environment variable read by [`FakeEngine::from_env`]: a file whose content the fake engine
/// emits verbatim for every page (same name as `docseek serve` reads).
pub const FAKE_SCRIPT_ENV: &str = "DOCSEEK_FAKE_SCRIPT_FILE";

/// A fake engine: deterministic text, optional per-token delay, optional scripted output.
#[derive(Debug, Clone, Default)]
pub struct FakeEngine {
    /// Sleep this long per emitted token (to test progress, cancellation, timeouts).
    pub token_delay: Duration,
    /// When set, emit exactly this raw text instead of the generated description.
    pub script: Option<String>,
}

impl FakeEngine {
    /// A fake engine with no delay.
    pub fn new() -> Self {
        Self::default()
    }

    /// A fake engine whose per-token delay comes from [`FAKE_TOKEN_DELAY_ENV`] (milliseconds)
    /// and whose output may come from [`FAKE_SCRIPT_ENV`], so end-to-end tests of the binary
    /// can slow it down or script it; unset means no delay, generated text.
    pub fn from_env() -> anyhow::Result<Self> {
        let mut engine = Self::new();
        if let Ok(ms) = std::env::var(FAKE_TOKEN_DELAY_ENV) {
            let ms: u64 = ms.trim().parse().map_err(|_| {
                anyhow::anyhow!("{FAKE_TOKEN_DELAY_ENV} must be a whole number of milliseconds, got '{ms}'")
            })?;
            engine.token_delay = Duration::from_millis(ms);
        }
        if let Ok(path) = std::env::var(FAKE_SCRIPT_ENV) {
            let script = std::fs::read_to_string(&path)
                .map_err(|e| anyhow::anyhow!("cannot read {FAKE_SCRIPT_ENV}={path}: {e}"))?;
            engine.script = Some(script);
        }
        Ok(engine)
    }

    /// Builds the fake's answer for a job.
    fn answer(&self, job: &PageJob) -> String {
        if let Some(script) = &self.script {
            return script.clone();
        }
        let (w, h) = job.image.dimensions();
        let pixels = (w as u64 * h as u64).max(1);
        let sum: u64 = job.image.pixels().map(|p| p.0.iter().map(|&c| c as u64).sum::<u64>()).sum();
        let mean = sum / (3 * pixels);
        match job.task {
            Task::Markdown | Task::Ocr => format!(
                "<|ref|>title<|/ref|><|det|>[[100, 40, 900, 80]]<|/det|>\n# Page {w}x{h}\n\n\
                 <|ref|>text<|/ref|><|det|>[[100, 120, 900, 300]]<|/det|>\n\
                 The mean brightness of this page is {mean}. This text comes from the fake engine.\n"
            ),
            _ => format!("Page {w}x{h}, mean brightness {mean}."),
        }
    }
}

impl OcrEngine for FakeEngine {
    fn info(&self) -> EngineInfo {
        EngineInfo { model: "fake".into(), architecture: "fake".into(), device: "cpu".into(), dtype: "none".into() }
    }

    fn recognize(&self, job: &PageJob, sink: &mut dyn TokenSink) -> Result<PageText, EngineError> {
        check(job)?;
        let start = Instant::now();
        let text = self.answer(job);
        // "Tokens" are whitespace-delimited pieces with their leading space, like BPE pieces.
        let pieces: Vec<&str> = text.split_inclusive(' ').collect();
        let budget = job.generation.max_new_tokens;
        let mut raw = String::new();
        let mut generated = 0;
        for piece in pieces.iter().take(budget) {
            if !self.token_delay.is_zero() {
                std::thread::sleep(self.token_delay);
            }
            if sink.on_token(piece) == Flow::Stop {
                return Err(EngineError::Cancelled);
            }
            raw.push_str(piece);
            generated += 1;
        }
        let outcome = if generated < pieces.len() { PageOutcome::Length } else { PageOutcome::Finished };
        Ok(PageText {
            raw,
            outcome,
            prompt_tokens: 1,
            generated_tokens: generated,
            timings: PageTimings { decode: start.elapsed(), ..Default::default() },
        })
    }

    fn batching(&self) -> Option<&dyn BatchEngine> {
        Some(self)
    }
}

/// Refuses what the real engine refuses before any work.
fn check(job: &PageJob) -> Result<(), EngineError> {
    if job.task == Task::Locate && job.locate.as_deref().is_none_or(|t| t.trim().is_empty()) {
        return Err(EngineError::InvalidRequest("locate needs a target text".into()));
    }
    Ok(())
}

/// The fake's prepared page: its text pieces.
struct FakePage(Vec<String>);

impl BatchEngine for FakeEngine {
    fn prepare(&self, job: &PageJob) -> Result<Prepared, EngineError> {
        check(job)?;
        let pieces = self.answer(job).split_inclusive(' ').map(str::to_string).collect();
        Ok(Prepared { payload: Box::new(FakePage(pieces)), prompt_tokens: 1, encode: Duration::ZERO })
    }

    fn session(&self, _kv_cache_bytes: Option<usize>) -> Result<Box<dyn DecodeSession + '_>, EngineError> {
        Ok(Box::new(FakeSession { token_delay: self.token_delay, seqs: HashMap::new() }))
    }
}

/// One fake sequence.
struct FakeSeq {
    pieces: Vec<String>,
    /// Pieces it may emit (the budget).
    limit: usize,
    next: usize,
    pending: usize,
    started: Instant,
}

/// Fake decoding: no cache, one piece per sequence per step.
struct FakeSession {
    token_delay: Duration,
    seqs: HashMap<SeqId, FakeSeq>,
}

/// Blocks the fake claims to have (it holds no cache).
const FAKE_BLOCKS: usize = 1 << 30;

impl DecodeSession for FakeSession {
    fn total_blocks(&self) -> usize {
        FAKE_BLOCKS
    }

    fn free_blocks(&self) -> usize {
        FAKE_BLOCKS
    }

    fn blocks_for(&self, _tokens: usize) -> usize {
        0
    }

    fn blocks_needed(&self, _seq: SeqId, _rows: usize) -> usize {
        0
    }

    fn start(&mut self, seq: SeqId, page: Prepared, generation: &GenerationConfig) -> Result<(), EngineError> {
        let not_fake = |_| EngineError::Model("not a fake page".into());
        let FakePage(pieces) = *page.payload.downcast::<FakePage>().map_err(not_fake)?;
        let limit = pieces.len().min(generation.max_new_tokens);
        self.seqs.insert(seq, FakeSeq { pieces, limit, next: 0, pending: 1, started: Instant::now() });
        Ok(())
    }

    fn pending(&self, seq: SeqId) -> usize {
        self.seqs.get(&seq).map_or(0, |s| s.pending)
    }

    fn decoding(&self, seq: SeqId) -> bool {
        self.seqs.get(&seq).is_some_and(|s| s.next > 0)
    }

    fn step(&mut self, feeds: &[Feed]) -> Result<Vec<SeqEvent>, EngineError> {
        if !self.token_delay.is_zero() {
            std::thread::sleep(self.token_delay);
        }
        let mut events = Vec::new();
        for f in feeds {
            let Some(s) = self.seqs.get_mut(&f.seq) else { continue };
            s.pending -= f.rows.min(s.pending);
            if s.pending > 0 {
                continue;
            }
            if s.next < s.limit {
                events.push(SeqEvent::Token { seq: f.seq, piece: Some(s.pieces[s.next].clone()) });
                s.next += 1;
                s.pending = 1;
            }
            if s.next == s.limit {
                let outcome = if s.limit < s.pieces.len() { PageOutcome::Length } else { PageOutcome::Finished };
                let text = PageText {
                    raw: s.pieces[..s.limit].concat(),
                    outcome,
                    prompt_tokens: 1,
                    generated_tokens: s.limit,
                    timings: PageTimings { decode: s.started.elapsed(), ..Default::default() },
                };
                events.push(SeqEvent::Done { seq: f.seq, result: Ok(text), ids: Vec::new() });
            }
        }
        Ok(events)
    }

    fn evict(&mut self, _seq: SeqId) {}

    fn finish(&mut self, seq: SeqId) {
        self.seqs.remove(&seq);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::engine::NoSink;
    use crate::model::GenerationConfig;

    fn job(task: Task, max_new_tokens: usize) -> PageJob {
        PageJob {
            image: Arc::new(image::RgbImage::from_pixel(20, 10, image::Rgb([200, 100, 0]))),
            mode: crate::Mode::Base,
            task,
            locate: None,
            generation: GenerationConfig { max_new_tokens, ..Default::default() },
        }
    }

    #[test]
    fn output_depends_on_the_image_and_streams() {
        let engine = FakeEngine::new();
        let mut streamed = String::new();
        let mut sink = |p: &str| {
            streamed.push_str(p);
            Flow::Continue
        };
        let out = engine.recognize(&job(Task::Markdown, 10_000), &mut sink).unwrap();
        assert!(out.raw.contains("# Page 20x10"), "{}", out.raw);
        assert!(out.raw.contains("brightness of this page is 100."));
        assert_eq!(streamed, out.raw);
        assert_eq!(out.outcome, PageOutcome::Finished);
    }

    #[test]
    fn budget_and_cancellation() {
        let engine = FakeEngine::new();
        let out = engine.recognize(&job(Task::Free, 2), &mut NoSink).unwrap();
        assert_eq!(out.generated_tokens, 2);
        assert_eq!(out.outcome, PageOutcome::Length);
        let mut stop = |_: &str| Flow::Stop;
        assert!(matches!(engine.recognize(&job(Task::Free, 5), &mut stop), Err(EngineError::Cancelled)));
        assert!(matches!(engine.recognize(&job(Task::Locate, 5), &mut NoSink), Err(EngineError::InvalidRequest(_))));
    }
}
