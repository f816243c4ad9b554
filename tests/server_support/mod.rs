//! Shared helpers of the server tests: a server over the fake engine or a tiny random
//! DeepSeek-OCR checkpoint in a temporary data directory, request builders (multipart, raw),
//! and body readers.
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

/// Starts a server over the fake engine (inside the current tokio runtime).
pub fn start(engine: FakeEngine, tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
    start_engine(std::sync::Arc::new(engine), tweak)
}

/// Starts a server over any engine (inside the current tokio runtime).
pub fn start_engine(
    engine: std::sync::Arc<dyn docseek::engine::OcrEngine>,
    tweak: impl FnOnce(&mut ServerConfig),
) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(dir.path().to_path_buf());
    config.defaults.mode = docseek::Mode::Tiny;
    // The test harness is not the docseek binary: PDF workers run the real one.
    config.raster.worker_exe = Some(env!("CARGO_BIN_EXE_docseek").into());
    tweak(&mut config);
    let state = server::start(engine, config).unwrap();
    let app = server::router(state.clone());
    TestServer { state, app, dir }
}

/// Tokens generated per page with the tiny checkpoint: enough to exercise decoding and
/// streaming, few enough to keep the tests quick on two cores.
pub const TINY_MAX_NEW_TOKENS: &str = "16";

/// A tiny random DeepSeek-OCR checkpoint folder, written once per test binary by
/// `docseek dev tiny-checkpoint` (kept for the life of the process).
pub fn tiny_checkpoint() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_docseek"))
            .args(["dev", "tiny-checkpoint"])
            .arg(dir.path())
            .output()
            .expect("running docseek dev tiny-checkpoint");
        assert!(out.status.success(), "docseek dev tiny-checkpoint failed: {}", String::from_utf8_lossy(&out.stderr));
        dir
    })
    .path()
}

/// The real engine over the tiny checkpoint, on the CPU.
pub fn tiny_engine() -> std::sync::Arc<dyn docseek::engine::OcrEngine> {
    let args = docseek::options::ModelArgs {
        model: tiny_checkpoint().to_str().unwrap().to_string(),
        revision: "main".into(),
        dtype: None,
        device: docseek::model::DeviceSpec::Cpu,
        quant: None,
    };
    docseek::engine::load(&args).expect("loading the tiny checkpoint")
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
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").as_bytes(),
        );
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

/// A blocking HTTP/1.1 request over a real socket (`Connection: close`); decodes chunked bodies.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    // A server may answer (413) and close before reading a large body: keep what it said.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if raw.is_empty() => panic!("reading the response: {e}"),
            Err(_) => break,
        }
    }
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("no header end");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut rest = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status: u16 = lines.next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())))
        .collect();
    if headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked")) {
        let mut out = Vec::new();
        loop {
            let nl = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..nl]).trim(), 16).unwrap();
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[nl + 2..nl + 2 + size]);
            rest = rest[nl + 2 + size + 2..].to_vec();
        }
        rest = out;
    }
    (status, headers, rest)
}

/// `http` with a JSON body parsed from the response.
pub fn http_json(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Value) {
    let (s, _, b) = http(addr, method, path, headers, body);
    (s, serde_json::from_slice(&b).unwrap_or_else(|_| panic!("not JSON ({s}): {}", String::from_utf8_lossy(&b))))
}

/// A running `docseek serve` process (the real binary) on a free port.
pub struct ServeProcess {
    pub child: std::process::Child,
    pub addr: String,
}

impl ServeProcess {
    /// Starts `docseek serve --port 0` with `args` and `envs`, and waits for its address.
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> Self {
        use std::io::BufRead;
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_docseek"));
        cmd.arg("serve").args(["--host", "127.0.0.1", "--port", "0"]).args(args);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child =
            cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::inherit()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("docseek listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_string();
        ServeProcess { child, addr }
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls a job over a socket until `pred` holds on its status (bounded).
pub fn poll_job(addr: &str, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..1200 {
        let (_, v) = http_json(addr, "GET", &format!("/v1/jobs/{id}"), &[], b"");
        if pred(&v) {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("job {id} never reached: {what}");
}

/// The pages of a PDF as pdfium reads them (through docseek's rasterizer worker, at 36 dpi):
/// each page's size in points and its text layer.
pub fn pdf_pages(pdf: &[u8]) -> Vec<(f32, f32, String)> {
    use docseek::pdf::{DocumentSource, Rasterizer, RasterizerConfig, RenderOptions};
    let config = RasterizerConfig { worker_exe: Some(env!("CARGO_BIN_EXE_docseek").into()), ..Default::default() };
    let raster = Rasterizer::new(config).unwrap();
    let opts = RenderOptions { dpi: 36.0, text: true, ..Default::default() };
    let doc = raster.open(&DocumentSource::bytes(pdf.to_vec()), &opts).expect("a readable PDF");
    doc.map(|p| {
        let p = p.unwrap();
        (p.width_pt, p.height_pt, p.text.expect("a text layer").text)
    })
    .collect()
}

/// The text layer of a whole PDF, pages joined by newlines.
pub fn pdf_text(pdf: &[u8]) -> String {
    pdf_pages(pdf).into_iter().map(|(_, _, t)| t).collect::<Vec<_>>().join("\n")
}
