//! Server settings, built by `docseek serve` from flags and environment.

use std::path::PathBuf;
use std::time::Duration;

use crate::options::OcrOptions;
use crate::pdf::RasterizerConfig;

/// Everything the server needs to know besides the engine.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the job database, uploads and page images live.
    pub data_dir: PathBuf,
    /// Largest accepted upload, in bytes.
    pub max_upload_bytes: usize,
    /// When set, `/v1/*` and `/metrics` need `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// Jobs processed at once.
    pub concurrency: usize,
    /// Jobs that may wait for a run slot before new ones get `429`.
    pub max_queued_jobs: usize,
    /// Pages that may wait for the engine thread.
    pub engine_queue_pages: usize,
    /// Most pages decoding together (and pages in flight per job).
    pub max_batch: usize,
    /// KV cache budget of the batched decoder in MiB (None: half the free memory).
    pub kv_cache_mb: Option<usize>,
    /// The rasterizer: page, pixel and size limits, worker executable, libpdfium.
    pub raster: RasterizerConfig,
    /// Timeout of synchronous requests.
    pub request_timeout: Duration,
    /// Longest a client may take to send its request headers, and longest pause between two
    /// pieces of a request body (slowloris); the connection is closed / the request answered 408.
    pub read_timeout: Duration,
    /// How long finished jobs are kept.
    pub retention: Duration,
    /// Hosts (`host` or `host:port`) webhooks may be sent to; empty = webhooks refused.
    pub webhook_hosts: Vec<String>,
    /// Origins allowed by CORS; empty = CORS off.
    pub cors_origins: Vec<String>,
    /// Seconds per queued job used for the `Retry-After` hint.
    pub retry_after_per_job_s: u64,
    /// Options used where a request sets none.
    pub defaults: OcrOptions,
}

/// Default upload limit in MB.
pub const DEFAULT_MAX_UPLOAD_MB: u64 = 50;
/// Default page limit per document.
pub const DEFAULT_MAX_PAGES: usize = 1000;
/// Default jobs processed at once.
pub const DEFAULT_CONCURRENCY: usize = 2;
/// Default jobs that may wait for a run slot.
pub const DEFAULT_MAX_QUEUE: usize = 64;
/// Default most pages per engine call.
pub const DEFAULT_MAX_BATCH: usize = 4;
/// Default timeout of synchronous requests, in seconds.
pub const DEFAULT_REQUEST_TIMEOUT_S: u64 = 300;
/// Default header / body read timeout, in seconds.
pub const DEFAULT_READ_TIMEOUT_S: u64 = 30;
/// Default retention of finished jobs, in hours.
pub const DEFAULT_RETENTION_HOURS: f64 = 24.0;
/// Default seconds per queued job in the `Retry-After` hint.
pub const DEFAULT_RETRY_AFTER_PER_JOB_S: u64 = 5;

/// Pages that may wait for the engine thread: two batches per run slot.
pub fn engine_queue_pages(max_batch: usize, concurrency: usize) -> usize {
    (max_batch * concurrency * 2).max(max_batch)
}

impl ServerConfig {
    /// Settings with the defaults for a data directory (used by tests and as a base).
    pub fn new(data_dir: PathBuf) -> Self {
        ServerConfig {
            data_dir,
            max_upload_bytes: (DEFAULT_MAX_UPLOAD_MB << 20) as usize,
            api_key: None,
            concurrency: DEFAULT_CONCURRENCY,
            max_queued_jobs: DEFAULT_MAX_QUEUE,
            engine_queue_pages: engine_queue_pages(DEFAULT_MAX_BATCH, DEFAULT_CONCURRENCY),
            max_batch: DEFAULT_MAX_BATCH,
            kv_cache_mb: None,
            raster: RasterizerConfig {
                limits: crate::pdf::Limits {
                    max_pages: DEFAULT_MAX_PAGES,
                    max_input_bytes: DEFAULT_MAX_UPLOAD_MB << 20,
                    ..Default::default()
                },
                ..Default::default()
            },
            request_timeout: Duration::from_secs(DEFAULT_REQUEST_TIMEOUT_S),
            read_timeout: Duration::from_secs(DEFAULT_READ_TIMEOUT_S),
            retention: Duration::from_secs_f64(DEFAULT_RETENTION_HOURS * 3600.0),
            webhook_hosts: Vec::new(),
            cors_origins: Vec::new(),
            retry_after_per_job_s: DEFAULT_RETRY_AFTER_PER_JOB_S,
            defaults: OcrOptions::default(),
        }
    }
}
