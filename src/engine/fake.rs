//! A deterministic stand-in for the model, for tests of everything around it.
//!
//! Its output is real DeepSeek-OCR grounding syntax derived from the page image (size and
//! mean brightness), so the structuring, language and rendering stages get realistic input.

use std::time::{Duration, Instant};

use super::{EngineError, EngineInfo, Flow, OcrEngine, PageJob, PageText, PageTimings, TokenSink};
use crate::model::{PageOutcome, Task};

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
        EngineInfo {
            model: "fake".into(),
            architecture: "fake".into(),
            device: "cpu".into(),
            dtype: "none".into(),
        }
    }

    fn recognize(&self, job: &PageJob, sink: &mut dyn TokenSink) -> Result<PageText, EngineError> {
        if job.task == Task::Locate && job.locate.as_deref().is_none_or(|t| t.trim().is_empty()) {
            return Err(EngineError::InvalidRequest("locate needs a target text".into()));
        }
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
