//! The engine owner: the [`OcrEngine`] is fed pages from every caller (the server's jobs and
//! chat requests, the batch pipeline's documents) through one bounded channel; each page
//! carries its own reply. Shared by `src/server` and `src/pipeline`.
//!
//! An engine that decodes many pages together ([`OcrEngine::batching`]) runs as:
//! ```text
//! submit ─► [queue, bounded] ─► encoder ×N (prepare: vision encoder) ─► [encoded, bounded]
//!                                                                          │
//!                     token-level scheduler (one thread, owns the KV cache) ◄┘
//!                     each step: one token for every running page + prefill chunks
//! ```
//! so the next pages are encoded while others decode, pages join and leave the running batch
//! at every step, every page streams its tokens, and a cancelled page stops within one step
//! (see [`super::scheduler`]).
//!
//! Other engines keep the page-level loop: pages waiting in the channel are drained into a
//! batch (up to `max_batch`) for one `recognize_batch` call; a page that asks for streaming,
//! or that is alone in its batch, runs through `recognize` with a token sink that reports its
//! tokens and stops it when its cancel flag is set.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::batching::{BatchEngine, Prepared};
use super::scheduler::{Scheduler, SchedulerConfig, SeqOwner, DEFAULT_STEP_TOKENS};
use super::{EngineError, EngineInfo, Flow, OcrEngine, PageJob, PageText};

/// A shared cancellation flag: set when the page's owner no longer wants the result.
pub type CancelFlag = Arc<AtomicBool>;

/// Receives a page's generated text pieces.
pub type TokenHook = Box<dyn FnMut(&str) + Send>;

/// Receives a page's result, once, on the engine thread.
pub type ReplyHook = Box<dyn FnOnce(Result<PageText, EngineError>) + Send>;

/// One page for the engine thread.
pub struct PageRequest {
    /// The page.
    pub job: PageJob,
    /// Checked before the page runs and after each of its tokens.
    pub cancel: CancelFlag,
    /// Receives text pieces as they are generated (with a page-level engine: only while the
    /// page runs alone, see `stream`).
    pub on_token: Option<TokenHook>,
    /// With a page-level engine, run this page alone, token by token, even when others wait
    /// (a streaming client). Token-level batching streams every page and ignores it.
    pub stream: bool,
    /// Gets the result; a page cancelled before it ran gets [`EngineError::Cancelled`].
    pub reply: ReplyHook,
}

/// Told about the engine thread's work (metrics, statistics). Methods run on that thread.
pub trait EngineObserver: Send + Sync {
    /// `pages` are about to enter the queue (a refused page is then reported as dequeued).
    fn enqueued(&self, pages: usize) {
        let _ = pages;
    }

    /// `pages` left the queue.
    fn dequeued(&self, pages: usize) {
        let _ = pages;
    }

    /// One engine call (with token-level batching: one step) over `pages` pages took `busy`.
    fn batch_done(&self, pages: usize, busy: Duration) {
        let _ = (pages, busy);
    }

    /// A page finished after waiting and running for `latency` since it was queued.
    fn page_done(&self, result: &Result<PageText, EngineError>, latency: Duration) {
        let _ = (result, latency);
    }
}

/// An observer that ignores everything.
pub struct NoObserver;

impl EngineObserver for NoObserver {}

/// Why a page could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the engine thread has stopped")]
pub struct EngineStopped;

/// A page on its way, with the time it was queued.
struct Queued {
    request: PageRequest,
    enqueued: Instant,
}

/// The handle callers use to reach the engine thread; cloning it is cheap. The thread ends
/// once every handle is dropped and the queue is empty.
#[derive(Clone)]
pub struct EngineThread {
    tx: mpsc::Sender<Queued>,
    info: EngineInfo,
    observer: Arc<dyn EngineObserver>,
}

/// Settings of the engine thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    /// Pages that may wait in the queue before `submit` waits (back-pressure).
    pub capacity: usize,
    /// Most pages decoding together (token-level batching), or per engine call.
    pub max_batch: usize,
    /// KV cache budget in bytes (None: half the free memory, see
    /// [`crate::model::paged_cache::default_budget_bytes`]).
    pub kv_cache_bytes: Option<usize>,
    /// Vision encoder worker threads.
    pub encoders: usize,
    /// Encoded pages that may wait for the scheduler.
    pub encoded_ahead: usize,
    /// Most rows (decode tokens + prefill rows) per step.
    pub step_tokens: usize,
}

impl EngineConfig {
    /// A queue of `capacity` pages, batches of `max_batch`, the default KV budget, one encoder
    /// worker and up to `max_batch` pages encoded ahead.
    pub fn new(capacity: usize, max_batch: usize) -> Self {
        let max_batch = max_batch.max(1);
        EngineConfig {
            capacity: capacity.max(1),
            max_batch,
            kv_cache_bytes: None,
            encoders: 1,
            encoded_ahead: max_batch,
            step_tokens: DEFAULT_STEP_TOKENS.max(max_batch + 1),
        }
    }
}

impl EngineThread {
    /// Starts the engine thread with a queue of `capacity` pages and batches of up to
    /// `max_batch`; returns the handle and the thread (to join after dropping every handle).
    pub fn spawn(
        engine: Arc<dyn OcrEngine>,
        capacity: usize,
        max_batch: usize,
        observer: Arc<dyn EngineObserver>,
    ) -> std::io::Result<(Self, std::thread::JoinHandle<()>)> {
        Self::spawn_with(engine, EngineConfig::new(capacity, max_batch), observer)
    }

    /// Starts the engine thread(s) with `config`: with token-level batching, encoder workers
    /// and the scheduler; otherwise the page-level loop.
    pub fn spawn_with(
        engine: Arc<dyn OcrEngine>,
        config: EngineConfig,
        observer: Arc<dyn EngineObserver>,
    ) -> std::io::Result<(Self, std::thread::JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel(config.capacity.max(1));
        let info = engine.info();
        let handle = EngineThread { tx, info, observer: observer.clone() };
        let thread = if engine.batching().is_some() {
            spawn_scheduled(engine, rx, config, observer)?
        } else {
            let max_batch = config.max_batch.max(1);
            std::thread::Builder::new()
                .name("docseek-engine".into())
                .spawn(move || engine_loop(engine, rx, max_batch, observer))?
        };
        Ok((handle, thread))
    }

    /// What the engine is.
    pub fn info(&self) -> &EngineInfo {
        &self.info
    }

    /// Queues a page, waiting for space (back-pressure). On error the request is dropped
    /// without its reply being called.
    pub async fn submit(&self, request: PageRequest) -> Result<(), EngineStopped> {
        self.observer.enqueued(1);
        let sent = self.tx.send(Queued { request, enqueued: Instant::now() }).await;
        sent.map_err(|_| {
            self.observer.dequeued(1);
            EngineStopped
        })
    }

    /// [`submit`](Self::submit) for threads outside an async runtime; gives the request back
    /// when the engine thread has stopped.
    pub fn submit_blocking(&self, request: PageRequest) -> Result<(), Box<PageRequest>> {
        self.observer.enqueued(1);
        self.tx.blocking_send(Queued { request, enqueued: Instant::now() }).map_err(|e| {
            self.observer.dequeued(1);
            Box::new(e.0.request)
        })
    }
}

/// A page on its way from an encoder worker to the scheduler.
struct Encoded {
    queued: Queued,
    prepared: Result<Prepared, EngineError>,
}

/// A page's owner as the scheduler sees it.
struct RequestOwner {
    cancel: CancelFlag,
    on_token: Option<TokenHook>,
    reply: ReplyHook,
    enqueued: Instant,
    observer: Arc<dyn EngineObserver>,
}

impl SeqOwner for RequestOwner {
    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    fn token(&mut self, piece: &str) {
        if let Some(hook) = self.on_token.as_mut() {
            hook(piece);
        }
    }

    fn done(self: Box<Self>, result: Result<PageText, EngineError>, _ids: &[u32]) {
        self.observer.page_done(&result, self.enqueued.elapsed());
        (self.reply)(result);
    }
}

/// Starts the encoder workers and the scheduler thread; returns the scheduler's handle (it
/// joins the workers before it ends).
fn spawn_scheduled(
    engine: Arc<dyn OcrEngine>,
    rx: mpsc::Receiver<Queued>,
    config: EngineConfig,
    observer: Arc<dyn EngineObserver>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let rx = Arc::new(Mutex::new(rx));
    let (enc_tx, enc_rx) = std::sync::mpsc::sync_channel::<Encoded>(config.encoded_ahead.max(1));
    let mut workers = Vec::new();
    for i in 0..config.encoders.max(1) {
        let (engine, rx, tx, observer) = (engine.clone(), rx.clone(), enc_tx.clone(), observer.clone());
        workers.push(
            std::thread::Builder::new()
                .name(format!("docseek-encoder-{i}"))
                .spawn(move || encoder_worker(engine, rx, tx, observer))?,
        );
    }
    drop(enc_tx);
    std::thread::Builder::new().name("docseek-engine".into()).spawn(move || {
        scheduler_loop(engine, enc_rx, config, observer);
        for w in workers {
            let _ = w.join();
        }
        tracing::debug!("engine thread stopped");
    })
}

/// Takes pages from the queue and prepares them (vision encoder) ahead of the scheduler.
fn encoder_worker(
    engine: Arc<dyn OcrEngine>,
    rx: Arc<Mutex<mpsc::Receiver<Queued>>>,
    tx: std::sync::mpsc::SyncSender<Encoded>,
    observer: Arc<dyn EngineObserver>,
) {
    let Some(batch) = engine.batching() else { return };
    loop {
        let next = rx.lock().unwrap_or_else(|p| p.into_inner()).blocking_recv();
        let Some(queued) = next else { break };
        observer.dequeued(1);
        if queued.request.cancel.load(Ordering::Relaxed) {
            let result = Err(EngineError::Cancelled);
            observer.page_done(&result, queued.enqueued.elapsed());
            (queued.request.reply)(result);
            continue;
        }
        let prepared = catch_unwind(AssertUnwindSafe(|| batch.prepare(&queued.request.job)))
            .unwrap_or_else(|_| Err(EngineError::Model("the vision encoder panicked".into())));
        if let Err(std::sync::mpsc::SendError(e)) = tx.send(Encoded { queued, prepared }) {
            (e.queued.request.reply)(Err(EngineError::Cancelled));
            break;
        }
    }
}

/// Hands an encoded page to the scheduler, or answers it when preparing failed.
fn admit(scheduler: &mut Scheduler, encoded: Encoded, observer: &Arc<dyn EngineObserver>) {
    let Encoded { queued, prepared } = encoded;
    let Queued { request, enqueued } = queued;
    let PageRequest { job, cancel, on_token, reply, .. } = request;
    match prepared {
        Ok(page) => {
            let owner = RequestOwner { cancel, on_token, reply, enqueued, observer: observer.clone() };
            scheduler.submit(page, job.generation, Box::new(owner));
        }
        Err(e) => {
            let result = Err(e);
            observer.page_done(&result, enqueued.elapsed());
            reply(result);
        }
    }
}

/// The scheduler thread: takes encoded pages as they come and steps while there is work.
fn scheduler_loop(
    engine: Arc<dyn OcrEngine>,
    rx: std::sync::mpsc::Receiver<Encoded>,
    config: EngineConfig,
    observer: Arc<dyn EngineObserver>,
) {
    let batch: &dyn BatchEngine = engine.batching().expect("a batching engine");
    let session = match batch.session(config.kv_cache_bytes) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the decoding session");
            for encoded in rx {
                let result = Err(EngineError::Model(format!("cannot start the decoding session: {e}")));
                observer.page_done(&result, encoded.queued.enqueued.elapsed());
                (encoded.queued.request.reply)(result);
            }
            return;
        }
    };
    let limits = SchedulerConfig { max_running: config.max_batch, step_tokens: config.step_tokens };
    let mut scheduler = Scheduler::new(session, limits);
    loop {
        if scheduler.is_idle() {
            match rx.recv() {
                Ok(encoded) => admit(&mut scheduler, encoded, &observer),
                Err(_) => break,
            }
        }
        while let Ok(encoded) = rx.try_recv() {
            admit(&mut scheduler, encoded, &observer);
        }
        let report = scheduler.step();
        if report.sequences > 0 {
            observer.batch_done(report.sequences, report.busy);
        }
    }
}

fn engine_loop(
    engine: Arc<dyn OcrEngine>,
    mut rx: mpsc::Receiver<Queued>,
    max_batch: usize,
    observer: Arc<dyn EngineObserver>,
) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(q) => batch.push(q),
                Err(_) => break,
            }
        }
        observer.dequeued(batch.len());
        // Pages whose owner has gone are answered without running.
        let (live, dead): (Vec<_>, Vec<_>) = batch.into_iter().partition(|q| !q.request.cancel.load(Ordering::Relaxed));
        for q in dead {
            (q.request.reply)(Err(EngineError::Cancelled));
        }
        if !live.is_empty() {
            run_batch(engine.as_ref(), live, observer.as_ref());
        }
    }
    tracing::debug!("engine thread stopped");
}

/// Runs one batch: streaming pages (and a page alone) one by one with a token sink, the
/// others in one batched call.
fn run_batch(engine: &dyn OcrEngine, batch: Vec<Queued>, observer: &dyn EngineObserver) {
    let (mut single, batched): (Vec<_>, Vec<_>) = batch.into_iter().partition(|q| q.request.stream);
    let batched = if batched.len() == 1 {
        single.extend(batched);
        Vec::new()
    } else {
        batched
    };
    for q in single {
        let Queued { request, enqueued } = q;
        let PageRequest { job, cancel, mut on_token, reply, .. } = request;
        let mut sink = |piece: &str| {
            if let Some(hook) = on_token.as_mut() {
                hook(piece);
            }
            if cancel.load(Ordering::Relaxed) {
                Flow::Stop
            } else {
                Flow::Continue
            }
        };
        let start = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| engine.recognize(&job, &mut sink)))
            .unwrap_or_else(|_| Err(EngineError::Model("the engine panicked".into())));
        observer.batch_done(1, start.elapsed());
        observer.page_done(&result, enqueued.elapsed());
        reply(result);
    }
    if batched.is_empty() {
        return;
    }
    let jobs: Vec<PageJob> = batched.iter().map(|q| q.request.job.clone()).collect();
    let start = Instant::now();
    let results = catch_unwind(AssertUnwindSafe(|| engine.recognize_batch(&jobs)))
        .unwrap_or_else(|_| jobs.iter().map(|_| Err(EngineError::Model("the engine panicked".into()))).collect());
    observer.batch_done(jobs.len(), start.elapsed());
    let mut results = results.into_iter();
    for q in batched {
        let result =
            results.next().unwrap_or_else(|| Err(EngineError::Model("the engine returned too few results".into())));
        observer.page_done(&result, q.enqueued.elapsed());
        (q.request.reply)(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{FakeEngine, NoSink, TokenSink};
    use crate::model::PageOutcome;
    use std::sync::Mutex;

    /// Records the size of each engine call; every call takes a while, so pages queued
    /// meanwhile are batched.
    struct Recorder {
        calls: Mutex<Vec<usize>>,
        inner: FakeEngine,
    }

    impl OcrEngine for Recorder {
        fn info(&self) -> EngineInfo {
            self.inner.info()
        }
        fn recognize(&self, job: &PageJob, sink: &mut dyn TokenSink) -> Result<PageText, EngineError> {
            self.calls.lock().unwrap().push(1);
            std::thread::sleep(Duration::from_millis(20));
            self.inner.recognize(job, sink)
        }
        fn recognize_batch(&self, jobs: &[PageJob]) -> Vec<Result<PageText, EngineError>> {
            self.calls.lock().unwrap().push(jobs.len());
            std::thread::sleep(Duration::from_millis(20));
            jobs.iter().map(|j| self.inner.recognize(j, &mut NoSink)).collect()
        }
    }

    /// Counts what the observer hears.
    #[derive(Default)]
    struct Counts(Mutex<(usize, usize, usize)>);

    impl EngineObserver for Counts {
        fn dequeued(&self, pages: usize) {
            self.0.lock().unwrap().0 += pages;
        }
        fn batch_done(&self, pages: usize, _busy: Duration) {
            self.0.lock().unwrap().1 += pages;
        }
        fn page_done(&self, _result: &Result<PageText, EngineError>, _latency: Duration) {
            self.0.lock().unwrap().2 += 1;
        }
    }

    fn page() -> PageJob {
        PageJob::test_page()
    }

    /// A request whose result goes to a std channel.
    fn request(cancel: CancelFlag, tx: std::sync::mpsc::Sender<Result<PageText, EngineError>>) -> PageRequest {
        PageRequest { job: page(), cancel, on_token: None, stream: false, reply: Box::new(move |r| drop(tx.send(r))) }
    }

    #[test]
    fn pages_from_many_callers_share_batches() {
        let rec = Arc::new(Recorder { calls: Mutex::new(Vec::new()), inner: FakeEngine::new() });
        let counts = Arc::new(Counts::default());
        let (engine, thread) = EngineThread::spawn(rec.clone(), 64, 8, counts.clone()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let callers: Vec<_> = (0..4)
            .map(|_| {
                let (engine, tx) = (engine.clone(), tx.clone());
                std::thread::spawn(move || {
                    for _ in 0..4 {
                        assert!(engine.submit_blocking(request(Arc::default(), tx.clone())).is_ok());
                    }
                })
            })
            .collect();
        for c in callers {
            c.join().unwrap();
        }
        drop((engine, tx));
        let results: Vec<_> = rx.iter().collect();
        thread.join().unwrap();
        assert_eq!(results.len(), 16);
        assert!(results.iter().all(|r| r.as_ref().is_ok_and(|t| t.outcome == PageOutcome::Finished)));
        let calls = rec.calls.lock().unwrap().clone();
        assert_eq!(calls.iter().sum::<usize>(), 16);
        assert!(calls.iter().any(|&b| b > 1), "no batching happened: {calls:?}");
        assert!(calls.iter().all(|&b| b <= 8), "{calls:?}");
        assert_eq!(*counts.0.lock().unwrap(), (16, 16, 16));
    }

    #[tokio::test]
    async fn streaming_and_cancellation() {
        let (engine, _thread) = EngineThread::spawn(Arc::new(FakeEngine::new()), 4, 4, Arc::new(NoObserver)).unwrap();
        let streamed = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sink = streamed.clone();
        let req = PageRequest {
            job: page(),
            cancel: Arc::default(),
            on_token: Some(Box::new(move |p| sink.lock().unwrap().push_str(p))),
            stream: true,
            reply: Box::new(move |r| drop(tx.send(r))),
        };
        engine.submit(req).await.unwrap();
        let out = rx.await.unwrap().unwrap();
        assert_eq!(*streamed.lock().unwrap(), out.raw);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let cancelled = PageRequest {
            job: page(),
            cancel: Arc::new(AtomicBool::new(true)),
            on_token: None,
            stream: false,
            reply: Box::new(move |r| drop(tx.send(r))),
        };
        engine.submit(cancelled).await.unwrap();
        assert!(matches!(rx.await.unwrap(), Err(EngineError::Cancelled)));
    }

    #[test]
    fn token_level_batching_streams_every_page_and_cancels_within_one_step() {
        let counts = Arc::new(Counts::default());
        let widest = Arc::new(Mutex::new(0usize));
        struct Widest(Arc<Mutex<usize>>, Arc<Counts>);
        impl EngineObserver for Widest {
            fn dequeued(&self, pages: usize) {
                self.1.dequeued(pages);
            }
            fn batch_done(&self, pages: usize, busy: Duration) {
                let mut w = self.0.lock().unwrap();
                *w = (*w).max(pages);
                self.1.batch_done(pages, busy);
            }
            fn page_done(&self, result: &Result<PageText, EngineError>, latency: Duration) {
                self.1.page_done(result, latency);
            }
        }
        let fake = FakeEngine { token_delay: Duration::from_millis(5), script: None };
        let observer = Arc::new(Widest(widest.clone(), counts.clone()));
        let (engine, thread) = EngineThread::spawn(Arc::new(fake), 8, 4, observer).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let mut streams = Vec::new();
        for k in 0..4 {
            let streamed = Arc::new(Mutex::new(Vec::<String>::new()));
            let cancel: CancelFlag = Arc::default();
            let (sink, flag, tx) = (streamed.clone(), cancel.clone(), tx.clone());
            let on_token: TokenHook = Box::new(move |p: &str| {
                let mut s = sink.lock().unwrap();
                s.push(p.to_string());
                // Page 2 cancels itself after its third piece.
                if k == 2 && s.len() == 3 {
                    flag.store(true, Ordering::Relaxed);
                }
            });
            let req = PageRequest {
                job: page(),
                cancel,
                on_token: Some(on_token),
                stream: true,
                reply: Box::new(move |r| drop(tx.send((k, r)))),
            };
            assert!(engine.submit_blocking(req).is_ok());
            streams.push(streamed);
        }
        drop((engine, tx));
        let mut results: Vec<_> = rx.iter().collect();
        thread.join().unwrap();
        results.sort_by_key(|r| r.0);
        assert_eq!(results.len(), 4);
        for (k, result) in results {
            let pieces = streams[k].lock().unwrap().clone();
            if k == 2 {
                assert!(matches!(result, Err(EngineError::Cancelled)));
                // Cancelled after its third piece: it left before the next step ran.
                assert_eq!(pieces.len(), 3);
            } else {
                let text = result.unwrap();
                assert_eq!(pieces.concat(), text.raw);
                assert_eq!(pieces.len(), text.generated_tokens);
            }
        }
        assert!(*widest.lock().unwrap() >= 3, "pages did not decode together");
        assert_eq!(counts.0.lock().unwrap().2, 4);
    }
}
