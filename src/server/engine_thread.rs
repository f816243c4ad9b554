//! The engine owner: one OS thread holds the [`OcrEngine`] and is fed pages from every request
//! through a bounded channel; each reply travels back on a oneshot.
//!
//! Pages waiting in the channel are drained into a batch (up to `max_batch`), so pages from
//! different requests share one `recognize_batch` call. Pages that need streaming or early
//! cancellation (a batch of one, or a streaming request) run through `recognize` with a token
//! sink. A token-level scheduler would replace the body of [`run_batch`] and keep this interface.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use crate::engine::{EngineError, EngineInfo, Flow, OcrEngine, PageJob, PageText};
use crate::server::metrics;

/// A shared cancellation flag.
pub type CancelFlag = Arc<AtomicBool>;

/// One page for the engine thread.
pub struct PageRequest {
    /// The page.
    pub job: PageJob,
    /// Set when the owner no longer wants the result.
    pub cancel: CancelFlag,
    /// Receives text pieces as they are generated (forces the streaming path).
    pub stream: Option<mpsc::UnboundedSender<String>>,
    /// Where the result goes.
    pub reply: oneshot::Sender<Result<PageText, EngineError>>,
    /// When the page was queued.
    pub enqueued: Instant,
}

/// The handle requests use to reach the engine thread.
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<PageRequest>,
    info: EngineInfo,
}

impl EngineHandle {
    /// Starts the engine thread with a queue of `capacity` pages and batches of up to `max_batch`.
    pub fn spawn(engine: Arc<dyn OcrEngine>, capacity: usize, max_batch: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let info = engine.info();
        std::thread::Builder::new()
            .name("docseek-engine".into())
            .spawn(move || engine_loop(engine, rx, max_batch.max(1)))
            .expect("spawning the engine thread");
        EngineHandle { tx, info }
    }

    /// What the engine is.
    pub fn info(&self) -> &EngineInfo {
        &self.info
    }

    /// Recognises one page, waiting for queue space (back-pressure) and the result.
    pub async fn recognize(
        &self,
        job: PageJob,
        cancel: CancelFlag,
        stream: Option<mpsc::UnboundedSender<String>>,
    ) -> Result<PageText, EngineError> {
        let (reply, rx) = oneshot::channel();
        let m = metrics::global();
        m.engine_queue_depth.fetch_add(1, Ordering::Relaxed);
        let req = PageRequest { job, cancel, stream, reply, enqueued: Instant::now() };
        if self.tx.send(req).await.is_err() {
            m.engine_queue_depth.fetch_sub(1, Ordering::Relaxed);
            return Err(EngineError::Model("the engine thread has stopped".into()));
        }
        rx.await.unwrap_or_else(|_| Err(EngineError::Model("the engine thread dropped the page".into())))
    }
}

fn engine_loop(engine: Arc<dyn OcrEngine>, mut rx: mpsc::Receiver<PageRequest>, max_batch: usize) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let m = metrics::global();
        m.engine_queue_depth.fetch_sub(batch.len() as u64, Ordering::Relaxed);
        // Pages whose owner has gone are answered without running.
        let (live, dead): (Vec<_>, Vec<_>) = batch.into_iter().partition(|r| !r.cancel.load(Ordering::Relaxed));
        for r in dead {
            let _ = r.reply.send(Err(EngineError::Cancelled));
        }
        if !live.is_empty() {
            run_batch(engine.as_ref(), live);
        }
    }
    tracing::info!("engine thread stopped");
}

/// Runs one batch: streaming pages one by one with a sink, the others in one batched call.
fn run_batch(engine: &dyn OcrEngine, batch: Vec<PageRequest>) {
    let m = metrics::global();
    let (single, batched): (Vec<_>, Vec<_>) =
        batch.into_iter().partition(|r| r.stream.is_some());
    let (single, batched) = if batched.len() == 1 { (single.into_iter().chain(batched).collect(), Vec::new()) } else { (single, batched) };
    for r in single {
        m.batch_size.observe(1.0);
        let cancel = r.cancel.clone();
        let stream = r.stream.clone();
        let mut sink = |piece: &str| {
            if let Some(s) = &stream {
                let _ = s.send(piece.to_string());
            }
            if cancel.load(Ordering::Relaxed) { Flow::Stop } else { Flow::Continue }
        };
        let result = catch_unwind(AssertUnwindSafe(|| engine.recognize(&r.job, &mut sink)))
            .unwrap_or_else(|_| Err(EngineError::Model("the engine panicked".into())));
        finish(r.reply, r.enqueued, result);
    }
    if !batched.is_empty() {
        m.batch_size.observe(batched.len() as f64);
        let jobs: Vec<PageJob> = batched.iter().map(|r| r.job.clone()).collect();
        let results = catch_unwind(AssertUnwindSafe(|| engine.recognize_batch(&jobs)))
            .unwrap_or_else(|_| jobs.iter().map(|_| Err(EngineError::Model("the engine panicked".into()))).collect());
        let mut results = results.into_iter();
        for r in batched {
            let result = results.next().unwrap_or_else(|| Err(EngineError::Model("the engine returned too few results".into())));
            finish(r.reply, r.enqueued, result);
        }
    }
}

fn finish(reply: oneshot::Sender<Result<PageText, EngineError>>, enqueued: Instant, result: Result<PageText, EngineError>) {
    let m = metrics::global();
    match &result {
        Ok(text) => m.page_done(text.generated_tokens as u64, enqueued.elapsed()),
        Err(EngineError::Cancelled) => {}
        Err(_) => {
            m.page_failures.fetch_add(1, Ordering::Relaxed);
        }
    }
    let _ = reply.send(result);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{FakeEngine, NoSink, PageTimings, TokenSink};
    use crate::model::{GenerationConfig, PageOutcome, Task};
    use std::sync::Mutex;

    /// Records the size of each batch call.
    struct Recorder {
        batches: Mutex<Vec<usize>>,
        inner: FakeEngine,
    }

    impl OcrEngine for Recorder {
        fn info(&self) -> EngineInfo {
            self.inner.info()
        }
        fn recognize(&self, job: &PageJob, sink: &mut dyn TokenSink) -> Result<PageText, EngineError> {
            self.batches.lock().unwrap().push(1);
            self.inner.recognize(job, sink)
        }
        fn recognize_batch(&self, jobs: &[PageJob]) -> Vec<Result<PageText, EngineError>> {
            self.batches.lock().unwrap().push(jobs.len());
            std::thread::sleep(std::time::Duration::from_millis(20));
            jobs.iter().map(|j| self.inner.recognize(j, &mut NoSink)).collect()
        }
    }

    fn page() -> PageJob {
        PageJob {
            image: Arc::new(image::RgbImage::new(8, 8)),
            mode: crate::Mode::Tiny,
            task: Task::Free,
            locate: None,
            generation: GenerationConfig::default(),
        }
    }

    #[tokio::test]
    async fn pages_from_many_requests_share_batches() {
        let rec = Arc::new(Recorder { batches: Mutex::new(Vec::new()), inner: FakeEngine::new() });
        let handle = EngineHandle::spawn(rec.clone(), 64, 8);
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let h = handle.clone();
            tasks.push(tokio::spawn(async move { h.recognize(page(), Arc::default(), None).await }));
        }
        for t in tasks {
            let out = t.await.unwrap().unwrap();
            assert_eq!(out.outcome, PageOutcome::Finished);
        }
        let batches = rec.batches.lock().unwrap().clone();
        assert_eq!(batches.iter().sum::<usize>(), 16);
        assert!(batches.iter().any(|&b| b > 1), "no batching happened: {batches:?}");
        assert!(batches.iter().all(|&b| b <= 8), "{batches:?}");
        let _ = PageTimings::default();
    }

    #[tokio::test]
    async fn streaming_and_cancellation() {
        let handle = EngineHandle::spawn(Arc::new(FakeEngine::new()), 4, 4);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let out = handle.recognize(page(), Arc::default(), Some(tx)).await.unwrap();
        let mut streamed = String::new();
        while let Ok(p) = rx.try_recv() {
            streamed.push_str(&p);
        }
        assert_eq!(streamed, out.raw);
        let cancelled: CancelFlag = Arc::new(AtomicBool::new(true));
        assert!(matches!(handle.recognize(page(), cancelled, None).await, Err(EngineError::Cancelled)));
    }
}
