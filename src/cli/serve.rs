//! `docseek serve`: the HTTP service (REST API, async jobs, OpenAI-compatible endpoint, web UI).
//! Every flag can also be set from the environment (`DOCSEEK_*`). With `--store postgres://…`
//! and `--blobs s3://…` it is one API node of a fleet (see docs/deploy.md); it then also pulls
//! pages from the shared queue unless `--api-only`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::options::{ModelArgs, OcrOptions};
use crate::server::config::{
    engine_queue_pages, DEFAULT_CONCURRENCY, DEFAULT_MAX_BATCH, DEFAULT_MAX_PAGES, DEFAULT_MAX_QUEUE,
    DEFAULT_MAX_UPLOAD_MB, DEFAULT_READ_TIMEOUT_S, DEFAULT_REQUEST_TIMEOUT_S, DEFAULT_RETENTION_HOURS,
};
use crate::server::ServerConfig;

/// Arguments of `docseek serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    model: ModelArgs,

    /// Default OCR options; each request may override them.
    #[command(flatten)]
    defaults: OcrOptions,

    /// Address to listen on.
    #[arg(long, env = "DOCSEEK_HOST", default_value = "127.0.0.1")]
    host: String,

    /// Port to listen on (0 picks a free one; the address is printed on stdout).
    #[arg(long, env = "DOCSEEK_PORT", default_value_t = 8080)]
    port: u16,

    /// Folder for the job database, uploads and page images (created if missing).
    #[arg(long, env = "DOCSEEK_DATA_DIR", default_value = "docseek-data")]
    data_dir: PathBuf,

    /// Largest accepted upload, in MB.
    #[arg(long, env = "DOCSEEK_MAX_UPLOAD_MB", default_value_t = DEFAULT_MAX_UPLOAD_MB)]
    max_upload_mb: u64,

    /// Require `Authorization: Bearer <key>` on /v1/* and /metrics.
    #[arg(long, env = "DOCSEEK_API_KEY", hide_env_values = true)]
    api_key: Option<String>,

    /// Jobs processed at once (their pages are batched together on the engine).
    #[arg(long, env = "DOCSEEK_CONCURRENCY", default_value_t = DEFAULT_CONCURRENCY)]
    concurrency: usize,

    /// Jobs that may wait for a slot before new requests get 429.
    #[arg(long, env = "DOCSEEK_MAX_QUEUE", default_value_t = DEFAULT_MAX_QUEUE)]
    max_queue: usize,

    /// Most pages decoding together (token-level batching across jobs) [default: 4 on the CPU,
    /// 128 on a GPU].
    #[arg(long, env = "DOCSEEK_MAX_BATCH")]
    max_batch: Option<usize>,

    /// KV cache budget of the batched decoder in MiB [default: half the free memory].
    #[arg(long, env = "DOCSEEK_KV_CACHE_MB")]
    kv_cache_mb: Option<usize>,

    /// Most pages per document.
    #[arg(long, env = "DOCSEEK_MAX_PAGES", default_value_t = DEFAULT_MAX_PAGES)]
    max_pages: usize,

    /// Most pixels per rendered PDF page (larger pages are rendered at a lower dpi).
    #[arg(long, env = "DOCSEEK_MAX_PAGE_PIXELS", default_value_t = crate::pdf::limits::DEFAULT_MAX_PAGE_PIXELS)]
    max_page_pixels: u64,

    /// Most pixels an uploaded image may have (larger ones are refused before decoding).
    #[arg(long, env = "DOCSEEK_MAX_IMAGE_PIXELS", default_value_t = crate::pdf::limits::DEFAULT_MAX_IMAGE_PIXELS)]
    max_image_pixels: u64,

    /// Most bytes one compressed PDF stream may inflate to, in MB (decompression bombs; 0 = no check).
    #[arg(long, env = "DOCSEEK_MAX_STREAM_MB", default_value_t = crate::pdf::limits::DEFAULT_MAX_STREAM_BYTES >> 20)]
    max_stream_mb: u64,

    /// Address-space limit of each PDF renderer worker process, in MB (0 = no limit).
    #[arg(long, env = "DOCSEEK_MAX_WORKER_MEMORY_MB", default_value_t = crate::pdf::limits::DEFAULT_MAX_WORKER_MEMORY_MB)]
    max_worker_memory_mb: u64,

    /// libpdfium to use (file or folder); default: searched (see `docseek pages --help`).
    #[arg(long, env = "DOCSEEK_PDFIUM_LIB")]
    pdfium_lib: Option<PathBuf>,

    /// PDF renderer worker processes.
    #[arg(long, env = "DOCSEEK_RASTER_WORKERS", default_value_t = 1)]
    raster_workers: usize,

    /// Timeout of synchronous requests (POST /v1/ocr), in seconds.
    #[arg(long, env = "DOCSEEK_REQUEST_TIMEOUT_S", default_value_t = DEFAULT_REQUEST_TIMEOUT_S)]
    request_timeout_s: u64,

    /// Longest a client may take to send its request headers, or pause while sending a body, in
    /// seconds (slow clients are cut off: the connection is closed, or the request answered 408).
    #[arg(long, env = "DOCSEEK_READ_TIMEOUT_S", default_value_t = DEFAULT_READ_TIMEOUT_S)]
    read_timeout_s: u64,

    /// How long finished jobs and their results are kept, in hours.
    #[arg(long, env = "DOCSEEK_RETENTION_HOURS", default_value_t = DEFAULT_RETENTION_HOURS)]
    retention_hours: f64,

    /// Hosts (`host` or `host:port`) that job webhooks may call; none = webhooks refused.
    #[arg(long = "webhook-allow", env = "DOCSEEK_WEBHOOK_ALLOW", value_delimiter = ',')]
    webhook_allow: Vec<String>,

    /// Origins allowed by CORS; none = CORS off.
    #[arg(long = "cors-origin", env = "DOCSEEK_CORS_ORIGINS", value_delimiter = ',')]
    cors_origins: Vec<String>,

    /// Where jobs and files live (default: SQLite and files in --data-dir).
    #[command(flatten)]
    fleet: FleetArgs,

    /// With a shared store: accept and serve jobs but run no engine and pull no pages (the
    /// model is not loaded; `--model` is ignored).
    #[arg(long, env = "DOCSEEK_API_ONLY")]
    api_only: bool,
}

/// The store and blob URLs and work-queue settings, shared by `docseek serve` and
/// `docseek worker`.
#[derive(Debug, Clone, clap::Args)]
pub struct FleetArgs {
    /// Job store: `sqlite://PATH` or `postgres://user:password@host:port/db` (default: SQLite
    /// in --data-dir). PostgreSQL makes this process part of a fleet sharing one work queue.
    #[arg(long, env = "DOCSEEK_STORE", hide_env_values = true)]
    pub store: Option<String>,

    /// Blob store for uploads and page images: `file://DIR` or `s3://bucket/prefix` (default:
    /// files in --data-dir). S3 settings come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_REGION, AWS_ENDPOINT_URL and AWS_ALLOW_HTTP.
    #[arg(long, env = "DOCSEEK_BLOBS")]
    pub blobs: Option<String>,

    /// Seconds a leased work item stays this worker's without a heartbeat (renewed every third).
    #[arg(long, env = "DOCSEEK_LEASE_S", default_value_t = 30.0)]
    pub lease_s: f64,

    /// Attempts per work item (page or document) before it is given up on.
    #[arg(long, env = "DOCSEEK_MAX_ATTEMPTS", default_value_t = 3)]
    pub max_attempts: u32,
}

impl FleetArgs {
    /// The lease length.
    pub fn lease(&self) -> anyhow::Result<Duration> {
        anyhow::ensure!(self.lease_s.is_finite() && self.lease_s >= 0.5, "--lease-s must be at least 0.5");
        Ok(Duration::from_secs_f64(self.lease_s))
    }
}

impl ServeArgs {
    fn config(&self) -> anyhow::Result<ServerConfig> {
        self.defaults.validate()?;
        anyhow::ensure!(self.retention_hours > 0.0, "--retention-hours must be positive");
        let mut c = ServerConfig::new(self.data_dir.clone());
        c.max_upload_bytes = usize::try_from(self.max_upload_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
        c.api_key = self.api_key.clone().filter(|k| !k.is_empty());
        c.concurrency = self.concurrency.max(1);
        c.max_queued_jobs = self.max_queue;
        c.max_batch = self.max_batch.unwrap_or(DEFAULT_MAX_BATCH).max(1);
        c.kv_cache_mb = self.kv_cache_mb;
        c.engine_queue_pages = engine_queue_pages(c.max_batch, c.concurrency);
        c.raster.limits.max_pages = self.max_pages;
        c.raster.limits.max_page_pixels = self.max_page_pixels;
        c.raster.limits.max_image_pixels = self.max_image_pixels;
        c.raster.limits.max_stream_bytes = self.max_stream_mb.saturating_mul(1 << 20);
        c.raster.limits.max_worker_memory_mb = self.max_worker_memory_mb;
        c.raster.limits.max_input_bytes = self.max_upload_mb.saturating_mul(1 << 20);
        c.raster.pdfium_lib = self.pdfium_lib.clone();
        c.raster.workers = self.raster_workers.max(1);
        c.request_timeout = Duration::from_secs(self.request_timeout_s);
        anyhow::ensure!(self.read_timeout_s > 0, "--read-timeout-s must be positive");
        c.read_timeout = Duration::from_secs(self.read_timeout_s);
        c.retention = Duration::from_secs_f64(self.retention_hours * 3600.0);
        c.webhook_hosts = self.webhook_allow.clone();
        c.cors_origins = self.cors_origins.clone();
        c.defaults = self.defaults.clone();
        Ok(c)
    }
}

/// Runs `docseek serve` until Ctrl-C or SIGTERM.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut config = args.config()?;
    let lease = args.fleet.lease()?;
    // `--model fake` honours DOCSEEK_FAKE_TOKEN_DELAY_MS and DOCSEEK_FAKE_SCRIPT_FILE (tests, demos).
    let engine: std::sync::Arc<dyn crate::engine::OcrEngine> = if args.api_only {
        std::sync::Arc::new(crate::server::fleet::ApiOnlyEngine)
    } else {
        crate::engine::load(&args.model)?
    };
    config.max_batch = crate::engine::default_batch(args.max_batch, &engine.info(), DEFAULT_MAX_BATCH);
    config.engine_queue_pages = engine_queue_pages(config.max_batch, config.concurrency);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
            .await
            .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
        let addr = listener.local_addr()?;
        let fleet = &args.fleet;
        let (store, blobs) =
            crate::server::open_backends(&config, fleet.store.as_deref(), fleet.blobs.as_deref(), fleet.max_attempts)
                .await?;
        let shared = store.queue().is_some();
        anyhow::ensure!(shared || !args.api_only, "--api-only needs a shared store (--store postgres://…)");
        let slots = config.max_batch;
        let state = crate::server::start_on(engine, config, store.clone(), blobs.clone())?;
        // A node of a fleet that runs an engine also pulls pages from the shared queue.
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let worker = (shared && !args.api_only).then(|| {
            let mut wc = crate::server::fleet::worker::WorkerConfig::new("serve", slots);
            wc.lease = lease;
            let (engine, raster) = (state.runner.engine.clone(), state.runner.raster.clone());
            let worker = crate::server::fleet::worker::PageWorker::new(store, blobs, engine, raster, wc);
            tokio::spawn(worker.run(async move {
                let _ = stopped.await;
            }))
        });
        println!("docseek listening on http://{addr}");
        tracing::info!(%addr, model = %args.model.model, "serving");
        crate::server::run(listener, state, shutdown_signal()).await.context("serving")?;
        // Hand leased pages back before exiting.
        let _ = stop.send(());
        if let Some(worker) = worker {
            worker.await.context("worker task")??;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
