//! The server over a real socket (port 0): `server::run` in-process with graceful shutdown,
//! and the `docseek serve` binary with its flags and environment.

mod server_support;

use docseek::engine::FakeEngine;
use server_support::*;

const SAMPLE_PDF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/en_tracemonkey_p1.pdf");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_server_on_port_0_with_graceful_shutdown() {
    let s = start(FakeEngine::new(), |_| {});
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(docseek::server::run(listener, s.state.clone(), async move {
        let _ = stopped.await;
    }));
    let a = addr.clone();
    tokio::task::spawn_blocking(move || {
        let pdf = std::fs::read(SAMPLE_PDF).unwrap();
        let (status, v) = http_json(&a, "POST", "/v1/ocr?dpi=72", &[("content-type", "application/pdf")], &pdf);
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["pages"][0]["pixel_size"]["width"], 612);
        // A job, followed over SSE on the socket.
        let (status, job) = http_json(&a, "POST", "/v1/jobs", &[], &png(50, 40));
        assert_eq!(status, 202);
        let id = job["id"].as_str().unwrap();
        let (status, headers, body) = http(&a, "GET", &format!("/v1/jobs/{id}/events"), &[], b"");
        assert_eq!(status, 200);
        assert!(headers.iter().any(|(k, v)| k == "content-type" && v == "text/event-stream"));
        let events = sse_events(&String::from_utf8(body).unwrap());
        assert_eq!(events.last().unwrap().0, "done");
        let (status, _, md) = http(&a, "GET", &format!("/v1/jobs/{id}/result?format=md&download=true"), &[], b"");
        assert_eq!(status, 200);
        assert!(String::from_utf8(md).unwrap().contains("# Page 50x40"));
    })
    .await
    .unwrap();
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    assert!(std::net::TcpStream::connect(&addr).is_err(), "still listening after shutdown");
}

#[test]
fn the_binary_serves_with_flags_and_env() {
    let data = tempfile::tempdir().unwrap();
    let script = data.path().join("script.txt");
    std::fs::write(&script, "<|ref|>text<|/ref|><|det|>[[1, 2, 3, 4]]<|/det|>\nscripted words").unwrap();
    let server = ServeProcess::start(
        &["--model", "fake", "--data-dir", data.path().join("d").to_str().unwrap(), "--max-upload-mb", "1"],
        &[("DOCSEEK_API_KEY", "k1"), ("DOCSEEK_FAKE_SCRIPT_FILE", script.to_str().unwrap())],
    );
    let auth = [("authorization", "Bearer k1")];
    let (status, v) = http_json(&server.addr, "GET", "/v1/info", &[], b"");
    assert_eq!((status, v["error"]["code"].as_str()), (401, Some("unauthorized")));
    let (status, v) = http_json(&server.addr, "GET", "/v1/info", &auth, b"");
    assert_eq!(status, 200);
    assert_eq!(v["limits"]["max_upload_bytes"], 1 << 20);
    let (status, v) = http_json(&server.addr, "POST", "/v1/ocr", &auth, &vec![b'x'; 2 << 20]);
    assert_eq!((status, v["error"]["code"].as_str()), (413, Some("payload_too_large")));
    let (status, _, md) = http(&server.addr, "POST", "/v1/ocr?format=md", &auth, &png(20, 20));
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8(md).unwrap(), "scripted words\n");
    let (status, v) = http_json(&server.addr, "GET", "/health", &[], b"");
    assert_eq!((status, v["status"].as_str()), (200, Some("ok")));
}
