//! The API's routes, one file per area; shared helpers for job ids and event streams.

use std::convert::Infallible;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use futures_util::Stream;
use tokio::sync::mpsc;

use crate::server::errors::ApiError;
use crate::server::store::JobId;
use crate::server::AppState;

pub mod jobs;
pub mod ocr;
pub mod openai;
pub mod system;

/// Every API route (the UI is added separately).
pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(system::health))
        .route("/ready", get(system::ready))
        .route("/metrics", get(system::metrics))
        .route("/openapi.json", get(system::openapi))
        .route("/v1/info", get(system::info))
        .route("/v1/ocr", post(ocr::ocr))
        .route("/v1/jobs", post(jobs::create))
        .route("/v1/jobs/{id}", get(jobs::status).delete(jobs::cancel))
        .route("/v1/jobs/{id}/events", get(jobs::events))
        .route("/v1/jobs/{id}/result", get(jobs::result))
        .route("/v1/jobs/{id}/pages/{index}/image", get(jobs::page_image))
        .route("/v1/jobs/{id}/figures/{name}", get(jobs::figure))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/models", get(openai::models))
        // Bodies are read with explicit limits by the handlers themselves.
        .layer(axum::extract::DefaultBodyLimit::disable())
}

/// JSON 404 for unknown paths.
pub async fn not_found() -> impl IntoResponse {
    ApiError::NotFound("no such endpoint".into())
}

/// Checks a job id from a URL.
pub fn job_id(raw: &str) -> Result<JobId, ApiError> {
    JobId::parse(raw).ok_or_else(|| ApiError::NotFound("no such job".into()))
}

/// Turns a channel of SSE events into an SSE response with keep-alives.
pub fn sse_from_channel(rx: mpsc::Receiver<Event>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
