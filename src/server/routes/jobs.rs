//! Async jobs: create, status with per-page progress and queue position, live events (SSE),
//! results in every format, page images, cancel/delete.

use std::collections::HashSet;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{broadcast, mpsc};
use tracing::instrument;

use super::{job_id, sse_from_channel};
use crate::server::errors::ApiError;
use crate::server::results::{self, Postprocess, ResultRequest};
use crate::server::routes::ocr::read_submission;
use crate::server::runner::JobEvent;
use crate::server::store::{JobRecord, JobState};
use crate::server::AppState;

/// SSE events buffered per client.
const SSE_BUFFER: usize = 64;

fn links(id: &str) -> serde_json::Value {
    json!({
        "self": format!("/v1/jobs/{id}"),
        "events": format!("/v1/jobs/{id}/events"),
        "result": format!("/v1/jobs/{id}/result"),
    })
}

/// `POST /v1/jobs`: accepts a document (as `/v1/ocr` does) and answers `202` with the job id.
#[instrument(skip_all)]
pub async fn create(State(st): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let (submission, _) = read_submission(&st, req, false).await?;
    let (id, _rx) = st.runner.submit(submission).await?;
    let position = st.runner.queue_position(&id);
    let body = json!({ "id": id, "state": "queued", "queue_position": position, "links": links(id.as_str()) });
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, format!("/v1/jobs/{id}"))], Json(body)).into_response())
}

async fn load(st: &AppState, raw: &str) -> Result<JobRecord, ApiError> {
    let id = job_id(raw)?;
    st.runner.store.job(&id).await?.ok_or_else(|| ApiError::NotFound("no such job".into()))
}

/// `GET /v1/jobs/{id}`: state, per-page progress, queue position.
pub async fn status(State(st): State<AppState>, Path(raw): Path<String>) -> Result<Json<serde_json::Value>, ApiError> {
    let job = load(&st, &raw).await?;
    let pages = st.runner.store.pages(&job.id).await?;
    let done: HashSet<usize> = pages.iter().map(|p| p.index).collect();
    let failed = pages.iter().filter(|p| p.error.is_some()).count();
    let mut page_states: Vec<serde_json::Value> = pages
        .iter()
        .map(|p| json!({ "index": p.index, "page": p.page_number, "state": if p.error.is_some() { "failed" } else { "done" }, "tokens": p.tokens }))
        .collect();
    for i in (0..job.page_count.unwrap_or(0)).filter(|i| !done.contains(i)) {
        page_states.push(json!({ "index": i, "state": "pending" }));
    }
    page_states.sort_by_key(|p| p["index"].as_u64());
    Ok(Json(json!({
        "id": job.id,
        "state": job.state,
        "filename": job.filename,
        "media": job.media,
        "options": job.options,
        "created_ms": job.created_ms,
        "finished_ms": job.finished_ms,
        "queue_position": st.runner.queue_position(&job.id),
        "page_count": job.page_count,
        "pages_done": pages.len() - failed,
        "pages_failed": failed,
        "pages": page_states,
        "error": job.error.as_ref().map(|(c, m)| json!({ "code": c, "message": m })),
        "links": links(job.id.as_str()),
    })))
}

fn sse(event: &JobEvent) -> Event {
    Event::default().event(event.name()).data(serde_json::to_string(event).unwrap_or_default())
}

/// `GET /v1/jobs/{id}/events`: SSE. Replays what is already done (state, pages), then streams
/// `state`, `pages`, `page` and a final `done` event.
pub async fn events(State(st): State<AppState>, Path(raw): Path<String>) -> Result<Response, ApiError> {
    let id = job_id(&raw)?;
    if st.runner.store.queue().is_some() {
        // A shared store: the job may run anywhere; follow it through the store.
        st.runner.store.job(&id).await?.ok_or_else(|| ApiError::NotFound("no such job".into()))?;
        let (tx, rx) = mpsc::channel(SSE_BUFFER);
        tokio::spawn(crate::server::fleet::events::follow(st.runner.store.clone(), id, tx, sse));
        return Ok(sse_from_channel(rx).into_response());
    }
    // Subscribe before reading the snapshot so nothing falls between the two.
    let live = st.runner.live(&id).map(|l| l.events.subscribe());
    let job = st.runner.store.job(&id).await?.ok_or_else(|| ApiError::NotFound("no such job".into()))?;
    let pages = st.runner.store.pages(&id).await?;
    let (tx, rx) = mpsc::channel(SSE_BUFFER);
    let store = st.runner.store.clone();
    tokio::spawn(async move {
        let mut sent: HashSet<usize> = HashSet::new();
        let mut head = vec![JobEvent::State { state: job.state }];
        if let Some(count) = job.page_count {
            head.push(JobEvent::Pages { count });
        }
        for e in &head {
            if tx.send(sse(e)).await.is_err() {
                return;
            }
        }
        // Finished pages, structured one at a time off the async workers (a long job has many).
        for p in pages {
            sent.insert(p.index);
            let hints = job.options.languages.clone();
            let Ok(page) = tokio::task::spawn_blocking(move || results::page_event(&p, &hints)).await else { return };
            if tx.send(sse(&JobEvent::Page { page })).await.is_err() {
                return;
            }
        }
        let final_event = |j: &JobRecord| JobEvent::Done {
            state: j.state,
            code: j.error.as_ref().map(|e| e.0.clone()),
            message: j.error.as_ref().map(|e| e.1.clone()),
        };
        if job.state.is_final() || live.is_none() {
            let _ = tx.send(sse(&final_event(&job))).await;
            return;
        }
        let Some(mut rx) = live else { return };
        loop {
            let event = match rx.recv().await {
                Ok(e) => e,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => {
                    if let Ok(Some(j)) = store.job(&id).await {
                        let _ = tx.send(sse(&final_event(&j))).await;
                    }
                    return;
                }
            };
            if let JobEvent::Page { page } = &event {
                if let Some(i) = page["index"].as_u64() {
                    if !sent.insert(i as usize) {
                        continue;
                    }
                }
            }
            let done = matches!(event, JobEvent::Done { .. });
            if tx.send(sse(&event)).await.is_err() || done {
                return;
            }
        }
    });
    Ok(sse_from_channel(rx).into_response())
}

/// Query of `GET /v1/jobs/{id}/result`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultQuery {
    /// `json` (default), `md`, `html`, `hocr`, `txt` or `pdf`.
    pub format: Option<String>,
    /// Answer with `Content-Disposition: attachment`.
    pub download: Option<bool>,
    /// Hide running headers and footers (reversible: the JSON keeps them, flagged).
    pub hide_headers: Option<bool>,
    /// Merge tables continued across pages.
    pub merge_tables: Option<bool>,
}

/// A finished job and its pages, or the error its state calls for.
async fn finished(st: &AppState, raw: &str) -> Result<(JobRecord, Vec<crate::server::store::PageRecord>), ApiError> {
    let job = load(st, raw).await?;
    match job.state {
        JobState::Done => {}
        JobState::Queued | JobState::Running => return Err(ApiError::NotReady("the job has not finished yet".into())),
        JobState::Cancelled => return Err(ApiError::Cancelled),
        JobState::Failed => {
            let (code, message) = job.error.clone().unwrap_or_else(|| ("internal".into(), String::new()));
            return Err(ApiError::from_code(&code, message));
        }
    }
    let pages = st.runner.store.pages(&job.id).await?;
    Ok((job, pages))
}

/// `GET /v1/jobs/{id}/result?format=md|json|html|hocr|txt|pdf`: the result rendered by the
/// document model (figures linked as `figures/page-N-fig-K.png`, relative to this URL).
pub async fn result(
    State(st): State<AppState>,
    Path(raw): Path<String>,
    q: Result<Query<ResultQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let format = q.format.as_deref().map(results::parse_format).transpose()?.unwrap_or(crate::doc::Format::Json);
    let (job, pages) = finished(&st, &raw).await?;
    let post = Postprocess {
        hide_headers_footers: q.hide_headers.unwrap_or(false),
        merge_tables: q.merge_tables.unwrap_or(false),
    };
    let request = ResultRequest { format, post, figures: true };
    let store = st.runner.blobs.clone();
    let name = format!("docseek-{}.{}", job.id, results::format_name(format));
    let rendered = tokio::task::spawn_blocking(move || results::render(&store, &job, &pages, request))
        .await
        .map_err(ApiError::internal)??;
    let mut resp = ([(header::CONTENT_TYPE, format.mime())], rendered.content).into_response();
    if q.download.unwrap_or(false) {
        if let Ok(v) = header::HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
            resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
    }
    Ok(resp)
}

/// `GET /v1/jobs/{id}/figures/{name}`: a figure cropped from its page image (PNG), as linked
/// from the Markdown and JSON results.
pub async fn figure(
    State(st): State<AppState>,
    Path((raw, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    results::figure_page(&name).ok_or_else(|| ApiError::NotFound("no such figure".into()))?;
    let (job, pages) = finished(&st, &raw).await?;
    let store = st.runner.blobs.clone();
    let png = tokio::task::spawn_blocking(move || results::figure(&store, &job, &pages, &name))
        .await
        .map_err(ApiError::internal)??;
    Ok(([(header::CONTENT_TYPE, "image/png"), (header::CACHE_CONTROL, "private, max-age=3600")], png).into_response())
}

/// `GET /v1/jobs/{id}/pages/{index}/image`: the rendered page (PNG), `index` 0-based.
pub async fn page_image(
    State(st): State<AppState>,
    Path((raw, index)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let job = load(&st, &raw).await?;
    let index: usize = index.parse().map_err(|_| ApiError::NotFound("no such page".into()))?;
    if job.page_count.is_none_or(|n| index >= n) {
        return Err(ApiError::NotFound("no such page".into()));
    }
    let blobs = &st.runner.blobs;
    let bytes = blobs
        .get(&blobs.page_key(&job.id, index))
        .await?
        .ok_or_else(|| ApiError::NotFound("the page image is not available".into()))?;
    Ok(([(header::CONTENT_TYPE, "image/png"), (header::CACHE_CONTROL, "private, max-age=3600")], bytes).into_response())
}

/// `DELETE /v1/jobs/{id}`: cancels a queued or running job (`200`, state `cancelled`);
/// deletes a finished one and its files (`204`).
pub async fn cancel(State(st): State<AppState>, Path(raw): Path<String>) -> Result<Response, ApiError> {
    let job = load(&st, &raw).await?;
    if !job.state.is_final() && st.runner.cancel(&job.id).await? {
        return Ok(Json(json!({ "id": job.id, "state": "cancelled" })).into_response());
    }
    st.runner.store.delete_job(&job.id).await?;
    st.runner.blobs.delete_job(&job.id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
