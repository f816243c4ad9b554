//! `POST /v1/ocr`: synchronous OCR. The document goes through the same queue and engine as
//! jobs (so batching and `429` apply), the request waits for the result, and the job is
//! removed afterwards. A client that disconnects or times out cancels its job.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast;
use tracing::instrument;

use crate::server::errors::ApiError;
use crate::server::intake::{self, Upload};
use crate::server::results::{self, Postprocess, ResultRequest};
use crate::server::runner::{JobEvent, Runner, Submission};
use crate::server::store::{JobId, JobState};
use crate::server::{webhook, AppState};

/// Fields that choose how a result is rendered (synchronous requests only).
const RESULT_FIELDS: [&str; 4] = ["format", "formats", "hide_headers", "merge_tables"];

/// What a synchronous request asked to get back.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The format (`format=`) and post-processing.
    pub result: ResultRequest,
    /// With `formats=md,json,…`: several formats in one JSON answer (overrides `format`).
    pub bundle: Vec<crate::doc::Format>,
}

/// Reads an upload and its fields (query string first, then form fields) into a submission
/// and what to answer with.
pub async fn read_submission(st: &AppState, req: Request, ephemeral: bool) -> Result<(Submission, Answer), ApiError> {
    // A full queue answers at once, without reading (and paying for) the upload.
    st.runner.check_capacity()?;
    let mut fields = intake::query_fields(req.uri().query());
    // A slow sender cannot hold a connection open forever.
    let timeout = st.config.request_timeout;
    let Upload { bytes, filename, fields: form } =
        tokio::time::timeout(timeout, intake::read_upload(req, st.config.max_upload_bytes))
            .await
            .map_err(|_| ApiError::Timeout(timeout.as_secs()))??;
    fields.extend(form);
    let get = |k: &str| fields.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let format = get("format").map(|f| results::parse_format(&f)).transpose()?.unwrap_or(crate::doc::Format::Json);
    let flag = |k: &str| get(k).map(|v| intake::parse_flag(k, &v)).transpose().map(Option::unwrap_or_default);
    let post = Postprocess { hide_headers_footers: flag("hide_headers")?, merge_tables: flag("merge_tables")? };
    // A synchronous answer's job is deleted afterwards, so its figure crops could not be fetched.
    let result = ResultRequest { format, post, figures: false };
    let mut bundle = Vec::new();
    for name in get("formats").iter().flat_map(|f| f.split(',')).map(str::trim).filter(|f| !f.is_empty()) {
        let f = results::parse_format(name)?;
        if !bundle.contains(&f) {
            bundle.push(f);
        }
    }
    // A job's result is rendered when it is fetched: these would be silently ignored.
    if !ephemeral {
        if let Some(field) = RESULT_FIELDS.iter().find(|f| get(f).is_some()) {
            return Err(ApiError::BadRequest(format!(
                "'{field}' is chosen when fetching a job's result: GET /v1/jobs/{{id}}/result?{field}=…"
            )));
        }
    }
    let webhook = match get("webhook").filter(|w| !w.is_empty()) {
        Some(url) if !ephemeral => {
            webhook::check(&url, &st.config.webhook_hosts)?;
            Some(url)
        }
        Some(_) => return Err(ApiError::BadRequest("webhooks are for jobs (POST /v1/jobs)".into())),
        None => None,
    };
    let options = intake::options_from_fields(&st.config.defaults, &fields)?;
    let kind = intake::sniff(&bytes)?;
    let filename = filename.or_else(|| get("filename"));
    Ok((Submission { bytes, kind, filename, options, webhook, ephemeral }, Answer { result, bundle }))
}

/// Cancels and removes a synchronous job unless disarmed (client gone, timeout, error).
struct JobGuard {
    runner: Arc<Runner>,
    id: JobId,
}

impl Drop for JobGuard {
    fn drop(&mut self) {
        let (runner, id) = (self.runner.clone(), self.id.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = runner.cancel(&id).await;
                let _ = runner.store.delete_job(&id).await;
                let _ = runner.blobs.delete_job(&id).await;
            });
        }
    }
}

/// Waits for the job's final state.
pub async fn wait_done(runner: &Runner, id: &JobId, rx: &mut broadcast::Receiver<JobEvent>) -> JobState {
    loop {
        match rx.recv().await {
            Ok(JobEvent::Done { state, .. }) => return state,
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => {
                return runner.store.job(id).await.ok().flatten().map(|j| j.state).unwrap_or(JobState::Failed);
            }
        }
    }
}

/// `POST /v1/ocr`: multipart (`file` + option fields) or a raw body; options also as query
/// parameters; `format=json|md|html|hocr|txt|pdf` picks the response, `formats=md,json,…`
/// asks for several at once (one JSON object, see [`results::render_bundle`]).
#[instrument(skip_all)]
pub async fn ocr(State(st): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let (submission, answer) = read_submission(&st, req, true).await?;
    let runner = st.runner.clone();
    let (id, mut rx) = runner.submit(submission).await?;
    let guard = JobGuard { runner: runner.clone(), id: id.clone() };
    let timeout = st.config.request_timeout;
    let state = tokio::time::timeout(timeout, wait_done(&runner, &id, &mut rx))
        .await
        .map_err(|_| ApiError::Timeout(timeout.as_secs()))?;
    let job = runner.store.job(&id).await?.ok_or_else(|| ApiError::internal("sync job vanished"))?;
    match state {
        JobState::Done => {}
        JobState::Cancelled => return Err(ApiError::Cancelled),
        _ => {
            let (code, message) = job.error.clone().unwrap_or_else(|| ("internal".into(), String::new()));
            return Err(ApiError::from_code(&code, message));
        }
    }
    let pages = runner.store.pages(&id).await?;
    if !pages.is_empty() && pages.iter().all(|p| p.error.is_some()) {
        return Err(ApiError::ModelFailed(pages[0].error.clone().unwrap_or_default()));
    }
    let store = runner.blobs.clone();
    let request = answer.result;
    let response = if answer.bundle.is_empty() {
        let rendered = tokio::task::spawn_blocking(move || results::render(&store, &job, &pages, request))
            .await
            .map_err(ApiError::internal)??;
        ([(header::CONTENT_TYPE, request.format.mime())], rendered.content).into_response()
    } else {
        let bundle = answer.bundle;
        let body = tokio::task::spawn_blocking(move || results::render_bundle(&store, &job, &pages, request, &bundle))
            .await
            .map_err(ApiError::internal)??;
        axum::Json(body).into_response()
    };
    drop(guard);
    Ok(response)
}
