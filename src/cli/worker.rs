//! `docseek worker`: an engine-only node of a fleet. It loads the model, then leases work
//! from the shared queue (`--store postgres://…`): documents to rasterize into page images in
//! the blob store (`--blobs s3://…`), and pages to recognise, committing each result once. It
//! serves no HTTP; its counters appear in every API node's `/metrics`. Ctrl-C or SIGTERM stops
//! it gracefully: the pages in flight are handed back to the queue.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::serve::{shutdown_signal, FleetArgs};
use crate::options::ModelArgs;
use crate::pdf::RasterizerConfig;
use crate::server::config::{DEFAULT_MAX_PAGES, DEFAULT_MAX_UPLOAD_MB};
use crate::server::engine_thread::EngineHandle;
use crate::server::fleet::worker::{PageWorker, WorkerConfig};

/// Arguments of `docseek worker`.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    model: ModelArgs,

    /// The shared job store and blob store (both required).
    #[command(flatten)]
    fleet: FleetArgs,

    /// Pages in flight at once (the engine batches them).
    #[arg(long, env = "DOCSEEK_MAX_BATCH", default_value_t = 4)]
    max_batch: usize,

    /// Most pages per document.
    #[arg(long, env = "DOCSEEK_MAX_PAGES", default_value_t = DEFAULT_MAX_PAGES)]
    max_pages: usize,

    /// libpdfium to use (file or folder); default: searched (see `docseek pages --help`).
    #[arg(long, env = "DOCSEEK_PDFIUM_LIB")]
    pdfium_lib: Option<PathBuf>,

    /// PDF renderer worker processes.
    #[arg(long, env = "DOCSEEK_RASTER_WORKERS", default_value_t = 1)]
    raster_workers: usize,
}

/// Runs `docseek worker` until Ctrl-C or SIGTERM.
pub fn run(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    let store_url = args.fleet.store.clone().context("docseek worker needs --store postgres://…")?;
    let blobs_url =
        args.fleet.blobs.clone().context("docseek worker needs --blobs (s3://bucket/prefix or file://DIR)")?;
    let lease = args.fleet.lease()?;
    let engine = crate::engine::load(&args.model)?;
    let mut raster = RasterizerConfig::default();
    raster.limits.max_pages = args.max_pages;
    raster.limits.max_input_bytes = DEFAULT_MAX_UPLOAD_MB << 20;
    raster.pdfium_lib = args.pdfium_lib.clone();
    raster.workers = args.raster_workers.max(1);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let store = crate::server::store::open(&store_url, args.fleet.max_attempts)
            .await
            .with_context(|| format!("cannot open the job store {}", crate::server::store::redact(&store_url)))?;
        anyhow::ensure!(store.queue().is_some(), "docseek worker needs a shared store (--store postgres://…)");
        let blobs = std::sync::Arc::new(crate::server::blobs::BlobStore::open(&blobs_url)?);
        let raster = crate::pdf::Rasterizer::new(raster)?;
        let slots = args.max_batch.max(1);
        let engine = EngineHandle::spawn(engine, slots * 2, slots).context("starting the engine thread")?;
        let mut config = WorkerConfig::new("worker", slots);
        config.lease = lease;
        let worker = PageWorker::new(store, blobs, engine, raster, config);
        println!("docseek worker {} pulling work", worker.id());
        tracing::info!(worker = %worker.id(), model = %args.model.model, "worker started");
        worker.run(shutdown_signal()).await?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
