//! The page worker: leases items from the shared queue, rasterizes documents into page images
//! in the blob store, recognises pages on the local engine thread and commits each result
//! through its lease. A heartbeat renews the leases it holds; on shutdown it stops its pages
//! and hands their items back. Runs in `docseek worker`, and in `docseek serve` over a shared
//! store unless `--api-only`.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::engine::{EngineError, PageJob};
use crate::pdf::{DocumentSource, Rasterizer, RenderOptions};
use crate::server::blobs::BlobStore;
use crate::server::engine_thread::{CancelFlag, EngineHandle};
use crate::server::errors::ApiError;
use crate::server::store::{FailOutcome, JobRecord, JobStore, Lease, PageMeta, PageRecord, StoreError, WorkQueue};

/// Default lease length; a worker that stops heartbeating loses its items after this.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// Pause between empty polls of the queue.
pub const IDLE_POLL: Duration = Duration::from_millis(200);
/// Pause after a store error before trying again.
const ERROR_BACKOFF: Duration = Duration::from_secs(1);

/// How a worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Unique id (`host-pid-random`), recorded on every lease and commit.
    pub id: String,
    /// `worker` or `serve`, shown in the per-worker metrics.
    pub role: String,
    /// Items held at once (pages in flight: the engine batches them).
    pub slots: usize,
    /// Lease length; the heartbeat renews it every third of it.
    pub lease: Duration,
}

impl WorkerConfig {
    /// Defaults for `role` with `slots` items in flight and a fresh id.
    pub fn new(role: &str, slots: usize) -> Self {
        WorkerConfig { id: worker_id(), role: role.to_string(), slots: slots.max(1), lease: DEFAULT_LEASE }
    }
}

/// A fresh worker id: host name, process id and 16 random bits.
pub fn worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.').collect::<String>())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "docseek".into());
    let mut r = [0u8; 2];
    let _ = getrandom::fill(&mut r);
    format!("{host}-{}-{:02x}{:02x}", std::process::id(), r[0], r[1])
}

/// Pulls work from the shared queue until shut down.
pub struct PageWorker {
    store: Arc<dyn JobStore>,
    blobs: Arc<BlobStore>,
    engine: EngineHandle,
    raster: Rasterizer,
    config: WorkerConfig,
    cancel: CancelFlag,
}

impl PageWorker {
    /// A worker over a shared store (one with a [`WorkQueue`]).
    pub fn new(
        store: Arc<dyn JobStore>,
        blobs: Arc<BlobStore>,
        engine: EngineHandle,
        raster: Rasterizer,
        config: WorkerConfig,
    ) -> Arc<Self> {
        Arc::new(PageWorker { store, blobs, engine, raster, config, cancel: Arc::new(AtomicBool::new(false)) })
    }

    /// Its id.
    pub fn id(&self) -> &str {
        &self.config.id
    }

    fn queue(&self) -> Result<&dyn WorkQueue, StoreError> {
        self.store
            .queue()
            .ok_or_else(|| StoreError::Invalid("a worker needs a shared store (--store postgres://…)".into()))
    }

    /// Leases and processes items until `shutdown` resolves, then stops the pages in flight and
    /// hands their items back to the queue.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()> + Send) -> Result<(), StoreError> {
        let queue = self.queue()?;
        queue.heartbeat(&self.config.id, &self.config.role, self.config.lease).await?;
        let heartbeat = tokio::spawn(self.clone().heartbeat_loop());
        let slots = Arc::new(Semaphore::new(self.config.slots));
        let mut tasks = JoinSet::new();
        tokio::pin!(shutdown);
        tracing::info!(worker = %self.config.id, slots = self.config.slots, "worker started");
        loop {
            while tasks.try_join_next().is_some() {}
            // Wait for a free slot (or the end).
            let permit = tokio::select! {
                _ = &mut shutdown => break,
                p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            };
            let free = slots.available_permits() + 1;
            let leases = match queue.lease(&self.config.id, free, self.config.lease).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot lease work");
                    drop(permit);
                    tokio::select! { _ = &mut shutdown => break, _ = tokio::time::sleep(ERROR_BACKOFF) => continue }
                }
            };
            if leases.is_empty() {
                drop(permit);
                tokio::select! { _ = &mut shutdown => break, _ = tokio::time::sleep(IDLE_POLL) => continue }
            }
            let mut permit = Some(permit);
            for lease in leases {
                let held = match permit.take() {
                    Some(p) => p,
                    None => slots.clone().acquire_owned().await.expect("the semaphore is never closed"),
                };
                let me = self.clone();
                tasks.spawn(async move {
                    me.process(&lease).await;
                    drop(held);
                });
            }
        }
        // Shutdown: stop the engine on our pages, drop the tasks, hand the items back.
        self.cancel.store(true, Ordering::Relaxed);
        tasks.shutdown().await;
        heartbeat.abort();
        let returned = queue.release(&self.config.id).await?;
        tracing::info!(worker = %self.config.id, returned, "worker stopped; leased items handed back");
        Ok(())
    }

    async fn heartbeat_loop(self: Arc<Self>) {
        let period = self.config.lease / 3;
        loop {
            tokio::time::sleep(period).await;
            if let Ok(queue) = self.queue() {
                if let Err(e) = queue.heartbeat(&self.config.id, &self.config.role, self.config.lease).await {
                    tracing::warn!(error = %e, "heartbeat failed");
                }
            }
        }
    }

    /// Processes one lease; every outcome is recorded through the lease.
    async fn process(&self, lease: &Lease) {
        let result = match lease.page {
            None => self.rasterize(lease).await,
            Some(index) => self.recognize(lease, index).await,
        };
        if let Err((e, retry)) = result {
            if self.cancel.load(Ordering::Relaxed) {
                return;
            }
            let (_, code) = e.status_and_code();
            let reason = e.to_string();
            let Ok(queue) = self.queue() else { return };
            match queue.fail(&self.config.id, lease, code, &reason, retry).await {
                Ok(FailOutcome::Retry) => {
                    tracing::info!(job = %lease.job, page = ?lease.page, %reason, "attempt failed; will retry")
                }
                Ok(FailOutcome::GaveUp) => tracing::warn!(job = %lease.job, page = ?lease.page, %reason, "gave up"),
                Ok(FailOutcome::LeaseLost) => {}
                Err(e) => tracing::warn!(error = %e, "cannot record a failed attempt"),
            }
        }
    }

    async fn job(&self, lease: &Lease) -> Result<JobRecord, (ApiError, bool)> {
        match self.store.job(&lease.job).await {
            Ok(Some(job)) if !job.state.is_final() => Ok(job),
            Ok(_) => Err((ApiError::Cancelled, false)),
            Err(e) => Err((e.into(), true)),
        }
    }

    /// Renders the job's document into page images and queues its pages. Problems with the
    /// document itself are final; anything else is retried.
    async fn rasterize(&self, lease: &Lease) -> Result<(), (ApiError, bool)> {
        let job = self.job(lease).await?;
        let transient = |e: ApiError| (e, true);
        let upload = self.blobs.get_required(&self.blobs.upload_key(&job.id)).await.map_err(|e| transient(e.into()))?;
        let ropts = RenderOptions::from(&job.options);
        let (raster, blobs, id) = (self.raster.clone(), self.blobs.clone(), job.id.clone());
        let rt = tokio::runtime::Handle::current();
        let rendered = tokio::task::spawn_blocking(move || -> Result<Vec<PageMeta>, (ApiError, bool)> {
            let mut doc =
                raster.open(&DocumentSource::bytes(upload.to_vec()), &ropts).map_err(|e| document_error(e.into()))?;
            let mut pages = Vec::new();
            for (i, page) in (&mut doc).enumerate() {
                let page = page.map_err(|e| document_error(e.into()))?;
                let mut png = Vec::new();
                page.image
                    .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                    .map_err(|e| (ApiError::internal(e), true))?;
                rt.block_on(blobs.put(&blobs.page_key(&id, i), png)).map_err(|e| (e.into(), true))?;
                pages.push(PageMeta {
                    page_number: page.index + 1,
                    width: page.image.width(),
                    height: page.image.height(),
                    width_pt: page.width_pt,
                    height_pt: page.height_pt,
                });
            }
            Ok(pages)
        })
        .await
        .map_err(|e| transient(ApiError::internal(e)))??;
        let queue = self.queue().map_err(|e| transient(e.into()))?;
        if queue.add_pages(&self.config.id, lease, &rendered).await.map_err(|e| transient(e.into()))? {
            // Every page image is stored and queued: the upload is no longer needed.
            let _ = self.blobs.delete(&self.blobs.upload_key(&job.id)).await;
            tracing::info!(job = %job.id, pages = rendered.len(), "document rasterized");
        }
        Ok(())
    }

    /// Recognises one page and commits it.
    async fn recognize(&self, lease: &Lease, index: usize) -> Result<(), (ApiError, bool)> {
        let job = self.job(lease).await?;
        let meta = lease.meta.ok_or_else(|| (ApiError::internal("a page item without its size"), false))?;
        let png = self.blobs.get_required(&self.blobs.page_key(&job.id, index)).await.map_err(|e| (e.into(), true))?;
        let image = tokio::task::spawn_blocking(move || image::load_from_memory(&png).map(|i| i.to_rgb8()))
            .await
            .map_err(|e| (ApiError::internal(e), true))?
            .map_err(|e| (ApiError::internal(format!("cannot read the page image: {e}")), true))?;
        let opts = &job.options;
        let page_job = PageJob {
            image: Arc::new(image),
            mode: opts.mode,
            task: opts.task,
            locate: opts.locate.clone(),
            generation: opts.generation(),
        };
        let text = match self.engine.recognize(page_job, self.cancel.clone(), None).await {
            Ok(text) => text,
            Err(EngineError::Cancelled) => return Err((ApiError::Cancelled, true)),
            Err(e) => return Err((ApiError::from(e), true)),
        };
        let record = PageRecord {
            index,
            page_number: meta.page_number,
            width: meta.width,
            height: meta.height,
            width_pt: meta.width_pt,
            height_pt: meta.height_pt,
            outcome: serde_json::to_value(text.outcome).ok().and_then(|v| v.as_str().map(str::to_string)),
            tokens: text.generated_tokens,
            prompt_tokens: text.prompt_tokens,
            timings: text.timings,
            raw: Some(text.raw),
            error: None,
        };
        let queue = self.queue().map_err(|e| (e.into(), true))?;
        let committed = queue.complete(&self.config.id, lease, &record).await.map_err(|e| (e.into(), true))?;
        if !committed {
            tracing::info!(job = %job.id, page = index, "page result discarded: the lease was lost or the job ended");
        }
        Ok(())
    }
}

/// A rasterizer error: the document's own problems (bad, encrypted, too large) are final;
/// the rasterizer's (worker crash, unavailable) are retried.
fn document_error(e: ApiError) -> (ApiError, bool) {
    let (status, _) = e.status_and_code();
    let retry = status.is_server_error();
    (e, retry)
}
