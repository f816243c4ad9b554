//! The service against a hostile or careless client, each case built by the test: slow headers
//! (slowloris), a body shorter than its Content-Length, a malformed chunk size, a multipart part
//! without Content-Disposition, a lower-case `bearer`, more jobs than run slots (also after a
//! restart), a document
//! whose every page fails, and huge images (a 180-megapixel one answered, a 150-megapixel one
//! that fails half-way refused with 422; the memory of both given back).

mod server_support;

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use docseek::engine::{EngineError, EngineInfo, FakeEngine, OcrEngine, PageJob, PageText, TokenSink};
use server_support::*;

/// The read timeout the socket tests run with.
const READ_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a socket test waits for the server before calling it stuck (far above the timeout).
const STUCK: Duration = Duration::from_secs(30);

/// Starts an in-process server on a real socket (port 0); returns its address and a stopper.
async fn serve(
    tweak: impl FnOnce(&mut docseek::server::ServerConfig),
) -> (String, TestServer, tokio::sync::oneshot::Sender<()>) {
    let s = start(FakeEngine::new(), |c| {
        c.read_timeout = READ_TIMEOUT;
        tweak(c);
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(docseek::server::run(listener, s.state.clone(), async move {
        let _ = stopped.await;
    }));
    (addr, s, stop)
}

/// Sends `raw` bytes (and keeps the connection open for writing), then reads until the server
/// answers and closes, or `STUCK` passes. Returns what was read and how long it took.
fn exchange(addr: &str, raw: &[u8]) -> (String, Duration) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(STUCK)).unwrap();
    s.write_all(raw).unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                // One response is enough: the body of our error answers is small JSON.
                let text = String::from_utf8_lossy(&got);
                if text.contains("\r\n\r\n") && text.trim_end().ends_with('}') {
                    break;
                }
            }
            Err(e) => panic!(
                "the server neither answered nor closed within {STUCK:?}: {e}; got {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_or_broken_requests_are_cut_off_or_refused() {
    let (addr, _s, stop) = serve(|_| {}).await;
    let a = addr.clone();
    tokio::task::spawn_blocking(move || {
        // Slowloris: headers that never end. The connection is closed after the read timeout.
        let (got, took) = exchange(&a, b"POST /v1/ocr HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n");
        assert!(got.is_empty() || got.starts_with("HTTP/1.1 408"), "{got}");
        assert!(took < STUCK, "{took:?}");

        // A body shorter than its Content-Length: 408 once the body stalls.
        let (got, _) = exchange(&a, b"POST /v1/ocr HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n%PDF-1.4\n");
        assert!(got.starts_with("HTTP/1.1 408"), "{got}");
        assert!(got.contains("request_timeout"), "{got}");

        // A malformed chunk size is a bad request, not a too-large one.
        let (got, _) = exchange(
            &a,
            b"POST /v1/ocr HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        );
        assert!(got.starts_with("HTTP/1.1 400"), "{got}");
        assert!(got.contains("bad_request") && !got.contains("payload_too_large"), "{got}");

        // A client that half-closes after a short body gets an answer at once.
        let mut s = std::net::TcpStream::connect(&a).unwrap();
        s.set_read_timeout(Some(STUCK)).unwrap();
        s.write_all(b"POST /v1/ocr HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nshort").unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut got = String::new();
        let _ = s.read_to_string(&mut got);
        assert!(got.is_empty() || got.starts_with("HTTP/1.1 400"), "{got}");
    })
    .await
    .unwrap();
    stop.send(()).unwrap();
}

#[tokio::test]
async fn multipart_without_content_disposition_and_lowercase_bearer() {
    let s = start(FakeEngine::new(), |c| c.api_key = Some("k1".into()));
    let boundary = "b0undary";
    let body = format!("--{boundary}\r\nContent-Type: image/png\r\n\r\n{}\r\n--{boundary}--\r\n", "x".repeat(20_000));
    let req = Request::post("/v1/ocr")
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .header("authorization", "bearer k1")
        .body(Body::from(body))
        .unwrap();
    let (status, v) = call_json(&s.app, req).await;
    assert_error(status, &v, 400, "bad_request");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("Content-Disposition") && !msg.contains("too long"), "{msg}");

    for scheme in ["bearer", "BEARER", "Bearer"] {
        let req = Request::get("/v1/info").header("authorization", format!("{scheme} k1")).body(Body::empty()).unwrap();
        let (status, v) = call_json(&s.app, req).await;
        assert_eq!(status, 200, "{scheme}: {v}");
    }
    let req = Request::get("/v1/info").header("authorization", "Basic k1").body(Body::empty()).unwrap();
    let (status, v) = call_json(&s.app, req).await;
    assert_error(status, &v, 401, "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_never_shows_more_running_jobs_than_run_slots() {
    let engine = FakeEngine { token_delay: Duration::from_millis(2), ..FakeEngine::new() };
    let s = start(engine, |c| c.concurrency = 2);
    let mut ids = Vec::new();
    for i in 0..8 {
        let (status, v) = call_json(&s.app, post_raw("/v1/jobs?max_new_tokens=6", png(20 + i, 20))).await;
        assert_eq!(status, 202, "{v}");
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    // One query is one consistent snapshot of every job's state.
    let store = s.state.runner.store.clone();
    let mut most = 0;
    loop {
        let unfinished = store.unfinished_jobs().await.unwrap();
        let running = unfinished.iter().filter(|j| j.state == docseek::server::store::JobState::Running).count();
        most = most.max(running);
        assert!(running <= 2, "{running} jobs running with --concurrency 2");
        if unfinished.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(most >= 1, "no job was ever seen running");
    for id in &ids {
        assert_eq!(wait_final(&s.app, id).await["state"], "done");
    }
}

/// Each job's state, polled over a socket.
fn states(addr: &str, ids: &[String]) -> Vec<String> {
    ids.iter()
        .map(|id| http_json(addr, "GET", &format!("/v1/jobs/{id}"), &[], b"").1["state"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn jobs_resumed_after_a_restart_wait_for_a_slot_as_queued() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    // Slow pages (about 5 s each) so that no job finishes while the states are read.
    let slow = [("DOCSEEK_FAKE_TOKEN_DELAY_MS", "250")];
    let server = ServeProcess::start(&["--model", "fake", "--data-dir", dir, "--concurrency", "3"], &slow);
    let ids: Vec<String> = (0..3)
        .map(|i| {
            let (status, v) = http_json(&server.addr, "POST", "/v1/jobs", &[], &png(30 + i, 20));
            assert_eq!(status, 202, "{v}");
            v["id"].as_str().unwrap().to_string()
        })
        .collect();
    for id in &ids {
        poll_job(&server.addr, id, "running", |v| v["state"] == "running");
    }
    server.kill9();
    // Three jobs were running; after a restart with one slot, one runs and two wait.
    let server = ServeProcess::start(&["--model", "fake", "--data-dir", dir, "--concurrency", "1"], &slow);
    for _ in 0..200 {
        let now = states(&server.addr, &ids);
        let running = now.iter().filter(|s| *s == "running").count();
        assert!(running <= 1, "{now:?} with --concurrency 1");
        if running == 1 {
            assert_eq!(now.iter().filter(|s| *s == "queued").count(), 2, "{now:?}");
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("no resumed job started");
}

/// Appends one PNG chunk (length, type, data, CRC).
fn png_chunk(png: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
    png.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    png.extend_from_slice(kind);
    png.extend_from_slice(data);
    png.extend_from_slice(&crc.sum().to_be_bytes());
}

/// A one-page PDF whose content stream is `inflated` bytes of spaces, Flate-compressed.
fn flate_bomb_pdf(inflated: usize) -> Vec<u8> {
    use flate2::write::ZlibEncoder;
    let mut enc = ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&vec![b' '; inflated]).unwrap();
    let data = enc.finish().unwrap();
    let objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R >>".to_vec(),
        [
            format!("<< /Length {} /Filter /FlateDecode >>\nstream\n", data.len()).into_bytes(),
            data,
            b"\nendstream".to_vec(),
        ]
        .concat(),
    ];
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        pdf.extend_from_slice(o);
        pdf.extend_from_slice(b"\nendobj\n");
    }
    let xref = pdf.len();
    pdf.extend_from_slice(b"xref\n0 5\n0000000000 65535 f \n");
    for o in offsets {
        pdf.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(format!("trailer\n<< /Size 5 /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n").as_bytes());
    pdf
}

#[tokio::test]
async fn bombs_are_refused_with_422_never_500() {
    let s = start(FakeEngine::new(), |c| c.raster.limits.max_stream_bytes = 1 << 20);
    let (status, v) = call_json(&s.app, post_raw("/v1/ocr", flate_bomb_pdf(16 << 20))).await;
    assert_error(status, &v, 422, "limit_exceeded");
    assert!(v["error"]["message"].as_str().unwrap().contains("max_stream_bytes"), "{v}");
    // An image header claiming 20000 x 20000 pixels (400 MP, over max_image_pixels).
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png_chunk(&mut png, b"IHDR", &[&20_000u32.to_be_bytes()[..], &20_000u32.to_be_bytes(), &[8, 2, 0, 0, 0]].concat());
    png_chunk(&mut png, b"IDAT", &[0x78, 0x9c, 0, 0, 0, 0]);
    png_chunk(&mut png, b"IEND", &[]);
    let (status, v) = call_json(&s.app, post_raw("/v1/ocr", png)).await;
    assert_error(status, &v, 422, "limit_exceeded");
    assert!(v["error"]["message"].as_str().unwrap().contains("20000x20000"), "{v}");
}

/// An engine that fails every page.
struct FailingEngine;

impl OcrEngine for FailingEngine {
    fn info(&self) -> EngineInfo {
        EngineInfo { model: "failing".into(), architecture: "fake".into(), device: "cpu".into(), dtype: "none".into() }
    }

    fn recognize(&self, _job: &PageJob, _sink: &mut dyn TokenSink) -> Result<PageText, EngineError> {
        Err(EngineError::Model("this page cannot be recognised".into()))
    }
}

#[tokio::test]
async fn a_job_whose_every_page_failed_ends_failed() {
    let s = start_engine(Arc::new(FailingEngine), |_| {});
    let (status, v) = call_json(&s.app, post_raw("/v1/jobs", png(30, 20))).await;
    assert_eq!(status, 202, "{v}");
    let job = wait_final(&s.app, v["id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "failed", "{job}");
    let message = job["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("cannot be recognised"), "{job}");
    // The synchronous endpoint says so too, with the engine's status.
    let (status, v) = call_json(&s.app, post_raw("/v1/ocr", png(30, 20))).await;
    assert_error(status, &v, 500, "model_error");
}

/// `VmRSS` and `VmHWM` (peak) of a process, in MiB.
#[cfg(target_os = "linux")]
fn memory_mib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name}"));
        line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A PNG of `w` x `h` grey pixels whose pixel data stops one row short: a decoder fills
/// almost the whole image buffer before it finds the data missing.
#[cfg(target_os = "linux")]
fn png_missing_last_row(w: u32, h: u32) -> Vec<u8> {
    use flate2::write::ZlibEncoder;
    let mut enc = ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let row = vec![0u8; 1 + 3 * w as usize]; // filter byte + RGB
    for _ in 0..h - 1 {
        enc.write_all(&row).unwrap();
    }
    let idat = enc.finish().unwrap();
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    png_chunk(&mut png, b"IHDR", &ihdr);
    png_chunk(&mut png, b"IDAT", &idat);
    png_chunk(&mut png, b"IEND", &[]);
    png
}

#[cfg(target_os = "linux")]
#[test]
fn huge_images_are_answered_and_their_memory_given_back() {
    let data = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(&["--model", "fake", "--data-dir", data.path().to_str().unwrap()], &[]);
    let pid = server.child.id();

    // A page that fails half-way through decoding (150 MP, 450 MB as RGB) is a 422, and the
    // memory it touched goes back to the system.
    let (status, v) =
        http_json(&server.addr, "POST", "/v1/ocr?format=json", &[], &png_missing_last_row(12_500, 12_000));
    assert_error(axum::http::StatusCode::from_u16(status).unwrap(), &v, 422, "invalid_document");
    let (rss, peak) = memory_mib(pid);
    assert!(peak > 400, "the page went through memory (peak {peak} MiB)");
    assert!(rss < 250, "the server kept {rss} MiB after a failed page (peak {peak} MiB)");

    // 180 MP: more than the 512 MiB the image crate allows by default for its RGB pixels, less
    // than max_image_pixels (200 MP): recognised, not a 500.
    let (w, h) = (15_000u32, 12_000u32);
    let mut upload = Vec::new();
    {
        use image::codecs::png::{CompressionType, FilterType, PngEncoder};
        use image::ImageEncoder;
        let img = image::RgbImage::from_pixel(w, h, image::Rgb([240, 240, 240]));
        PngEncoder::new_with_quality(&mut upload, CompressionType::Default, FilterType::NoFilter)
            .write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
            .unwrap();
    }
    let (status, _, md) = http(&server.addr, "POST", "/v1/ocr?format=md&max_new_tokens=8", &[], &upload);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&md));
    assert!(String::from_utf8_lossy(&md).contains("15000x12000"), "{}", String::from_utf8_lossy(&md));
    let (rss, peak) = memory_mib(pid);
    assert!(peak > 500, "the page went through memory (peak {peak} MiB)");
    assert!(rss < 250, "the server kept {rss} MiB after the request (peak {peak} MiB)");
}
