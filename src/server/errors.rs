//! The one place where error kinds become HTTP statuses and stable JSON error codes.
//!
//! Every failure a client can see is an [`ApiError`]; it renders as
//! `{"error":{"code":"...","message":"..."}}`. Internal details (paths, SQL, panics) are
//! logged, never sent.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::engine::EngineError;
use crate::pdf::PdfError;

/// An error returned to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (bad JSON, missing upload, bad parameter).
    #[error("{0}")]
    BadRequest(String),
    /// The OCR options are invalid (unknown field, bad value).
    #[error("{0}")]
    InvalidOptions(String),
    /// The API key is missing or wrong.
    #[error("missing or invalid API key (send `Authorization: Bearer <key>`)")]
    Unauthorized,
    /// No such route, job or page.
    #[error("{0}")]
    NotFound(String),
    /// The job is not in a state that allows this (e.g. result before completion).
    #[error("{0}")]
    NotReady(String),
    /// The job was cancelled.
    #[error("the job was cancelled")]
    Cancelled,
    /// The upload is bigger than the configured limit.
    #[error("the upload is larger than the limit of {limit_mb} MB")]
    PayloadTooLarge {
        /// The limit, in MB.
        limit_mb: u64,
    },
    /// The request body stalled: no data arrived within the read timeout.
    #[error("the request body stalled (no data within the read timeout); send it again")]
    BodyTimeout,
    /// The upload is not a PDF or a supported image.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The upload looks like a document but cannot be read (corrupt, encrypted, empty).
    #[error("{0}")]
    InvalidDocument(String),
    /// The document exceeds a page or pixel limit.
    #[error("{0}")]
    LimitExceeded(String),
    /// Too much work is queued; retry later.
    #[error("the queue is full; retry in {retry_after_s} s")]
    QueueFull {
        /// Suggested wait in seconds (sent as `Retry-After`).
        retry_after_s: u64,
    },
    /// The request took longer than the configured timeout.
    #[error("the request timed out after {0} s")]
    Timeout(u64),
    /// The document renderer failed (crashed, timed out, missing); the service is at fault.
    #[error("{0}")]
    RenderFailed(String),
    /// The model failed on this input.
    #[error("{0}")]
    ModelFailed(String),
    /// The server is starting or shutting down.
    #[error("{0}")]
    Unavailable(String),
    /// Something went wrong inside the server; the details are only logged.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status and the stable machine-readable code of this error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::InvalidOptions(_) => (StatusCode::BAD_REQUEST, "invalid_options"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::NotReady(_) => (StatusCode::CONFLICT, "not_ready"),
            ApiError::Cancelled => (StatusCode::CONFLICT, "cancelled"),
            ApiError::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::BodyTimeout => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            ApiError::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            ApiError::InvalidDocument(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_document"),
            ApiError::LimitExceeded(_) => (StatusCode::UNPROCESSABLE_ENTITY, "limit_exceeded"),
            ApiError::QueueFull { .. } => (StatusCode::TOO_MANY_REQUESTS, "queue_full"),
            ApiError::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
            ApiError::RenderFailed(_) => (StatusCode::INTERNAL_SERVER_ERROR, "render_failed"),
            ApiError::ModelFailed(_) => (StatusCode::INTERNAL_SERVER_ERROR, "model_error"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// Rebuilds a stored job error from its code and message.
    pub fn from_code(code: &str, message: String) -> Self {
        match code {
            "bad_request" => ApiError::BadRequest(message),
            "invalid_options" => ApiError::InvalidOptions(message),
            "unsupported_media_type" => ApiError::UnsupportedMediaType(message),
            "invalid_document" => ApiError::InvalidDocument(message),
            "limit_exceeded" => ApiError::LimitExceeded(message),
            "model_error" => ApiError::ModelFailed(message),
            "render_failed" => ApiError::RenderFailed(message),
            "interrupted" | "unavailable" => ApiError::Unavailable(message),
            "cancelled" => ApiError::Cancelled,
            _ => ApiError::Internal(message),
        }
    }

    /// Wraps an internal failure: the cause is logged, the client sees "internal error".
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ApiError::Internal(cause.to_string())
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        ApiError::internal(format!("database: {e}"))
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> Self {
        ApiError::internal(format!("io: {e}"))
    }
}

impl From<PdfError> for ApiError {
    fn from(e: PdfError) -> Self {
        let msg = e.to_string();
        match e {
            PdfError::NotADocument { .. } => ApiError::UnsupportedMediaType(format!(
                "{msg}; send a PDF or an image (PNG, JPEG, TIFF, WebP, BMP, GIF)"
            )),
            PdfError::InputTooLarge { limit, .. } => ApiError::PayloadTooLarge { limit_mb: limit.div_ceil(1 << 20) },
            PdfError::TooManyPages { .. }
            | PdfError::PixelBomb { .. }
            | PdfError::StreamBomb { .. }
            | PdfError::WorkerOutOfMemory { .. } => ApiError::LimitExceeded(msg),
            PdfError::InvalidOption { .. } => ApiError::InvalidOptions(msg),
            PdfError::PdfiumMissing { .. } | PdfError::PdfiumUnloadable { .. } => {
                tracing::error!(error = %msg, "PDF support unavailable");
                ApiError::Unavailable("PDF rendering is not available on this server".into())
            }
            PdfError::WorkerCrashed { .. } | PdfError::WorkerTimeout { .. } | PdfError::RenderFailed { .. } => {
                ApiError::RenderFailed(msg)
            }
            PdfError::WorkerUnavailable { .. }
            | PdfError::Unwritable { .. }
            | PdfError::Unreadable { .. }
            | PdfError::NotFound { .. }
            | PdfError::IsDirectory { .. }
            | PdfError::NotAFile { .. } => ApiError::internal(msg),
            _ => ApiError::InvalidDocument(msg),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::InvalidRequest(m) => ApiError::InvalidOptions(m),
            EngineError::Cancelled => ApiError::Cancelled,
            EngineError::Model(m) => ApiError::ModelFailed(format!("the model failed: {m}")),
        }
    }
}

/// The JSON body of an error: `{"error":{"code":..,"message":..}}`.
pub fn error_body(code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({ "error": { "code": code, "message": message } })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let ApiError::Internal(cause) = &self {
            tracing::error!(%cause, "internal error");
        }
        crate::server::metrics::global().count_error(code);
        let mut resp = (status, Json(error_body(code, &self.to_string()))).into_response();
        if let ApiError::QueueFull { retry_after_s } = &self {
            if let Ok(v) = HeaderValue::from_str(&retry_after_s.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_internal_details_hidden() {
        let e = ApiError::internal("/secret/path.db locked");
        assert_eq!(e.status_and_code(), (StatusCode::INTERNAL_SERVER_ERROR, "internal"));
        assert_eq!(e.to_string(), "internal error");
        let full = ApiError::QueueFull { retry_after_s: 3 }.into_response();
        assert_eq!(full.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(full.headers()[header::RETRY_AFTER], "3");
        assert_eq!(ApiError::PayloadTooLarge { limit_mb: 1 }.status_and_code().1, "payload_too_large");
    }
}
