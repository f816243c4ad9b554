//! Shared helpers of the server tests: a server over the fake engine in a temporary data
//! directory, request builders (multipart, raw), and body readers.
#![allow(dead_code)]

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use docseek::engine::FakeEngine;
use docseek::server::{self, AppState, ServerConfig};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// A server over a fake engine with its data directory.
pub struct TestServer {
    pub state: AppState,
    pub app: Router,
    pub dir: tempfile::TempDir,
}

/// Starts a server (inside the current tokio runtime).
pub fn start(engine: FakeEngine, tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(dir.path().to_path_buf());
    config.defaults.mode = docseek::Mode::Tiny;
    tweak(&mut config);
    let state = server::start(std::sync::Arc::new(engine), config).unwrap();
    let app = server::router(state.clone());
    TestServer { state, app, dir }
}

/// A PNG of `w`x`h` with a gradient (so pages differ).
pub fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 3) as u8, 128]));
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out
}

/// A multipart body with a `file` part and text fields.
pub fn multipart(file: &[u8], filename: &str, fields: &[(&str, &str)]) -> (String, Vec<u8>) {
    let boundary = "docseekTestBoundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").as_bytes());
    }
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A multipart POST.
pub fn post_multipart(uri: &str, file: &[u8], fields: &[(&str, &str)]) -> Request<Body> {
    let (ct, body) = multipart(file, "doc.png", fields);
    Request::post(uri).header("content-type", ct).body(Body::from(body)).unwrap()
}

/// A raw-body POST.
pub fn post_raw(uri: &str, bytes: Vec<u8>) -> Request<Body> {
    Request::post(uri).header("content-type", "application/octet-stream").body(Body::from(bytes)).unwrap()
}

/// A GET.
pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

/// Sends a request through the router and reads the whole body.
pub async fn call(app: &Router, req: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, headers, body)
}

/// Sends a request and parses a JSON body.
pub async fn call_json(app: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let (s, _, b) = call(app, req).await;
    (s, serde_json::from_slice(&b).unwrap_or_else(|_| panic!("not JSON ({s}): {}", String::from_utf8_lossy(&b))))
}

/// Asserts an error response's status and stable code.
pub fn assert_error(status: StatusCode, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status.as_u16(), want_status, "{body}");
    assert_eq!(body["error"]["code"], want_code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

/// Polls a job until it reaches a final state (bounded wait).
pub async fn wait_final(app: &Router, id: &str) -> Value {
    for _ in 0..600 {
        let (_, v) = call_json(app, get(&format!("/v1/jobs/{id}"))).await;
        if ["done", "failed", "cancelled"].contains(&v["state"].as_str().unwrap_or("")) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {id} did not finish");
}

/// Parses an SSE body into (event, data) pairs.
pub fn sse_events(body: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for block in body.split("\n\n") {
        let mut event = String::from("message");
        let mut data = String::new();
        for line in block.lines() {
            if let Some(e) = line.strip_prefix("event:") {
                event = e.trim().to_string();
            } else if let Some(d) = line.strip_prefix("data:") {
                data.push_str(d.strip_prefix(' ').unwrap_or(d));
            }
        }
        if !data.is_empty() {
            out.push((event, data));
        }
    }
    out
}
