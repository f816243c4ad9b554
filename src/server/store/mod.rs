//! Durable job storage behind one seam, [`JobStore`]: jobs, their pages, and (for a shared
//! store) the page-level work queue and job-change events a fleet of API nodes and workers
//! coordinate through.
//!
//! Two backends, chosen by URL (`--store`): [`sqlite`] (`sqlite://PATH`, the embedded default:
//! one process runs its own jobs, as before) and [`postgres`] (`postgres://…`: API nodes and
//! `docseek worker`s share jobs, pages and the [`WorkQueue`]). Files (uploads, page images)
//! live behind the other seam, [`crate::server::blobs`].
//!
//! Ids are generated ([`JobId::generate`]) and checked ([`JobId::parse`]) before they reach a
//! query or a blob key, never taken from anything a client sent. A job survives a crash: its
//! options, page count and every finished page are committed as they happen.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::engine::PageTimings;
use crate::options::OcrOptions;
use crate::server::errors::ApiError;

mod pg_queue;
pub mod postgres;
pub mod sqlite;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Length of a job id in hex characters (128 random bits).
pub const JOB_ID_HEX_LEN: usize = 32;

/// A generated job id: 32 lowercase hex characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JobId(String);

impl JobId {
    /// A fresh random id.
    pub fn generate() -> Self {
        let mut bytes = [0u8; JOB_ID_HEX_LEN / 2];
        getrandom::fill(&mut bytes).expect("the OS random source is available");
        JobId(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Accepts only well-formed ids, so an id from a URL is safe in a file name.
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == JOB_ID_HEX_LEN && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
            .then(|| JobId(s.to_string()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Accepted, waiting for a run slot.
    Queued,
    /// Being rasterized or recognised.
    Running,
    /// Finished (pages may still carry individual errors).
    Done,
    /// Could not be processed (bad document, model failure).
    Failed,
    /// Cancelled by the client.
    Cancelled,
}

impl JobState {
    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> JobState {
        match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "done" => JobState::Done,
            "cancelled" => JobState::Cancelled,
            _ => JobState::Failed,
        }
    }

    /// Whether the job will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Done | JobState::Failed | JobState::Cancelled)
    }
}

/// A stored job.
#[derive(Debug, Clone, Serialize)]
pub struct JobRecord {
    /// Its id.
    pub id: JobId,
    /// State.
    pub state: JobState,
    /// The uploaded file's name, for display only (never used as a path).
    pub filename: Option<String>,
    /// Detected media kind (`pdf`, `png`, ...).
    pub media: String,
    /// The options it runs with.
    pub options: OcrOptions,
    /// Webhook to call on completion.
    pub webhook: Option<String>,
    /// Pages to recognise, once known.
    pub page_count: Option<usize>,
    /// Error code and message when failed.
    pub error: Option<(String, String)>,
    /// Milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// When it reached a final state.
    pub finished_ms: Option<i64>,
    /// A synchronous request's job: dropped at restart instead of resumed.
    pub ephemeral: bool,
}

/// One recognised (or failed) page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PageRecord {
    /// Position in the job, 0-based.
    pub index: usize,
    /// Page number in the document, 1-based.
    pub page_number: usize,
    /// Rendered image size in pixels.
    pub width: u32,
    /// Rendered image height in pixels.
    pub height: u32,
    /// Width of the original page in PDF points (for images: pixels at the render dpi).
    pub width_pt: f32,
    /// Height of the original page in PDF points.
    pub height_pt: f32,
    /// Raw model text, when recognised.
    pub raw: Option<String>,
    /// How generation ended (`finished`, `length`, `repetition`).
    pub outcome: Option<String>,
    /// Generated tokens.
    pub tokens: usize,
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Stage timings of the page.
    pub timings: PageTimings,
    /// Error message when the page failed.
    pub error: Option<String>,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The SQLite database.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The PostgreSQL server.
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// No PostgreSQL connection could be had from the pool.
    #[error("postgres pool: {0}")]
    Pool(String),
    /// A file of the store.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A bad `--store` URL or stored value.
    #[error("{0}")]
    Invalid(String),
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Pool(e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::internal(format!("job store: {e}"))
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

pub(crate) fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub(crate) fn duration_ms(ms: f64) -> Duration {
    Duration::try_from_secs_f64(ms / 1e3).unwrap_or_default()
}

/// Jobs and their pages, in SQLite or PostgreSQL. Every method is a short transaction.
#[async_trait::async_trait]
pub trait JobStore: Send + Sync {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// The shared work queue, when the store has one (PostgreSQL): jobs are then run by the
    /// fleet's workers instead of the process that accepted them.
    fn queue(&self) -> Option<&dyn WorkQueue>;

    /// Checks that the store answers (for `/health` and `/ready`).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Stores a new job (its upload must already be in the blob store).
    async fn create_job(&self, job: &JobRecord) -> Result<(), StoreError>;

    /// One job, if it exists.
    async fn job(&self, id: &JobId) -> Result<Option<JobRecord>, StoreError>;

    /// Jobs that were queued or running, oldest first (to resume after a restart).
    async fn unfinished_jobs(&self) -> Result<Vec<JobRecord>, StoreError>;

    /// Sets a job's state (and its error, for failures); final states get a finish time and
    /// are never left (a cancelled job stays cancelled even if its runner finishes later).
    async fn set_state(&self, id: &JobId, state: JobState, error: Option<(&str, &str)>) -> Result<(), StoreError>;

    /// Records how many pages the job has, once rasterized.
    async fn set_page_count(&self, id: &JobId, count: usize) -> Result<(), StoreError>;

    /// Commits one page's result.
    async fn save_page(&self, id: &JobId, page: &PageRecord) -> Result<(), StoreError>;

    /// A job's finished pages, in order.
    async fn pages(&self, id: &JobId) -> Result<Vec<PageRecord>, StoreError>;

    /// Deletes a job and its pages (its blobs are the caller's).
    async fn delete_job(&self, id: &JobId) -> Result<(), StoreError>;

    /// Ids of final jobs that finished before `cutoff_ms` (for retention).
    async fn expired_jobs(&self, cutoff_ms: i64) -> Result<Vec<JobId>, StoreError>;
}

/// A leased work item: the document of a job (to rasterize) or one of its pages (to
/// recognise). The lease is the worker's until `lease_until` (renewed by its heartbeat);
/// `attempt` tells this lease from a later one of the same item.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    /// The job.
    pub job: JobId,
    /// `None`: the document; `Some(i)`: page `i` (0-based position in the job).
    pub page: Option<usize>,
    /// Which attempt this is (1-based).
    pub attempt: u32,
    /// The page's place and size, for page items.
    pub meta: Option<PageMeta>,
}

/// Where a page sits in its document and how large its rendered image is.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PageMeta {
    /// 1-based page number in the document.
    pub page_number: usize,
    /// Rendered width in pixels.
    pub width: u32,
    /// Rendered height in pixels.
    pub height: u32,
    /// Page width in PDF points.
    pub width_pt: f32,
    /// Page height in PDF points.
    pub height_pt: f32,
}

/// What became of a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// The item will be leased again.
    Retry,
    /// The retry cap was reached: the page was committed as failed (or the job failed).
    GaveUp,
    /// The lease was no longer this worker's: nothing changed.
    LeaseLost,
}

/// One worker's row, for per-worker metrics.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerStatus {
    /// The worker's id (`host-pid-random`).
    pub id: String,
    /// `worker` or `serve`.
    pub role: String,
    /// Pages it committed.
    pub pages_done: u64,
    /// Pages it gave up on (committed as failed).
    pub pages_failed: u64,
    /// Items it holds now.
    pub leased: u64,
    /// Seconds since its last heartbeat.
    pub seen_s_ago: f64,
    /// Whether it shut down cleanly.
    pub stopped: bool,
}

/// The queue's state, for metrics and readiness.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QueueStats {
    /// Items waiting for a worker.
    pub ready: u64,
    /// Items leased now.
    pub leased: u64,
    /// Items finished.
    pub done: u64,
    /// Items given up on.
    pub failed: u64,
    /// Attempts that were retried (sum over items of attempts beyond the first).
    pub retries: u64,
    /// Every worker seen in the last hour.
    pub workers: Vec<WorkerStatus>,
}

/// The shared page-level work queue (PostgreSQL): items are leased with
/// `FOR UPDATE SKIP LOCKED`, held while a heartbeat renews the lease, retried up to a cap with
/// the failure reason kept, and committed once: a result is accepted only from the lease that
/// holds the item, in the transaction that marks it done.
#[async_trait::async_trait]
pub trait WorkQueue: Send + Sync {
    /// Stores a new job and its document item in one transaction.
    async fn submit(&self, job: &JobRecord) -> Result<(), StoreError>;

    /// Leases up to `max` items for `worker` (expired leases are taken back first; items past
    /// the attempt cap are given up on).
    async fn lease(&self, worker: &str, max: usize, lease: Duration) -> Result<Vec<Lease>, StoreError>;

    /// Renews every lease `worker` holds and records that it is alive; returns how many it holds.
    async fn heartbeat(&self, worker: &str, role: &str, lease: Duration) -> Result<u64, StoreError>;

    /// The document of `lease` was rasterized into `pages`: records the page count, queues
    /// one item per page and finishes the document item. False when the lease was lost.
    async fn add_pages(&self, worker: &str, lease: &Lease, pages: &[PageMeta]) -> Result<bool, StoreError>;

    /// Commits a page result from the lease that holds it, finishing the job with its last
    /// page. False (and nothing written) when the lease was lost or the job is final.
    async fn complete(&self, worker: &str, lease: &Lease, page: &PageRecord) -> Result<bool, StoreError>;

    /// Records a failed attempt: retried while attempts remain (`retry`), else given up on
    /// (a page is committed as failed with `reason`; a document fails its job with `code`).
    async fn fail(
        &self,
        worker: &str,
        lease: &Lease,
        code: &str,
        reason: &str,
        retry: bool,
    ) -> Result<FailOutcome, StoreError>;

    /// Jobs accepted but not yet rasterized by any worker (for admission: `429` past
    /// `--max-queue`).
    async fn waiting_jobs(&self) -> Result<u64, StoreError>;

    /// Hands back every item `worker` holds (graceful shutdown) and marks it stopped.
    async fn release(&self, worker: &str) -> Result<u64, StoreError>;

    /// Cancels a job that is not final: its waiting items are dropped. False when final.
    async fn cancel(&self, id: &JobId) -> Result<bool, StoreError>;

    /// A receiver of the ids of jobs that changed (state, page count, a committed page),
    /// from any node.
    fn changes(&self) -> tokio::sync::broadcast::Receiver<JobId>;

    /// Queue depth by state and per-worker counters.
    async fn stats(&self) -> Result<QueueStats, StoreError>;
}

/// Opens the store a `--store` URL names: `sqlite://PATH` (a folder, or a `.db` file) or
/// `postgres://…` / `postgresql://…` (whose work items get `max_attempts` attempts).
pub async fn open(url: &str, max_attempts: u32) -> Result<std::sync::Arc<dyn JobStore>, StoreError> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let path = std::path::Path::new(path);
        let db =
            if path.extension().is_some_and(|e| e == "db") { path.to_path_buf() } else { path.join(sqlite::DB_FILE) };
        return Ok(std::sync::Arc::new(SqliteStore::open_file(&db)?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(std::sync::Arc::new(PgStore::connect(url).await?.with_max_attempts(max_attempts)));
    }
    Err(StoreError::Invalid(format!("--store must be sqlite://PATH or postgres://…, got '{}'", redact(url))))
}

/// A store URL without its password, for logs and errors.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}
