//! The threads behind [`Pipeline`]: rasterizer workers feed the shared page pipeline
//! ([`super::pages::PageFlow`], as the server does: the engine thread's encoder workers and
//! token-level scheduler) → a collector that reassembles documents from the per-page commits
//! → finishing workers (structure + languages + render).
//!
//! Data flow (`std::sync::mpsc` channels, and the engine thread's bounded queue):
//! ```text
//! submit ─► [tasks] ─► raster ×jobs ─► PageFlow ─► [queue] ─► encode ×N ─► scheduler ─┐
//!                         │  (opened / failed)                     (page commits)      │
//!                         └──────────────────► collector ◄─────────────────────────────┘
//!                                                 └─► [finished docs] ─► finish ×jobs ─► on_done
//! ```

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::events::{DocId, Event};
use super::pages::{PageDone, PageFlow, PageHooks, SourcePage, Until};
use super::report::{DocumentError, DocumentOutput, DocumentStatus, PageStatus, StageTimings};
use super::source;
use super::structure::{self, FinishedPage};
use super::{DocumentRequest, DocumentResult, PipelineConfig, PipelineStats};
use crate::engine::owner::{EngineConfig, EngineObserver, EngineThread};
use crate::engine::{OcrEngine, PageJob};
use crate::pdf::{PdfError, Rasterizer, RasterizerConfig};

/// Completion callback of one document.
type OnDone = Box<dyn FnOnce(DocId, DocumentResult) + Send>;

/// A submitted document on its way to a rasterizer worker.
struct Task {
    id: DocId,
    request: DocumentRequest,
    submitted: Instant,
    on_done: OnDone,
}

/// What the collector hears about.
enum Collect {
    /// A document was opened: `pages` holds the 1-based numbers of the selected pages.
    Opened { task: Task, request: Arc<DocumentRequest>, page_count: usize, pages: Vec<usize>, open_time: Duration },
    /// A document failed before any page work.
    Failed { task: Task, error: DocumentError },
    /// One page finished (recognised, failed or cancelled).
    Page { id: DocId, slot: usize, page: FinishedPage },
}

/// A document being reassembled by the collector.
struct Assembly {
    task: Task,
    request: Arc<DocumentRequest>,
    pages: Vec<Option<FinishedPage>>,
    remaining: usize,
    page_count: usize,
    open_time: Duration,
}

/// State shared by all threads.
struct Shared {
    engine: Arc<dyn OcrEngine>,
    stats: Mutex<PipelineStats>,
    started: Instant,
}

/// A running pipeline; see the [module docs](super).
pub struct Pipeline {
    shared: Arc<Shared>,
    config: PipelineConfig,
    tasks: Mutex<Option<Sender<Task>>>,
    next_id: AtomicU64,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A handle on one submitted document, for callers that want to block on its result.
pub struct Ticket {
    /// The document's id (as in its events).
    pub id: DocId,
    rx: Receiver<DocumentResult>,
}

impl Ticket {
    /// Blocks until the document is done.
    pub fn wait(self) -> DocumentResult {
        self.rx.recv().unwrap_or(Err(DocumentError::Cancelled))
    }
}

impl Pipeline {
    /// Starts the pipeline's threads around `engine`, with a rasterizer of `config.jobs`
    /// worker processes (libpdfium found as [`crate::pdf::library`] documents). If no
    /// rasterizer can be started, every document fails with the reason.
    pub fn new(engine: Arc<dyn OcrEngine>, config: PipelineConfig) -> Self {
        let raster = RasterizerConfig { workers: config.jobs.max(1), ..Default::default() };
        Self::with_rasterizer(engine, config, Rasterizer::new(raster))
    }

    /// Starts the pipeline's threads around `engine` and a given rasterizer (to share one, or
    /// to set its library, worker executable and limits).
    pub fn with_rasterizer(
        engine: Arc<dyn OcrEngine>,
        config: PipelineConfig,
        rasterizer: Result<Rasterizer, PdfError>,
    ) -> Self {
        let rasterizer = Arc::new(rasterizer);
        let config = PipelineConfig {
            queued_pages: config.queued_pages.max(1),
            kv_cache_bytes: config.kv_cache_bytes,
            ..PipelineConfig::new(config.jobs, config.batch_size)
        };
        let shared = Arc::new(Shared { engine, stats: Mutex::new(PipelineStats::default()), started: Instant::now() });
        let (task_tx, task_rx) = mpsc::channel::<Task>();
        let task_rx = Arc::new(Mutex::new(task_rx));
        let observer = Arc::new(EngineStats(shared.clone()));
        let engine_config = EngineConfig {
            kv_cache_bytes: config.kv_cache_bytes,
            ..EngineConfig::new(config.queued_pages, config.batch_size)
        };
        let (engine_thread, engine_join) = EngineThread::spawn_with(shared.engine.clone(), engine_config, observer)
            .expect("cannot start the engine thread");
        let flow = PageFlow::new(engine_thread);
        let (collect_tx, collect_rx) = mpsc::channel::<Collect>();
        let (finish_tx, finish_rx) = mpsc::channel::<Assembly>();
        let finish_rx = Arc::new(Mutex::new(finish_rx));
        let mut threads = Vec::new();
        for i in 0..config.jobs {
            let (rx, pages, collect) = (task_rx.clone(), flow.clone(), collect_tx.clone());
            let raster = rasterizer.clone();
            threads.push(spawn(&format!("docseek-raster-{i}"), move || raster_worker(raster, rx, pages, collect)));
        }
        // The engine thread ends once the raster workers (its only callers) have.
        drop(flow);
        threads.push(engine_join);
        drop(collect_tx);
        {
            let shared = shared.clone();
            threads.push(spawn("docseek-collect", move || collector(shared, collect_rx, finish_tx)));
        }
        for i in 0..config.jobs {
            let (rx, shared) = (finish_rx.clone(), shared.clone());
            threads.push(spawn(&format!("docseek-finish-{i}"), move || finish_worker(shared, rx)));
        }
        Pipeline {
            shared,
            config,
            tasks: Mutex::new(Some(task_tx)),
            next_id: AtomicU64::new(1),
            threads: Mutex::new(threads),
        }
    }

    /// The engine this pipeline drives.
    pub fn engine(&self) -> &Arc<dyn OcrEngine> {
        &self.shared.engine
    }

    /// The configuration in use.
    pub fn config(&self) -> PipelineConfig {
        self.config
    }

    /// Queues a document; `on_done` runs once, on a pipeline thread, with its result (invalid
    /// requests fail through `on_done` too, before this returns). Returns the document's id.
    pub fn submit(
        &self,
        request: DocumentRequest,
        on_done: impl FnOnce(DocId, DocumentResult) + Send + 'static,
    ) -> DocId {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = request.validate() {
            on_done(id, Err(e));
            return id;
        }
        let task = Task { id, request, submitted: Instant::now(), on_done: Box::new(on_done) };
        let sender = self.tasks.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match sender {
            Some(tx) => {
                if let Err(mpsc::SendError(task)) = tx.send(task) {
                    (task.on_done)(id, Err(DocumentError::Cancelled));
                }
            }
            None => (task.on_done)(id, Err(DocumentError::Cancelled)),
        }
        id
    }

    /// Queues a document and returns a [`Ticket`] to wait on.
    pub fn submit_ticket(&self, request: DocumentRequest) -> Ticket {
        let (tx, rx) = mpsc::channel();
        let id = self.submit(request, move |_, result| {
            let _ = tx.send(result);
        });
        Ticket { id, rx }
    }

    /// Processes one document and blocks until it is done.
    pub fn run(&self, request: DocumentRequest) -> DocumentResult {
        self.submit_ticket(request).wait()
    }

    /// Counters so far.
    pub fn stats(&self) -> PipelineStats {
        let mut stats = *self.shared.stats.lock().unwrap_or_else(|p| p.into_inner());
        stats.wall = self.shared.started.elapsed();
        stats
    }

    /// Stops taking documents, lets the queued ones finish, and joins the threads.
    pub fn shutdown(&self) {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner()).take();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Pipeline {
    /// Closes the queue; threads finish the queued work and exit on their own.
    fn drop(&mut self) {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new().name(name.to_string()).spawn(f).expect("cannot start a pipeline thread")
}

/// Takes the next item from a receiver shared by several workers.
fn next<T>(rx: &Mutex<Receiver<T>>) -> Option<T> {
    rx.lock().unwrap_or_else(|p| p.into_inner()).recv().ok()
}

/// A document's page events and commits, for the collector and the request's progress sink.
struct DocHooks {
    id: DocId,
    request: Arc<DocumentRequest>,
    collect: Mutex<Sender<Collect>>,
}

impl PageHooks for DocHooks {
    fn rendered(&self, page: &SourcePage) {
        if let Ok(p) = &page.page {
            let (width, height) = p.image.dimensions();
            let event = Event::PageRendered { doc: self.id, page: page.number, width, height, elapsed: page.raster };
            self.request.sink.event(&event);
        }
    }

    fn token(&self, _slot: usize, number: usize, piece: &str) {
        self.request.sink.event(&Event::Token { doc: self.id, page: number, piece: piece.to_string() });
    }

    fn commit(&self, page: PageDone) {
        let slot = page.slot;
        let page = page.finished();
        self.request.sink.event(&Event::PageDone { doc: self.id, report: page.report.clone() });
        let _ = self.collect.lock().unwrap_or_else(|p| p.into_inner()).send(Collect::Page { id: self.id, slot, page });
    }
}

/// Opens documents and runs their pages through the page pipeline, one document at a time
/// per worker (its pages render while earlier ones encode and decode).
fn raster_worker(
    rasterizer: Arc<Result<Rasterizer, PdfError>>,
    tasks: Arc<Mutex<Receiver<Task>>>,
    flow: PageFlow,
    collect: Sender<Collect>,
) {
    while let Some(task) = next(&tasks) {
        let request = Arc::new(task.request.clone());
        if request.cancel.is_cancelled() {
            let _ = collect.send(Collect::Failed { task, error: DocumentError::Cancelled });
            continue;
        }
        let opened = Instant::now();
        let doc = catch_unwind(AssertUnwindSafe(|| source::open(&rasterizer, &request.source, &request.options)));
        let mut doc = match doc {
            Ok(Ok(doc)) => doc,
            Ok(Err(error)) => {
                let _ = collect.send(Collect::Failed { task, error });
                continue;
            }
            Err(_) => {
                let error = DocumentError::Input("the rasterizer crashed on this document".into());
                let _ = collect.send(Collect::Failed { task, error });
                continue;
            }
        };
        let id = task.id;
        let selected = doc.selected.clone();
        request.sink.event(&Event::DocumentStarted { doc: id, name: request.name.clone(), pages: selected.len() });
        let open_time = opened.elapsed();
        let page_count = doc.page_count;
        let opened = Collect::Opened { task, request: request.clone(), page_count, pages: selected.clone(), open_time };
        let _ = collect.send(opened);
        let cancel = request.cancel.flag();
        let hooks = Arc::new(DocHooks { id, request: request.clone(), collect: Mutex::new(collect.clone()) });
        let mut last_error: Option<String> = None;
        // Pages render lazily as the flow pulls them; none once the document is cancelled.
        let pages = selected.iter().enumerate().map(|(slot, &number)| {
            if request.cancel.is_cancelled() {
                return SourcePage { slot, number, page: Err("cancelled".into()), raster: Duration::ZERO };
            }
            let start = Instant::now();
            let rendered = catch_unwind(AssertUnwindSafe(|| doc.pages.next()))
                .unwrap_or_else(|_| Some(Err("the rasterizer crashed on this page".to_string())));
            let rendered = rendered.unwrap_or_else(|| {
                Err(last_error.clone().unwrap_or_else(|| "the rasterizer returned no image for this page".to_string()))
            });
            if let Err(e) = &rendered {
                last_error = Some(e.clone());
            }
            SourcePage { slot, number, page: rendered, raster: start.elapsed() }
        });
        flow.run(pages, &page_job_template(&request), &cancel, hooks, None, Until::Submitted);
    }
}

/// The page job a request asks for, with a placeholder image.
fn page_job_template(request: &DocumentRequest) -> PageJob {
    PageJob::new(Arc::new(image::RgbImage::new(1, 1)), &request.options)
}

/// Adds the engine thread's busy time to the pipeline's statistics.
struct EngineStats(Arc<Shared>);

impl EngineObserver for EngineStats {
    fn batch_done(&self, _pages: usize, busy: Duration) {
        self.0.stats.lock().unwrap_or_else(|p| p.into_inner()).engine_busy += busy;
    }
}

/// Reassembles documents from their pages and hands complete ones to the finishing workers.
fn collector(shared: Arc<Shared>, rx: Receiver<Collect>, finish: Sender<Assembly>) {
    let mut open: HashMap<DocId, Assembly> = HashMap::new();
    while let Ok(msg) = rx.recv() {
        match msg {
            Collect::Opened { task, request, page_count, pages, open_time } => {
                let n = pages.len();
                let id = task.id;
                let slots = (0..n).map(|_| None).collect();
                let assembly = Assembly { task, request, pages: slots, remaining: n, page_count, open_time };
                open.insert(id, assembly);
            }
            Collect::Failed { task, error } => {
                shared.stats.lock().unwrap_or_else(|p| p.into_inner()).documents += 1;
                fail_document(task, error);
            }
            Collect::Page { id, slot, page } => {
                let Some(assembly) = open.get_mut(&id) else {
                    continue;
                };
                if assembly.pages[slot].replace(page).is_none() {
                    assembly.remaining -= 1;
                }
                if assembly.remaining == 0 {
                    let done = open.remove(&id).expect("assembly present");
                    let _ = finish.send(done);
                }
            }
        }
    }
}

/// Reports a document that failed as a whole.
fn fail_document(task: Task, error: DocumentError) {
    let status = if error == DocumentError::Cancelled { DocumentStatus::Cancelled } else { DocumentStatus::Failed };
    task.request.sink.event(&Event::DocumentDone { doc: task.id, status, elapsed: task.submitted.elapsed() });
    (task.on_done)(task.id, Err(error));
}

/// Structures and renders complete documents.
fn finish_worker(shared: Arc<Shared>, rx: Arc<Mutex<Receiver<Assembly>>>) {
    while let Some(assembly) = next(&rx) {
        let Assembly { task, request, pages, page_count, open_time, .. } = assembly;
        let pages: Vec<FinishedPage> = pages.into_iter().flatten().collect();
        let result = catch_unwind(AssertUnwindSafe(|| finish_document(&request, pages, page_count, open_time, &task)));
        let result =
            result.unwrap_or_else(|_| Err(DocumentError::Input("structuring crashed on this document".into())));
        {
            let mut stats = shared.stats.lock().unwrap_or_else(|p| p.into_inner());
            stats.documents += 1;
            if let Ok(out) = &result {
                stats.pages += out.pages.len();
                stats.tokens += out.generated_tokens();
                stats.stages.add(&out.timings);
            }
        }
        let status = match &result {
            Ok(out) => out.status,
            Err(DocumentError::Cancelled) => DocumentStatus::Cancelled,
            Err(_) => DocumentStatus::Failed,
        };
        request.sink.event(&Event::DocumentDone { doc: task.id, status, elapsed: task.submitted.elapsed() });
        (task.on_done)(task.id, result);
    }
}

/// Builds a document's outputs and status from its pages.
fn finish_document(
    request: &DocumentRequest,
    pages: Vec<FinishedPage>,
    page_count: usize,
    open_time: Duration,
    task: &Task,
) -> DocumentResult {
    if request.cancel.is_cancelled() || pages.iter().any(|p| p.report.status == PageStatus::Cancelled) {
        return Err(DocumentError::Cancelled);
    }
    let mut timings = StageTimings { raster: open_time, ..Default::default() };
    for p in &pages {
        timings.add(&p.report.timings);
    }
    let ok_pages = pages.iter().filter(|p| p.report.status.has_text()).count();
    let mut error = pages.iter().find_map(|p| p.report.error.as_ref().map(|e| format!("page {}: {e}", p.report.page)));
    let mut status = match ok_pages {
        0 => DocumentStatus::Failed,
        n if n == pages.len() => DocumentStatus::Ok,
        _ => DocumentStatus::Partial,
    };
    let mut files = Vec::new();
    let mut document = None;
    let mut languages = Vec::new();
    if status != DocumentStatus::Failed {
        let start = Instant::now();
        match structure::render_outputs(&request.name, &request.stem, &pages, &request.formats, &request.options) {
            Ok(done) => {
                files = done.files;
                languages = done.languages;
                document = Some(done.document);
            }
            Err(e) => {
                status = DocumentStatus::Failed;
                error = Some(e);
            }
        }
        timings.structure = start.elapsed();
    }
    Ok(DocumentOutput {
        document,
        languages,
        name: request.name.clone(),
        status,
        page_count,
        raw_pages: pages.iter().map(|p| p.raw.clone()).collect(),
        pages: pages.into_iter().map(|p| p.report).collect(),
        files,
        timings,
        elapsed: task.submitted.elapsed(),
        error,
    })
}
