//! The token-level scheduler over the real decoder (shared fixtures, no tokenizer):
//! parity with unbatched decoding while pages of different lengths join and leave, and when
//! a small KV budget forces evictions (recomputation); cancellation within one step;
//! admission by the budget; a page larger than the cache failing loudly.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use candle_core::{DType, Tensor};
use docseek::engine::scheduler::{Scheduler, SchedulerConfig, SeqOwner};
use docseek::engine::session::{DecoderSession, PromptRows};
use docseek::engine::{EngineError, PageText, Prepared};
use docseek::model::generation::{generate, GenerationConfig, Silent};
use docseek::model::prompt::embed_with_image;
use docseek::model::{DeepseekDecoder, NgramGuard, PagedKvCache};
use docseek::parity::decoder::load_decoder;
use docseek::parity::fixture::Fixture;

fn fixture(name: &str) -> (Fixture, DeepseekDecoder) {
    let root = match std::env::var_os("DOCSEEK_FIXTURES") {
        Some(p) => PathBuf::from(p),
        None => ["../shared/fixtures", "../../shared/fixtures"]
            .iter()
            .map(|c| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(c))
            .find(|c| c.is_dir())
            .expect("parity fixtures not found (or set DOCSEEK_FIXTURES)"),
    };
    let dir = root.join(name);
    let fx = Fixture::load(&dir, name.to_string()).unwrap();
    let (_, dec) = load_decoder(&dir, DType::F32, &candle_core::Device::Cpu).unwrap();
    (fx, dec)
}

/// What an owner heard.
#[derive(Default)]
struct Outcome {
    result: Option<Result<PageText, EngineError>>,
    ids: Vec<u32>,
    /// Scheduler step (as counted by the test) at which it finished.
    step: usize,
}

/// Records a sequence's end; its cancel flag is shared with the test.
struct Recorder {
    cancel: Arc<AtomicBool>,
    out: Arc<Mutex<Outcome>>,
    clock: Arc<Mutex<usize>>,
}

impl SeqOwner for Recorder {
    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
    fn token(&mut self, _piece: &str) {}
    fn done(self: Box<Self>, result: Result<PageText, EngineError>, ids: &[u32]) {
        let mut o = self.out.lock().unwrap();
        o.result = Some(result);
        o.ids = ids.to_vec();
        o.step = *self.clock.lock().unwrap();
    }
}

/// One page of a test run.
struct Page {
    embeds: Tensor,
    ids: Vec<u32>,
    cfg: GenerationConfig,
    /// Step at which it is submitted.
    at: usize,
    cancel: Arc<AtomicBool>,
    out: Arc<Mutex<Outcome>>,
}

fn page(embeds: Tensor, ids: Vec<u32>, max_new: usize, ngram: NgramGuard, at: usize) -> Page {
    let cfg = GenerationConfig { max_new_tokens: max_new, ngram, loop_guard: None, ..Default::default() };
    Page { embeds, ids, cfg, at, cancel: Arc::default(), out: Arc::default() }
}

/// The OCR fixture's modes as pages (different prompt lengths), joining every other step.
fn ocr_pages(fx: &Fixture, dec: &DeepseekDecoder) -> Vec<Page> {
    let image_token = fx.config["image_token_id"].as_u64().unwrap() as u32;
    let modes = fx.expected_json["modes"].as_object().unwrap();
    let mut pages = Vec::new();
    for (k, (mode, m)) in modes.iter().enumerate() {
        let ids: Vec<u32> = m["input_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let image = fx.expected[&format!("{mode}.image_embeds")].clone();
        let embeds = embed_with_image(dec, &ids, image_token, Some(&image)).unwrap();
        let guard = if k % 2 == 0 { NgramGuard::Off } else { NgramGuard::Hf { size: 3 } };
        pages.push(page(embeds, ids, [32, 12, 25, 7, 18][k % 5], guard, 2 * k));
    }
    pages
}

/// Runs `pages` through a scheduler; `on_step` runs before each step with the step number.
/// Returns (steps, sequences evicted, most sequences in one step).
fn run(sched: &mut Scheduler, pages: &[Page], mut on_step: impl FnMut(usize)) -> (usize, usize, usize) {
    let clock = Arc::new(Mutex::new(0usize));
    let (mut evicted, mut widest) = (0, 0);
    let mut step = 0;
    loop {
        for p in pages.iter().filter(|p| p.at == step) {
            let prepared = Prepared {
                payload: Box::new(PromptRows { embeds: p.embeds.clone(), ids: p.ids.clone() }),
                prompt_tokens: p.ids.len(),
                encode: Duration::ZERO,
            };
            let owner = Recorder { cancel: p.cancel.clone(), out: p.out.clone(), clock: clock.clone() };
            sched.submit(prepared, p.cfg.clone(), Box::new(owner));
        }
        if sched.is_idle() && pages.iter().all(|p| p.at <= step) {
            return (step, evicted, widest);
        }
        on_step(step);
        *clock.lock().unwrap() = step;
        let report = sched.step();
        evicted += report.evicted;
        widest = widest.max(report.sequences);
        step += 1;
        assert!(step < 10_000, "the scheduler does not finish");
    }
}

fn unbatched(dec: &DeepseekDecoder, p: &Page) -> Vec<u32> {
    generate(dec, &p.embeds, &p.ids, dec.config().eos_token_id, &p.cfg, &mut Silent).unwrap().unwrap().ids
}

fn block_bytes(dec: &DeepseekDecoder) -> usize {
    PagedKvCache::block_bytes(dec.cache_layout(), dec.config().num_hidden_layers, DType::F32)
}

#[test]
fn scheduled_pages_of_different_lengths_decode_like_unbatched_ones() {
    for name in ["ocr1-tiny", "ocr2-tiny"] {
        let (fx, dec) = fixture(name);
        let pages = ocr_pages(&fx, &dec);
        // Room for the longest page and 400 tokens more: the pages cannot all run at once.
        let longest = pages.iter().map(|p| p.ids.len() + p.cfg.max_new_tokens).max().unwrap();
        let blocks = longest.div_ceil(16) + 25;
        let session = DecoderSession::new(&dec, None, blocks * block_bytes(&dec)).unwrap();
        let mut sched = Scheduler::new(Box::new(session), SchedulerConfig { max_running: 4, step_tokens: 96 });
        let (steps, evicted, widest) = run(&mut sched, &pages, |_| {});
        assert!(widest >= 2, "{name}: at most {widest} sequences per step");
        assert_eq!(sched.session().free_blocks(), sched.session().total_blocks(), "{name}: blocks leaked");
        for (k, p) in pages.iter().enumerate() {
            let out = p.out.lock().unwrap();
            let text = out.result.as_ref().expect("finished").as_ref().expect("ok");
            assert_eq!(out.ids, unbatched(&dec, p), "{name} page {k}: scheduled vs unbatched");
            assert_eq!(text.generated_tokens, out.ids.len());
            assert_eq!(text.prompt_tokens, p.ids.len());
        }
        println!("{name}: {} pages in {steps} steps, {evicted} evictions, up to {widest} per step", pages.len());
    }
}

#[test]
fn a_cancelled_page_leaves_within_one_step_and_frees_its_blocks() {
    let (fx, dec) = fixture("ocr1-tiny");
    let mut pages = ocr_pages(&fx, &dec);
    for p in &mut pages {
        p.at = 0;
        p.cfg.max_new_tokens = 32;
    }
    let session = DecoderSession::new(&dec, None, 400 * block_bytes(&dec)).unwrap();
    let mut sched = Scheduler::new(Box::new(session), SchedulerConfig { max_running: 8, step_tokens: 2048 });
    let cancel = pages[2].cancel.clone();
    let cancel_at = 6;
    run(&mut sched, &pages, |step| {
        if step == cancel_at {
            cancel.store(true, Ordering::Relaxed);
        }
    });
    let out = pages[2].out.lock().unwrap();
    assert!(matches!(out.result, Some(Err(EngineError::Cancelled))), "{:?}", out.result.as_ref().map(|r| r.is_ok()));
    // Cancelled before step 6 ran: answered in that step, before any forward.
    assert_eq!(out.step, cancel_at);
    // The others are untouched.
    for (k, p) in pages.iter().enumerate().filter(|(k, _)| *k != 2) {
        assert_eq!(p.out.lock().unwrap().ids, unbatched(&dec, p), "page {k}");
    }
    assert_eq!(sched.session().free_blocks(), sched.session().total_blocks());
}

#[test]
fn admission_follows_the_kv_budget_and_an_oversized_page_fails() {
    let (fx, dec) = fixture("mla-tiny");
    let ids: Vec<u32> =
        fx.expected_json["input_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let embeds = dec.embed(&ids).unwrap();
    // 40-token prompts (3 blocks) + 32 new tokens = 5 blocks each: 12 blocks take three
    // prompts with a spare block each, never all four, and evictions make room as they grow.
    let pages: Vec<Page> = (0..4).map(|_| page(embeds.clone(), ids.clone(), 32, NgramGuard::Off, 0)).collect();
    let session = DecoderSession::new(&dec, None, 12 * block_bytes(&dec)).unwrap();
    let mut sched = Scheduler::new(Box::new(session), SchedulerConfig { max_running: 8, step_tokens: 256 });
    let (_, evicted, widest) = run(&mut sched, &pages, |_| {});
    assert!((2..4).contains(&widest), "{widest} sequences ran in a cache of 12 blocks");
    assert!(evicted > 0, "three growing sequences fit 12 blocks without eviction?");
    // Evicted pages were recomputed from their prompt and ids: same greedy ids.
    let want = unbatched(&dec, &pages[0]);
    for p in &pages {
        assert_eq!(p.out.lock().unwrap().ids, want);
    }
    // Two blocks cannot hold a 40-token prompt: the page fails with the reason.
    let tiny = DecoderSession::new(&dec, None, 2 * block_bytes(&dec)).unwrap();
    let mut sched = Scheduler::new(Box::new(tiny), SchedulerConfig::default());
    let big = [page(embeds, ids, 4, NgramGuard::Off, 0)];
    run(&mut sched, &big, |_| {});
    let out = big[0].out.lock().unwrap();
    match out.result.as_ref().unwrap() {
        Err(EngineError::Model(m)) => assert!(m.contains("--kv-cache-mb"), "{m}"),
        other => panic!("expected a KV budget error, got {:?}", other.as_ref().map(|t| t.generated_tokens)),
    }
    assert_eq!(sched.session().free_blocks(), sched.session().total_blocks());
}
