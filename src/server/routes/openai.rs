//! OpenAI-compatible endpoints: `POST /v1/chat/completions` (image parts as `data:` URLs, the
//! prompt text mapped to a [`Task`], `stream: true` over SSE) and `GET /v1/models`.
//! Remote image URLs are refused: the server never fetches on a client's behalf.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tracing::instrument;

use super::sse_from_channel;
use crate::engine::{PageJob, PageText};
use crate::model::{PageOutcome, Task};
use crate::pdf::{DocumentSource, RenderOptions};
use crate::server::errors::ApiError;
use crate::server::intake;
use crate::server::store::now_ms;
use crate::server::AppState;

/// Base64 inflates data by 4/3; the JSON body may be this much bigger than the upload limit.
const BASE64_SLACK_NUM: usize = 4;
const BASE64_SLACK_DEN: usize = 3;

/// A chat request (the fields we use; others are ignored as OpenAI clients send many).
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    /// Model name (informational: one model is served).
    #[serde(default)]
    pub model: Option<String>,
    /// The conversation; the last user message is used.
    pub messages: Vec<ChatMessage>,
    /// Stream the answer as SSE chunks.
    #[serde(default)]
    pub stream: bool,
    /// Token budget.
    #[serde(default, alias = "max_completion_tokens")]
    pub max_tokens: Option<usize>,
}

/// One chat message.
#[derive(Debug, Deserialize)]
pub struct ChatMessage {
    /// `user`, `system`, `assistant`.
    pub role: String,
    /// Text, or a list of text and image parts.
    pub content: Value,
}

/// Maps a prompt to a task: the official prompts and plain-language variants.
pub fn task_for_prompt(prompt: &str) -> (Task, Option<String>) {
    let p = prompt.replace("<image>", "").replace("<|grounding|>", "");
    let lower = p.to_lowercase();
    if let Some(start) = p.find("<|ref|>") {
        let rest = &p[start + "<|ref|>".len()..];
        let target = rest.split("<|/ref|>").next().unwrap_or("").trim().to_string();
        return (Task::Locate, Some(target));
    }
    if let Some(pos) = lower.find("locate ") {
        let target = p[pos + "locate ".len()..].trim().trim_end_matches("in the image.").trim().to_string();
        return (Task::Locate, Some(target));
    }
    let task = if lower.contains("markdown") {
        Task::Markdown
    } else if lower.contains("free ocr") || lower.contains("plain text") {
        Task::Free
    } else if lower.contains("figure") || lower.contains("chart") {
        Task::Figure
    } else if lower.contains("describe") || lower.contains("caption") {
        Task::Describe
    } else {
        Task::Ocr
    };
    (task, None)
}

/// The images and prompt text of the last user message.
fn last_user_turn(req: &ChatRequest, limit: usize) -> Result<(Vec<Vec<u8>>, String), ApiError> {
    let msg = req
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .ok_or_else(|| ApiError::BadRequest("no user message".into()))?;
    let mut images = Vec::new();
    let mut text = String::new();
    let parts: Vec<Value> = match &msg.content {
        Value::String(s) => vec![json!({ "type": "text", "text": s })],
        Value::Array(a) => a.clone(),
        _ => return Err(ApiError::BadRequest("message content must be a string or a list of parts".into())),
    };
    for part in parts {
        match part["type"].as_str() {
            Some("text") => text.push_str(part["text"].as_str().unwrap_or_default()),
            Some("image_url") => {
                let url = part["image_url"]["url"].as_str().or(part["image_url"].as_str()).unwrap_or_default();
                let data = url
                    .strip_prefix("data:")
                    .and_then(|r| r.split_once(";base64,"))
                    .ok_or_else(|| ApiError::BadRequest("images must be data: URLs with base64 content".into()))?
                    .1;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(data.trim())
                    .map_err(|_| ApiError::BadRequest("the image data URL is not valid base64".into()))?;
                if bytes.len() > limit {
                    return Err(ApiError::PayloadTooLarge { limit_mb: (limit as u64).div_ceil(1 << 20) });
                }
                images.push(bytes);
            }
            _ => return Err(ApiError::BadRequest("unsupported content part (use text and image_url)".into())),
        }
    }
    if images.is_empty() {
        return Err(ApiError::BadRequest("the user message has no image".into()));
    }
    Ok((images, text))
}

/// Renders one image (or PDF) part into page images, with the rasterizer's limits.
async fn render_part(st: &AppState, bytes: Vec<u8>) -> Result<Vec<image::RgbImage>, ApiError> {
    intake::sniff(&bytes)?;
    let raster = st.runner.raster.clone();
    let opts = RenderOptions::from(&st.config.defaults);
    tokio::task::spawn_blocking(move || -> Result<Vec<image::RgbImage>, ApiError> {
        let doc = raster.open(&DocumentSource::bytes(bytes), &opts)?;
        doc.map(|p| p.map(|p| p.image).map_err(ApiError::from)).collect()
    })
    .await
    .map_err(ApiError::internal)?
}

fn finish_reason(outcome: PageOutcome) -> &'static str {
    match outcome {
        PageOutcome::Length => "length",
        _ => "stop",
    }
}

/// `POST /v1/chat/completions`.
#[instrument(skip_all)]
pub async fn chat_completions(State(st): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let limit = st.config.max_upload_bytes * BASE64_SLACK_NUM / BASE64_SLACK_DEN + 64 * 1024;
    let body = intake::read_body(req.into_body(), limit).await?;
    let chat: ChatRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("invalid request: {e}")))?;
    let (images, prompt) = last_user_turn(&chat, st.config.max_upload_bytes)?;
    let (task, locate) = if prompt.trim().is_empty() {
        (st.config.defaults.task, st.config.defaults.locate.clone())
    } else {
        task_for_prompt(&prompt)
    };
    let mut opts = st.config.defaults.clone();
    opts.task = task;
    opts.locate = locate;
    if let Some(n) = chat.max_tokens {
        opts.max_new_tokens = n;
    }
    intake::check_options(&opts)?;
    let mut rendered = Vec::new();
    for part in images {
        rendered.extend(render_part(&st, part).await?);
    }
    let pages: Vec<PageJob> = rendered.into_iter().map(|img| PageJob::new(Arc::new(img), &opts)).collect();
    let model = st.runner.engine.info().model.clone();
    let id = format!("chatcmpl-{}", crate::server::store::JobId::generate());
    let created = now_ms() / 1000;
    if !chat.stream {
        let cancel = Arc::new(AtomicBool::new(false));
        let mut texts: Vec<PageText> = Vec::new();
        for page in pages {
            texts.push(st.runner.engine.recognize(page, cancel.clone(), None).await?);
        }
        let content = texts.iter().map(|t| t.raw.as_str()).collect::<Vec<_>>().join("\n\n");
        let prompt_tokens: usize = texts.iter().map(|t| t.prompt_tokens).sum();
        let completion_tokens: usize = texts.iter().map(|t| t.generated_tokens).sum();
        let reason = texts.last().map(|t| finish_reason(t.outcome)).unwrap_or("stop");
        return Ok(Json(json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": content }, "finish_reason": reason }],
            "usage": { "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens },
        }))
        .into_response());
    }
    let (tx, rx) = mpsc::channel::<Event>(256);
    let engine = st.runner.engine.clone();
    tokio::spawn(async move {
        let chunk = |delta: Value, reason: Option<&str>| {
            Event::default().data(
                json!({ "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{ "index": 0, "delta": delta, "finish_reason": reason }] })
                .to_string(),
            )
        };
        if tx.send(chunk(json!({ "role": "assistant", "content": "" }), None)).await.is_err() {
            return;
        }
        let cancel = Arc::new(AtomicBool::new(false));
        let mut reason = "stop";
        let count = pages.len();
        for (i, page) in pages.into_iter().enumerate() {
            let (ptx, mut prx) = mpsc::unbounded_channel::<String>();
            let e = engine.clone();
            let c = cancel.clone();
            let work = tokio::spawn(async move { e.recognize(page, c, Some(ptx)).await });
            while let Some(piece) = prx.recv().await {
                if tx.send(chunk(json!({ "content": piece }), None)).await.is_err() {
                    cancel.store(true, Ordering::Relaxed);
                    return;
                }
            }
            match work.await {
                Ok(Ok(text)) => reason = finish_reason(text.outcome),
                Ok(Err(err)) => {
                    let (_, code) = ApiError::from(err).status_and_code();
                    let _ = tx
                        .send(
                            Event::default()
                                .data(json!({ "error": { "code": code, "message": "generation failed" } }).to_string()),
                        )
                        .await;
                    return;
                }
                Err(_) => return,
            }
            if i + 1 < count && tx.send(chunk(json!({ "content": "\n\n" }), None)).await.is_err() {
                return;
            }
        }
        let _ = tx.send(chunk(json!({}), Some(reason))).await;
        let _ = tx.send(Event::default().data("[DONE]")).await;
    });
    Ok(sse_from_channel(rx).into_response())
}

/// `GET /v1/models`: the one served model.
pub async fn models(State(st): State<AppState>) -> impl IntoResponse {
    let info = st.runner.engine.info();
    Json(
        json!({ "object": "list", "data": [{ "id": info.model, "object": "model", "created": 0, "owned_by": "docseek" }] }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_map_to_tasks() {
        assert_eq!(task_for_prompt("<image>\n<|grounding|>Convert the document to markdown.").0, Task::Markdown);
        assert_eq!(task_for_prompt("<image>\nFree OCR.").0, Task::Free);
        assert_eq!(task_for_prompt("Parse the figure.").0, Task::Figure);
        assert_eq!(task_for_prompt("Describe this image in detail.").0, Task::Describe);
        assert_eq!(task_for_prompt("<|grounding|>OCR this image.").0, Task::Ocr);
        assert_eq!(
            task_for_prompt("Locate <|ref|>the title<|/ref|> in the image."),
            (Task::Locate, Some("the title".into()))
        );
    }
}
