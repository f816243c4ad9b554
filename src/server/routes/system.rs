//! Health, readiness, metrics, server info and the OpenAPI document.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::server::errors::ApiError;
use crate::server::{metrics as m, openapi, AppState};

/// How long a store or blob check may take before it counts as down.
const BACKEND_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Checks the job store and the blob store: `(store ok, blobs ok, body)`.
async fn backends(st: &AppState) -> (bool, bool, serde_json::Value) {
    let r = &st.runner;
    let check = |res: Result<Result<(), String>, tokio::time::error::Elapsed>| match res {
        Ok(Ok(())) => (true, json!("ok")),
        Ok(Err(e)) => (false, json!(e)),
        Err(_) => (false, json!("timed out")),
    };
    let (store, blobs) = tokio::join!(
        tokio::time::timeout(BACKEND_CHECK_TIMEOUT, async { r.store.ping().await.map_err(|e| e.to_string()) }),
        tokio::time::timeout(BACKEND_CHECK_TIMEOUT, async { r.blobs.ping().await.map_err(|e| e.to_string()) }),
    );
    let ((store_ok, store), (blobs_ok, blobs)) = (check(store), check(blobs));
    let body = json!({ "store": { "backend": r.store.backend(), "status": store }, "blobs": { "url": r.blobs.url(), "status": blobs } });
    (store_ok, blobs_ok, body)
}

/// `GET /health`: the process is up and reaches its job store and blob store (`503` when
/// either is down).
pub async fn health(State(st): State<AppState>) -> Response {
    let (store_ok, blobs_ok, mut body) = backends(&st).await;
    let ok = store_ok && blobs_ok;
    body["status"] = json!(if ok { "ok" } else { "degraded" });
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

/// `GET /ready`: the server accepts work (started, not shutting down, queue not full, job
/// store and blob store reachable).
pub async fn ready(State(st): State<AppState>) -> Response {
    if !st.ready.load(Ordering::Relaxed) {
        return ApiError::Unavailable("the server is not ready".into()).into_response();
    }
    let (store_ok, blobs_ok, _) = backends(&st).await;
    if !store_ok || !blobs_ok {
        let which = if store_ok { "blob store" } else { "job store" };
        return ApiError::Unavailable(format!("the {which} is unreachable")).into_response();
    }
    let queued = st.runner.queued();
    let full = queued >= st.config.max_queued_jobs;
    let status = if full { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    (status, Json(json!({ "status": if full { "busy" } else { "ready" }, "queued_jobs": queued }))).into_response()
}

/// `GET /metrics`: Prometheus text; with a shared store also the queue depth and the
/// counters of every worker of the fleet.
pub async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    let mut text = m::global().render();
    if let Some(queue) = st.runner.store.queue() {
        match queue.stats().await {
            Ok(stats) => m::render_fleet(&mut text, &stats),
            Err(e) => tracing::warn!(error = %e, "cannot read the queue's metrics"),
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
}

/// `GET /v1/info`: model, compiled features, device, limits.
pub async fn info(State(st): State<AppState>) -> impl IntoResponse {
    let engine = st.runner.engine.info();
    let c = &st.config;
    Json(json!({
        "name": "docseek",
        "version": env!("CARGO_PKG_VERSION"),
        "model": engine.model,
        "architecture": engine.architecture,
        "device": engine.device,
        "dtype": engine.dtype,
        "features": { "cuda": cfg!(feature = "cuda") },
        "limits": {
            "max_upload_bytes": c.max_upload_bytes,
            "max_pages": c.raster.limits.max_pages,
            "max_page_pixels": c.raster.limits.max_page_pixels,
            "max_image_pixels": c.raster.limits.max_image_pixels,
            "max_queued_jobs": c.max_queued_jobs,
            "request_timeout_s": c.request_timeout.as_secs(),
            "retention_s": c.retention.as_secs(),
        },
        "concurrency": c.concurrency,
        "max_batch": c.max_batch,
        "auth": c.api_key.is_some(),
        "defaults": c.defaults,
        "formats": crate::server::results::FORMATS.map(crate::server::results::format_name),
    }))
}

/// `GET /openapi.json`.
pub async fn openapi() -> impl IntoResponse {
    Json(openapi::document())
}
