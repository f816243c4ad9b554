//! Job running: admission (bounded queue, `429` when full), run slots (`--concurrency`),
//! rasterizing, the shared page pipeline ([`crate::pipeline::pages`], as `docseek ocr` uses:
//! encoder workers and the token-level scheduler), committing each finished page, live
//! events, cancellation, resumption after a restart, and retention.
//!
//! With a shared store (PostgreSQL, [`JobStore::queue`]) a job is handed to the fleet's work
//! queue instead of being run here ([`crate::server::fleet`]); its events then come from the
//! store, so any API node answers for it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{broadcast, Semaphore};

use crate::engine::{EngineError, PageJob};
use crate::options::OcrOptions;
use crate::pdf::image_input::decode_stored_page;
use crate::pdf::{DocumentKind, DocumentSource, Rasterizer, RenderOptions};
use crate::pipeline::pages::{PageDone, PageFailure, PageHooks, SourcePage, Until};
use crate::pipeline::source::RenderedPage;
use crate::server::blobs::BlobStore;
use crate::server::config::ServerConfig;
use crate::server::engine_thread::{CancelFlag, EngineHandle};
use crate::server::errors::ApiError;
use crate::server::intake;
use crate::server::metrics;
use crate::server::results;
use crate::server::store::{now_ms, JobId, JobRecord, JobState, JobStore, PageRecord};

/// Events buffered per job for slow subscribers.
const EVENT_BUFFER: usize = 1024;
/// Name of the page list written next to the page images.
/// Lower bound of the `Retry-After` hint, seconds.
const MIN_RETRY_AFTER_S: u64 = 1;

/// A live event of one job.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobEvent {
    /// The job changed state.
    State {
        /// New state.
        state: JobState,
    },
    /// The document was rasterized: this many pages will be recognised.
    Pages {
        /// Page count.
        count: usize,
    },
    /// One page finished (its structured result or its error).
    Page {
        /// The page as the JSON schema writes it, plus its `index` (see `results::page_event`).
        page: Value,
    },
    /// The job reached a final state.
    Done {
        /// Final state.
        state: JobState,
        /// Error code, when failed.
        code: Option<String>,
        /// Error message, when failed.
        message: Option<String>,
    },
}

impl JobEvent {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            JobEvent::State { .. } => "state",
            JobEvent::Pages { .. } => "pages",
            JobEvent::Page { .. } => "page",
            JobEvent::Done { .. } => "done",
        }
    }
}

/// In-memory side of a job that is queued or running.
pub struct LiveJob {
    /// Set to stop the job.
    pub cancel: CancelFlag,
    /// Live events.
    pub events: broadcast::Sender<JobEvent>,
}

/// A document to run.
pub struct Submission {
    /// The document bytes.
    pub bytes: Vec<u8>,
    /// What they are (sniffed).
    pub kind: DocumentKind,
    /// The client's file name, for display only.
    pub filename: Option<String>,
    /// Options.
    pub options: OcrOptions,
    /// Webhook to call on completion (already checked against the allow-list).
    pub webhook: Option<String>,
    /// A synchronous request's job (not resumed after a restart).
    pub ephemeral: bool,
}

/// Runs jobs; shared by all handlers.
pub struct Runner {
    /// The job store.
    pub store: Arc<dyn JobStore>,
    /// Uploads and page images.
    pub blobs: Arc<BlobStore>,
    /// The engine thread.
    pub engine: EngineHandle,
    /// Renders documents into page images.
    pub raster: Rasterizer,
    /// Server settings.
    pub config: Arc<ServerConfig>,
    live: Mutex<HashMap<JobId, Arc<LiveJob>>>,
    queue: Mutex<VecDeque<JobId>>,
    /// When this runner started: jobs created since are its own, never resumed.
    started_ms: i64,
    slots: Arc<Semaphore>,
}

/// What the page side of a job tells its async side.
enum FlowEvent {
    /// Pages that will come.
    Count(usize),
    /// A page is finished.
    Page(PageDone),
}

/// A job's commit hook: finished pages go to the async side, which stores them.
struct JobHooks(tokio::sync::mpsc::UnboundedSender<FlowEvent>);

impl PageHooks for JobHooks {
    fn commit(&self, page: PageDone) {
        let _ = self.0.send(FlowEvent::Page(page));
    }
}

/// A page's place in a job, as saved in the manifest.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct ManifestPage {
    page_number: usize,
    width: u32,
    height: u32,
    /// Size of the original page in PDF points (absent in manifests of older versions).
    #[serde(default)]
    width_pt: Option<f32>,
    #[serde(default)]
    height_pt: Option<f32>,
}

impl ManifestPage {
    /// The page size in points; pixels at `dpi` when the manifest predates point sizes.
    fn points(&self, dpi: f32) -> (f32, f32) {
        let scale = if dpi.is_finite() && dpi > 0.0 { 72.0 / dpi } else { 1.0 };
        (self.width_pt.unwrap_or(self.width as f32 * scale), self.height_pt.unwrap_or(self.height as f32 * scale))
    }
}

impl Runner {
    /// A runner over `store` and `engine`.
    pub fn new(
        store: Arc<dyn JobStore>,
        blobs: Arc<BlobStore>,
        engine: EngineHandle,
        raster: Rasterizer,
        config: Arc<ServerConfig>,
    ) -> Arc<Self> {
        Arc::new(Runner {
            store,
            blobs,
            engine,
            raster,
            slots: Arc::new(Semaphore::new(config.concurrency.max(1))),
            config,
            live: Mutex::new(HashMap::new()),
            queue: Mutex::new(VecDeque::new()),
            started_ms: now_ms(),
        })
    }

    /// The live part of a job, while queued or running.
    pub fn live(&self, id: &JobId) -> Option<Arc<LiveJob>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned()
    }

    /// 1-based position among jobs waiting for a run slot, if waiting.
    pub fn queue_position(&self, id: &JobId) -> Option<usize> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).iter().position(|j| j == id).map(|p| p + 1)
    }

    /// Jobs waiting for a run slot.
    pub fn queued(&self) -> usize {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Refuses early (before an upload is read) when the queue is already full.
    pub fn check_capacity(&self) -> Result<(), ApiError> {
        let queued = self.queued();
        if queued >= self.config.max_queued_jobs {
            return Err(ApiError::QueueFull { retry_after_s: self.retry_after(queued) });
        }
        Ok(())
    }

    /// Accepts a job, or refuses with `QueueFull` when the queue is at capacity. The receiver
    /// is subscribed before the job starts, so no event is missed.
    pub async fn submit(self: &Arc<Self>, sub: Submission) -> Result<(JobId, broadcast::Receiver<JobEvent>), ApiError> {
        let id = JobId::generate();
        self.check_capacity()?;
        let record = JobRecord {
            id: id.clone(),
            state: JobState::Queued,
            filename: sub.filename,
            media: intake::kind_name(sub.kind),
            options: sub.options,
            webhook: sub.webhook,
            page_count: None,
            error: None,
            created_ms: now_ms(),
            finished_ms: None,
            ephemeral: sub.ephemeral,
        };
        // The upload is stored before the row that points at it.
        self.blobs.put(&self.blobs.upload_key(&id), sub.bytes).await?;
        if let Some(fleet) = self.store.queue() {
            let waiting = fleet.waiting_jobs().await? as usize;
            if waiting >= self.config.max_queued_jobs {
                let _ = self.blobs.delete(&self.blobs.upload_key(&id)).await;
                return Err(ApiError::QueueFull { retry_after_s: self.retry_after(waiting) });
            }
            fleet.submit(&record).await?;
            let rx = crate::server::fleet::watch(self.store.clone(), id.clone());
            metrics::global().jobs_accepted.fetch_add(1, Ordering::Relaxed);
            return Ok((id, rx));
        }
        self.store.create_job(&record).await?;
        metrics::global().jobs_accepted.fetch_add(1, Ordering::Relaxed);
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let rx = self.enqueue(&mut queue, id.clone());
        drop(queue);
        Ok((id, rx))
    }

    fn enqueue(self: &Arc<Self>, queue: &mut VecDeque<JobId>, id: JobId) -> broadcast::Receiver<JobEvent> {
        let (events, rx) = broadcast::channel(EVENT_BUFFER);
        let live = Arc::new(LiveJob { cancel: Arc::new(AtomicBool::new(false)), events });
        self.live.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone(), live.clone());
        queue.push_back(id.clone());
        metrics::global().jobs_queued.store(queue.len() as u64, Ordering::Relaxed);
        let me = self.clone();
        tokio::spawn(async move { me.drive(id, live).await });
        rx
    }

    /// Seconds a refused client should wait: the configured time per job times the queue's depth per slot.
    fn retry_after(&self, queued: usize) -> u64 {
        let per_slot = (queued / self.config.concurrency.max(1)) as u64 + 1;
        (per_slot * self.config.retry_after_per_job_s).max(MIN_RETRY_AFTER_S)
    }

    /// Resumes jobs left queued or running by a previous process (oldest first); a synchronous
    /// request's job is marked failed, since its client has gone.
    /// With a shared store nothing is resumed here: the work queue outlives any node.
    pub async fn resume(self: &Arc<Self>) -> Result<usize, ApiError> {
        if self.store.queue().is_some() {
            return Ok(0);
        }
        let mut resumed = 0;
        // Resumption runs beside new submissions: only a previous process's jobs are taken.
        for job in self.store.unfinished_jobs().await?.into_iter().filter(|j| j.created_ms < self.started_ms) {
            if job.ephemeral {
                self.store
                    .set_state(
                        &job.id,
                        JobState::Failed,
                        Some(("interrupted", "the server restarted during a synchronous request")),
                    )
                    .await?;
                continue;
            }
            // It waits for a run slot like any new job: `running` again only once it has one.
            self.store.set_state(&job.id, JobState::Queued, None).await?;
            let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            let _ = self.enqueue(&mut queue, job.id.clone());
            resumed += 1;
        }
        if resumed > 0 {
            tracing::info!(resumed, "resumed unfinished jobs");
        }
        Ok(resumed)
    }

    /// Cancels a queued or running job; returns false when it was already final.
    pub async fn cancel(&self, id: &JobId) -> Result<bool, ApiError> {
        if let Some(fleet) = self.store.queue() {
            return Ok(fleet.cancel(id).await?);
        }
        let Some(live) = self.live(id) else { return Ok(false) };
        live.cancel.store(true, Ordering::Relaxed);
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).retain(|j| j != id);
        self.store.set_state(id, JobState::Cancelled, None).await?;
        let _ = live.events.send(JobEvent::Done { state: JobState::Cancelled, code: None, message: None });
        self.live.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
        Ok(true)
    }

    async fn drive(self: Arc<Self>, id: JobId, live: Arc<LiveJob>) {
        let started = Instant::now();
        let permit = self.slots.clone().acquire_owned().await;
        {
            let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            queue.retain(|j| j != &id);
            metrics::global().jobs_queued.store(queue.len() as u64, Ordering::Relaxed);
        }
        if live.cancel.load(Ordering::Relaxed) || permit.is_err() {
            return;
        }
        let m = metrics::global();
        m.jobs_running.fetch_add(1, Ordering::Relaxed);
        let outcome = self.run_job(&id, &live).await;
        m.jobs_running.fetch_sub(1, Ordering::Relaxed);
        // Page images of a large document were freed: hand the memory back to the system.
        crate::alloc::release_free_memory();
        if live.cancel.load(Ordering::Relaxed) {
            return;
        }
        let (state, error) = match outcome {
            Ok(()) => (JobState::Done, None),
            Err(e) => {
                let (_, code) = e.status_and_code();
                if let ApiError::Internal(cause) = &e {
                    tracing::error!(job = %id, %cause, "job failed");
                }
                (JobState::Failed, Some((code.to_string(), e.to_string())))
            }
        };
        if let Err(e) = self.store.set_state(&id, state, error.as_ref().map(|(c, m)| (c.as_str(), m.as_str()))).await {
            tracing::error!(job = %id, error = %e, "cannot record the job's final state");
        }
        // The slot is free only once the job is recorded as finished: a poll never shows more
        // running jobs than `--concurrency`.
        drop(permit);
        // The page images stay for the viewer; the upload is no longer needed.
        let _ = self.blobs.delete(&self.blobs.upload_key(&id)).await;
        m.job_latency.observe(started.elapsed().as_secs_f64());
        let (code, message) = error.unzip();
        let _ = live.events.send(JobEvent::Done { state, code, message });
        self.live.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        if let Ok(Some(job)) = self.store.job(&id).await {
            if let Some(url) = job.webhook.clone() {
                let allowed = self.config.webhook_hosts.clone();
                tokio::spawn(async move { crate::server::webhook::notify(&url, &allowed, &job).await });
            }
        }
    }

    async fn run_job(&self, id: &JobId, live: &LiveJob) -> Result<(), ApiError> {
        let job = self.store.job(id).await?.ok_or_else(|| ApiError::internal("job row vanished"))?;
        self.store.set_state(id, JobState::Running, None).await?;
        let _ = live.events.send(JobEvent::State { state: JobState::Running });
        let done: std::collections::HashSet<usize> = self.store.pages(id).await?.iter().map(|p| p.index).collect();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<FlowEvent>();
        // Pages are rendered, encoded and decoded (with other jobs' pages) on the page
        // pipeline's threads; finished pages come back here to be stored.
        let pages = self.start_pages(&job, done, live.cancel.clone(), tx);
        let opts = job.options.clone();
        while let Some(event) = rx.recv().await {
            let page = match event {
                FlowEvent::Count(count) => {
                    let _ = self.store.set_page_count(id, count).await;
                    let _ = live.events.send(JobEvent::Pages { count });
                    continue;
                }
                FlowEvent::Page(page) => page,
            };
            if live.cancel.load(Ordering::Relaxed) {
                return Ok(());
            }
            let (width, height) = page.page.as_ref().map_or((0, 0), |p| p.image.dimensions());
            let (width_pt, height_pt) = page.page.as_ref().map_or((0.0, 0.0), |p| (p.width_pt, p.height_pt));
            let mut record = PageRecord {
                index: page.slot,
                page_number: page.number,
                width,
                height,
                width_pt,
                height_pt,
                raw: None,
                outcome: None,
                tokens: 0,
                prompt_tokens: 0,
                timings: Default::default(),
                error: None,
            };
            match page.result {
                Ok(text) => {
                    record.outcome =
                        serde_json::to_value(text.outcome).ok().and_then(|v| v.as_str().map(str::to_string));
                    record.tokens = text.generated_tokens;
                    record.prompt_tokens = text.prompt_tokens;
                    record.timings = text.timings;
                    record.raw = Some(text.raw);
                }
                Err(PageFailure::Engine(EngineError::Cancelled)) => return Ok(()),
                Err(PageFailure::Engine(e)) => record.error = Some(ApiError::from(e).to_string()),
                Err(PageFailure::Render(e)) => record.error = Some(e),
            }
            self.store.save_page(id, &record).await?;
            let _ = live.events.send(JobEvent::Page { page: results::page_event(&record, &opts.languages) });
        }
        pages.await.map_err(ApiError::internal)??;
        // A document none of whose pages could be recognised is a failed job, not an empty result.
        let pages = self.store.pages(id).await?;
        if let Some(first) = pages.first().filter(|_| pages.iter().all(|p| p.error.is_some())) {
            let reason = first.error.as_deref().unwrap_or_default();
            return Err(ApiError::ModelFailed(format!(
                "none of the {} pages could be recognised (page {}: {reason})",
                pages.len(),
                first.page_number
            )));
        }
        Ok(())
    }

    /// Runs the job's pages through the shared page pipeline on a blocking thread: from the
    /// manifest when an earlier run finished rendering, else rendered now (each page stored
    /// as PNG before it goes on, the manifest stored last). Pages in `done` are not run again;
    /// at most `max_batch` pages of the job are in the engine at once.
    fn start_pages(
        &self,
        job: &JobRecord,
        done: std::collections::HashSet<usize>,
        cancel: CancelFlag,
        tx: tokio::sync::mpsc::UnboundedSender<FlowEvent>,
    ) -> tokio::task::JoinHandle<Result<(), ApiError>> {
        let blobs = self.blobs.clone();
        let id = job.id.clone();
        let kind = intake::kind_from_name(&job.media);
        let ropts = RenderOptions::from(&job.options);
        let raster = self.raster.clone();
        let flow = self.engine.page_flow();
        let window = Some(self.config.max_batch.max(1));
        let opts = &job.options;
        let template = PageJob::new(Arc::new(image::RgbImage::new(1, 1)), opts);
        let dpi = opts.dpi;
        // Stored pages passed intake's limits; they are read back under the same ones.
        let limits = *self.raster.limits();
        // Blob calls are async; this thread blocks on them (it is a blocking-pool thread).
        let rt = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let hooks: Arc<dyn PageHooks> = Arc::new(JobHooks(tx.clone()));
            let manifest = blobs.manifest_key(&id);
            let stored = rt.block_on(blobs.get(&manifest))?;
            if let Some(pages) = stored.and_then(|b| serde_json::from_slice::<Vec<ManifestPage>>(&b).ok()) {
                let _ = tx.send(FlowEvent::Count(pages.len()));
                let source = pages.into_iter().enumerate().filter(|(i, _)| !done.contains(i)).map(|(i, p)| {
                    let start = Instant::now();
                    let (width_pt, height_pt) = p.points(dpi);
                    let page = rt
                        .block_on(blobs.get_required(&blobs.page_key(&id, i)))
                        .map_err(|e| e.to_string())
                        .and_then(|png| decode_stored_page(&png, &limits).map_err(|e| e.to_string()))
                        .map(|img| RenderedPage { image: Arc::new(img), width_pt, height_pt, dpi })
                        .map_err(|e| format!("cannot read the page image: {e}"));
                    SourcePage { slot: i, number: p.page_number, page, raster: start.elapsed() }
                });
                flow.run(source, &template, &cancel, hooks, window, Until::Committed);
                return Ok(());
            }
            kind.ok_or_else(|| ApiError::internal("unknown stored media kind"))?;
            let upload = rt.block_on(blobs.get_required(&blobs.upload_key(&id)))?;
            let mut doc = raster.open(&DocumentSource::bytes(upload.to_vec()), &ropts)?;
            let _ = tx.send(FlowEvent::Count(doc.info().selected.len()));
            let mut entries = Vec::new();
            let mut failure: Option<ApiError> = None;
            let mut index = 0;
            // Renders lazily as the flow pulls pages; stops at the first page that fails.
            let source = std::iter::from_fn(|| loop {
                if failure.is_some() || cancel.load(Ordering::Relaxed) {
                    return None;
                }
                let start = Instant::now();
                let page = match doc.next()? {
                    Ok(page) => page,
                    Err(e) => {
                        failure = Some(e.into());
                        return None;
                    }
                };
                let i = index;
                index += 1;
                let mut png = Vec::new();
                if let Err(e) = page.image.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png) {
                    failure = Some(ApiError::internal(e));
                    return None;
                }
                if let Err(e) = rt.block_on(blobs.put(&blobs.page_key(&id, i), png)) {
                    failure = Some(e.into());
                    return None;
                }
                entries.push(ManifestPage {
                    page_number: page.index + 1,
                    width: page.image.width(),
                    height: page.image.height(),
                    width_pt: Some(page.width_pt),
                    height_pt: Some(page.height_pt),
                });
                if done.contains(&i) {
                    continue;
                }
                let (width_pt, height_pt, dpi, number) = (page.width_pt, page.height_pt, page.dpi, page.index + 1);
                let rendered = RenderedPage { width_pt, height_pt, dpi, image: Arc::new(page.image) };
                return Some(SourcePage { slot: i, number, page: Ok(rendered), raster: start.elapsed() });
            });
            flow.run(source, &template, &cancel, hooks, window, Until::Committed);
            if let Some(failure) = failure {
                return Err(failure);
            }
            if cancel.load(Ordering::Relaxed) {
                return Ok(());
            }
            // Written last: its presence means every page image is stored.
            rt.block_on(blobs.put(&manifest, serde_json::to_vec(&entries).map_err(ApiError::internal)?))?;
            Ok(())
        })
    }

    /// Deletes final jobs older than the retention period; runs until the runtime stops.
    pub async fn retention_loop(self: Arc<Self>) {
        let period = (self.config.retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
        loop {
            tokio::time::sleep(period).await;
            let cutoff = now_ms() - self.config.retention.as_millis() as i64;
            match self.store.expired_jobs(cutoff).await {
                Ok(ids) => {
                    for id in ids {
                        if let Err(e) = self.store.delete_job(&id).await {
                            tracing::warn!(job = %id, error = %e, "cannot delete an expired job");
                        }
                        if let Err(e) = self.blobs.delete_job(&id).await {
                            tracing::warn!(job = %id, error = %e, "cannot delete an expired job's files");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "retention sweep failed"),
            }
        }
    }
}
