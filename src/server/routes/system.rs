//! Health, readiness, metrics, server info and the OpenAPI document.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::server::errors::ApiError;
use crate::server::{metrics as m, openapi, AppState};

/// `GET /health`: the process is up.
pub async fn health() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// `GET /ready`: the server accepts work (started, not shutting down, queue not full).
pub async fn ready(State(st): State<AppState>) -> Response {
    if !st.ready.load(Ordering::Relaxed) {
        return ApiError::Unavailable("the server is not ready".into()).into_response();
    }
    let queued = st.runner.queued();
    let full = queued >= st.config.max_queued_jobs;
    let status = if full { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    (status, Json(json!({ "status": if full { "busy" } else { "ready" }, "queued_jobs": queued }))).into_response()
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], m::global().render())
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
