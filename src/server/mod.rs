//! The HTTP service: REST API (sync OCR and durable async jobs with live progress), an
//! OpenAI-compatible endpoint, Prometheus metrics, and the web UI.
//!
//! Shape: handlers parse requests into native types at the edge ([`intake`]), the [`runner`]
//! admits and drives jobs, one engine thread (the shared [`crate::engine::EngineThread`], as
//! the batch pipeline uses, reached through [`engine_thread`]) owns the model and batches
//! pages from every request, and [`store`] keeps jobs (SQLite by default, PostgreSQL for a
//! fleet: [`fleet`]) so they survive restarts, with files in [`blobs`] (local or S3).
//! The server never touches tensors.
//!
//! ```text
//! docseek serve --model deepseek-ai/DeepSeek-OCR --data-dir /var/lib/docseek --api-key $KEY
//! curl -H "Authorization: Bearer $KEY" -F file=@paper.pdf 'localhost:8080/v1/ocr?format=md'
//! curl -H "Authorization: Bearer $KEY" --data-binary @scan.png localhost:8080/v1/jobs   # 202 {"id":..}
//! curl -N -H "Authorization: Bearer $KEY" localhost:8080/v1/jobs/$ID/events              # SSE
//! curl -H "Authorization: Bearer $KEY" 'localhost:8080/v1/jobs/$ID/result?format=json'
//! ```
//!
//! Jobs: `queued` → `running` → `done` | `failed` | `cancelled`. Each finished page is
//! committed to SQLite before its event is sent; the page images and a manifest are written
//! as the document is rasterized, so a restarted server re-renders nothing it finished and
//! recognises only the missing pages. `429` (with `Retry-After`) is answered when
//! `--max-queue` jobs already wait for one of the `--concurrency` run slots.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;

use crate::engine::OcrEngine;

pub mod blobs;
pub mod config;
pub mod engine_thread;
pub mod errors;
pub mod fleet;
pub mod intake;
pub mod metrics;
pub mod openapi;
pub mod results;
pub mod routes;
pub mod runner;
pub mod security;
pub mod store;
pub mod ui;
pub mod webhook;

pub use config::ServerConfig;
pub use errors::ApiError;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// Runs jobs and holds the store and the engine handle.
    pub runner: Arc<runner::Runner>,
    /// Settings.
    pub config: Arc<ServerConfig>,
    /// False until start-up (job resumption) is done, and again while shutting down.
    pub ready: Arc<AtomicBool>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory or database could not be opened.
    #[error("cannot open the job store in {dir}: {source}")]
    Store {
        /// The data directory or store URL (without its password).
        dir: String,
        /// The cause.
        source: store::StoreError,
    },
    /// The blob store could not be opened.
    #[error("cannot open the blob store: {0}")]
    Blobs(#[from] blobs::BlobError),
    /// The rasterizer could not be set up.
    #[error("cannot start the document rasterizer: {0}")]
    Rasterizer(crate::pdf::PdfError),
    /// The engine thread could not be started.
    #[error("cannot start the engine thread: {0}")]
    Engine(std::io::Error),
}

/// Opens the embedded store (SQLite and files in `--data-dir`), starts the engine thread and
/// resumes unfinished jobs. Must run inside a tokio runtime.
pub fn start(engine: Arc<dyn OcrEngine>, config: ServerConfig) -> Result<AppState, StartError> {
    let dir = || config.data_dir.display().to_string();
    let store =
        store::SqliteStore::open(&config.data_dir).map_err(|source| StartError::Store { dir: dir(), source })?;
    let blobs = blobs::BlobStore::local(&config.data_dir)?;
    start_on(engine, config, Arc::new(store), Arc::new(blobs))
}

/// Opens the stores `--store` and `--blobs` name (`None`: SQLite and files in the data
/// directory); work items of a shared store get `max_attempts` attempts.
pub async fn open_backends(
    config: &ServerConfig,
    store_url: Option<&str>,
    blobs_url: Option<&str>,
    max_attempts: u32,
) -> Result<(Arc<dyn store::JobStore>, Arc<blobs::BlobStore>), StartError> {
    let store: Arc<dyn store::JobStore> = match store_url {
        Some(url) => store::open(url, max_attempts)
            .await
            .map_err(|source| StartError::Store { dir: store::redact(url), source })?,
        None => Arc::new(
            store::SqliteStore::open(&config.data_dir)
                .map_err(|source| StartError::Store { dir: config.data_dir.display().to_string(), source })?,
        ),
    };
    let blobs = match blobs_url {
        Some(url) => blobs::BlobStore::open(url)?,
        None => blobs::BlobStore::local(&config.data_dir)?,
    };
    Ok((store, Arc::new(blobs)))
}

/// Starts the server over opened stores: the engine thread, resumption of unfinished jobs (in
/// the background: `/ready` says when it is done) and retention. Must run inside a tokio
/// runtime.
pub fn start_on(
    engine: Arc<dyn OcrEngine>,
    config: ServerConfig,
    store: Arc<dyn store::JobStore>,
    blobs: Arc<blobs::BlobStore>,
) -> Result<AppState, StartError> {
    let config = Arc::new(config);
    let raster = crate::pdf::Rasterizer::new(config.raster.clone()).map_err(StartError::Rasterizer)?;
    let engine = engine_thread::EngineHandle::for_server(engine, &config).map_err(StartError::Engine)?;
    let runner = runner::Runner::new(store, blobs, engine, raster, config.clone());
    let ready = Arc::new(AtomicBool::new(false));
    let (r, flag) = (runner.clone(), ready.clone());
    tokio::spawn(async move {
        match r.resume().await {
            Ok(_) => flag.store(true, Ordering::Relaxed),
            Err(e) => tracing::error!(error = %e, "cannot resume unfinished jobs; not ready"),
        }
    });
    tokio::spawn(runner.clone().retention_loop());
    Ok(AppState { runner, config, ready })
}

/// The complete application: API, metrics, OpenAPI document and UI, with authentication,
/// security headers, a read timeout on request bodies and (when configured) CORS.
pub fn router(state: AppState) -> Router {
    let app = Router::new()
        .merge(routes::api_routes())
        .merge(ui::routes())
        .fallback(routes::not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), security::require_api_key))
        .layer(axum::middleware::from_fn_with_state(state.clone(), intake::body_read_timeout))
        .layer(axum::middleware::from_fn(security::security_headers));
    let app = match security::cors_layer(&state.config.cors_origins) {
        Some(cors) => app.layer(cors),
        None => app,
    };
    app.with_state(state)
}

/// Serves `router(state)` on `listener` until `shutdown` resolves, then lets the open
/// connections finish their requests.
///
/// Each connection is HTTP/1.1 with a header read timeout (`ServerConfig::read_timeout`): a
/// client that opens a connection and trickles its headers (slowloris) is disconnected.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let ready = state.ready.clone();
    let read_timeout = state.config.read_timeout;
    let app = router(state);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        while connections.try_join_next().is_some() {}
        let service = TowerToHyperService::new(app.clone());
        let mut stop = stop_rx.clone();
        connections.spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(read_timeout)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let finished = tokio::select! {
                result = conn.as_mut() => result,
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = finished {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    ready.store(false, Ordering::Relaxed);
    let _ = stop_tx.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Pause after a failed `accept` (e.g. out of file descriptors).
const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);
