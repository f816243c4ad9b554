//! HTTP API tests through the router (`tower::ServiceExt::oneshot`) with the fake engine, whose
//! known grounding output lets every field of the results be checked exactly (the same flows
//! over a tiny real checkpoint are in `server_model.rs`).

mod server_support;

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use docseek::engine::FakeEngine;
use serde_json::Value;
use server_support::*;

fn slow(ms: u64) -> FakeEngine {
    FakeEngine { token_delay: Duration::from_millis(ms), script: None }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_ocr_of_an_image_in_json_and_markdown() {
    let s = start(FakeEngine::new(), |_| {});
    let (status, v) = call_json(&s.app, post_multipart("/v1/ocr", &png(120, 80), &[("mode", "tiny")])).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["schema"], "docseek.document/1");
    assert_eq!(v["source"], "doc.png");
    assert_eq!(v["failed_pages"], serde_json::json!([]));
    let page = &v["pages"][0];
    assert_eq!(page["number"], 1);
    assert_eq!(page["pixel_size"], serde_json::json!({ "width": 120, "height": 80 }));
    assert_eq!(page["outcome"], "finished");
    assert!(page["generated_tokens"].as_u64().unwrap() > 5, "{page}");
    let title = &page["blocks"][0];
    assert_eq!((title["kind"].as_str(), title["heading_level"].as_u64()), (Some("title"), Some(1)));
    assert_eq!(title["text"], "Page 120x80");
    // The official int(v / 999 * W) on the grid box [100, 40, 900, 80].
    assert_eq!(title["boxes"][0]["grid"], serde_json::json!([100, 40, 900, 80]));
    assert_eq!(title["boxes"][0]["pixels"], serde_json::json!([12, 3, 108, 6]));
    assert!(page["raw"].as_str().unwrap().starts_with("<|ref|>title<|/ref|>"));
    // The language stage ran: per block, per page and for the document.
    assert_eq!(page["blocks"][1]["language"]["tag"], "eng", "{page}");
    assert_eq!(page["language"]["tag"], "eng");
    assert_eq!(v["languages"][0]["tag"], "eng");
    // Raw body, options in the query, Markdown out.
    let (status, headers, body) = call(&s.app, post_raw("/v1/ocr?format=md&task=markdown", png(64, 32))).await;
    assert_eq!(status, 200);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/markdown"));
    let md = String::from_utf8(body).unwrap();
    assert!(md.starts_with("# Page 64x32\n\n"), "{md}");
    assert!(!md.contains("<|ref|>"), "{md}");
    // Several formats in one answer.
    let (status, v) = call_json(&s.app, post_raw("/v1/ocr?formats=md,json,txt,pdf", png(64, 32))).await;
    assert_eq!(status, 200, "{v}");
    assert!(v["md"].as_str().unwrap().starts_with("# Page 64x32\n\n"), "{v}");
    assert_eq!(v["json"]["pages"][0]["blocks"][0]["text"], "Page 64x32");
    assert!(v["txt"].as_str().unwrap().starts_with("Page 64x32\n"), "{v}");
    use base64::Engine as _;
    let pdf = base64::engine::general_purpose::STANDARD.decode(v["pdf"].as_str().unwrap()).unwrap();
    assert!(pdf_text(&pdf).contains("Page 64x32"));
    let (status, v) = call_json(&s.app, post_raw("/v1/ocr?formats=md,docx", png(64, 32))).await;
    assert_error(status, &v, 400, "bad_request");
    // Synchronous jobs are removed once answered.
    assert!(s.state.runner.store.unfinished_jobs().await.unwrap().is_empty());
    assert_eq!(std::fs::read_dir(s.dir.path().join("uploads")).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_results_in_every_format_from_known_grounding_output() {
    let s = start(slow(2), |_| {});
    let (status, _, body) = call(&s.app, post_multipart("/v1/jobs", &png(100, 50), &[("task", "markdown")])).await;
    assert_eq!(status, 202);
    let accepted: Value = serde_json::from_slice(&body).unwrap();
    let id = accepted["id"].as_str().unwrap().to_string();
    assert_eq!(accepted["links"]["events"], format!("/v1/jobs/{id}/events"));
    // The event stream ends after `done`; it replays anything that happened before we connected.
    let (status, headers, body) = call(&s.app, get(&format!("/v1/jobs/{id}/events"))).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/event-stream");
    let events = sse_events(&String::from_utf8(body).unwrap());
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(names.first(), Some(&"state"), "{names:?}");
    assert_eq!(names.last(), Some(&"done"), "{names:?}");
    assert_eq!(names.iter().filter(|n| **n == "page").count(), 1, "{names:?}");
    let page: Value = serde_json::from_str(&events.iter().find(|(e, _)| e == "page").unwrap().1).unwrap();
    assert_eq!((page["page"]["index"].as_u64(), page["page"]["number"].as_u64()), (Some(0), Some(1)));
    assert_eq!(page["page"]["blocks"][1]["kind"], "text");
    assert!(page["page"]["blocks"][1]["text"].as_str().unwrap().contains("fake engine"));
    let done: Value = serde_json::from_str(&events.last().unwrap().1).unwrap();
    assert_eq!(done["state"], "done");

    let status_v = wait_final(&s.app, &id).await;
    assert_eq!(status_v["pages_done"], 1);
    assert_eq!(status_v["page_count"], 1);
    assert_eq!(status_v["pages"][0]["state"], "done");

    for (format, ct, needle) in [
        ("json", "application/json", "\"docseek.document/1\""),
        ("md", "text/markdown", "# Page 100x50\n\nThe mean brightness"),
        ("html", "text/html", "data-bbox=\"10 6 90 15\" lang=\"eng\" dir=\"ltr\"><p>The mean brightness"),
        ("hocr", "text/vnd.hocr+html", "ocr_page"),
        ("txt", "text/plain", "Page 100x50\n\nThe mean brightness"),
    ] {
        let (status, headers, body) = call(&s.app, get(&format!("/v1/jobs/{id}/result?format={format}"))).await;
        assert_eq!(status, 200, "{format}: {}", String::from_utf8_lossy(&body));
        assert!(headers["content-type"].to_str().unwrap().starts_with(ct), "{format}");
        assert!(String::from_utf8_lossy(&body).contains(needle), "{format}: {}", String::from_utf8_lossy(&body));
    }
    // The searchable PDF: the page image under a text layer that a PDF reader extracts.
    let (status, headers, pdf) = call(&s.app, get(&format!("/v1/jobs/{id}/result?format=pdf"))).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/pdf");
    let text = pdf_text(&pdf);
    assert!(text.contains("Page 100x50") && text.contains("fake engine"), "{text}");
    let (status, headers, body) = call(&s.app, get(&format!("/v1/jobs/{id}/pages/0/image"))).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(image::load_from_memory(&body).unwrap().width(), 100);
    let (status, v) = call_json(&s.app, get(&format!("/v1/jobs/{id}/pages/1/image"))).await;
    assert_error(status, &v, 404, "not_found");
    let (status, v) = call_json(&s.app, get(&format!("/v1/jobs/{id}/result?format=docx"))).await;
    assert_error(status, &v, 400, "bad_request");
    // Deleting a finished job removes it.
    let (status, _, _) = call(&s.app, Request::delete(format!("/v1/jobs/{id}")).body(Body::empty()).unwrap()).await;
    assert_eq!(status, 204);
    let (status, v) = call_json(&s.app, get(&format!("/v1/jobs/{id}"))).await;
    assert_error(status, &v, 404, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_a_running_job() {
    let s = start(slow(200), |_| {});
    let (status, v) = call_json(&s.app, post_raw("/v1/jobs", png(40, 40))).await;
    assert_eq!(status, 202);
    let id = v["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, v) = call_json(&s.app, Request::delete(format!("/v1/jobs/{id}")).body(Body::empty()).unwrap()).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["state"], "cancelled");
    let v = wait_final(&s.app, &id).await;
    assert_eq!(v["state"], "cancelled");
    let (status, v) = call_json(&s.app, get(&format!("/v1/jobs/{id}/result"))).await;
    assert_error(status, &v, 409, "cancelled");
    // Still cancelled after the engine would have finished the page.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, v) = call_json(&s.app, get(&format!("/v1/jobs/{id}"))).await;
    assert_eq!(v["state"], "cancelled");
    let (_, _, body) = call(&s.app, get(&format!("/v1/jobs/{id}/events"))).await;
    let events = sse_events(&String::from_utf8(body).unwrap());
    assert!(events.last().unwrap().1.contains("cancelled"), "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_uploads_get_413_json() {
    let s = start(FakeEngine::new(), |c| c.max_upload_bytes = 10_000);
    let big = vec![0u8; 20_000];
    let (status, v) = call_json(&s.app, post_raw("/v1/ocr", big.clone())).await;
    assert_error(status, &v, 413, "payload_too_large");
    let (status, v) = call_json(&s.app, post_multipart("/v1/jobs", &big, &[])).await;
    assert_error(status, &v, 413, "payload_too_large");
    // Without a Content-Length (chunked), the limit still holds.
    let stream = futures_util::stream::iter((0..40).map(|_| Ok::<_, std::io::Error>(vec![0u8; 1000])));
    let req = Request::post("/v1/ocr").body(Body::from_stream(stream)).unwrap();
    let (status, v) = call_json(&s.app, req).await;
    assert_error(status, &v, 413, "payload_too_large");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_documents_get_415_and_broken_ones_422() {
    let s = start(FakeEngine::new(), |c| c.raster.limits.max_image_pixels = 1_000_000);
    let (status, v) = call_json(&s.app, post_raw("/v1/ocr", b"<html><script>alert(1)</script></html>".to_vec())).await;
    assert_error(status, &v, 415, "unsupported_media_type");
    // Claiming to be a PNG does not make it one.
    let req = Request::post("/v1/ocr").header("content-type", "image/png").body(Body::from("hello")).unwrap();
    let (status, v) = call_json(&s.app, req).await;
    assert_error(status, &v, 415, "unsupported_media_type");
    // A PNG signature followed by garbage.
    let mut broken = png(10, 10);
    broken.truncate(30);
    let (status, v) = call_json(&s.app, post_raw("/v1/ocr", broken)).await;
    assert_error(status, &v, 422, "invalid_document");
    let (status, v) = call_json(&s.app, post_raw("/v1/ocr", Vec::new())).await;
    assert_error(status, &v, 422, "invalid_document");
    // Over the pixel limit.
    let (status, v) = call_json(&s.app, post_raw("/v1/ocr", png(1200, 1000))).await;
    assert_error(status, &v, 422, "limit_exceeded");
    // Bad options.
    let (status, v) = call_json(&s.app, post_raw("/v1/ocr?mdoe=tiny", png(10, 10))).await;
    assert_error(status, &v, 400, "invalid_options");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_is_required_when_set() {
    let s = start(FakeEngine::new(), |c| c.api_key = Some("sekret".into()));
    let (status, v) = call_json(&s.app, post_raw("/v1/ocr", png(10, 10))).await;
    assert_error(status, &v, 401, "unauthorized");
    let req = Request::get("/v1/info").header("authorization", "Bearer wrong").body(Body::empty()).unwrap();
    let (status, v) = call_json(&s.app, req).await;
    assert_error(status, &v, 401, "unauthorized");
    let (status, _, _) = call(&s.app, get("/metrics")).await;
    assert_eq!(status, 401);
    let req = Request::get("/v1/info").header("authorization", "Bearer sekret").body(Body::empty()).unwrap();
    let (status, v) = call_json(&s.app, req).await;
    assert_eq!(status, 200);
    assert_eq!(v["model"], "fake");
    assert_eq!(v["auth"], true);
    // Health and the UI shell stay open.
    assert_eq!(call(&s.app, get("/health")).await.0, 200);
    assert_eq!(call(&s.app, get("/")).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_gets_429_with_retry_after() {
    let s = start(slow(100), |c| {
        c.concurrency = 1;
        c.max_queued_jobs = 1;
    });
    let mut codes = Vec::new();
    let mut retry_after = None;
    for i in 0..4 {
        let (status, headers, body) = call(&s.app, post_raw("/v1/jobs", png(20, 20))).await;
        if status == 429 {
            retry_after = headers.get("retry-after").map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
        }
        codes.push(status.as_u16());
        if i == 0 {
            let id = serde_json::from_slice::<Value>(&body).unwrap()["id"].as_str().unwrap().to_string();
            for _ in 0..100 {
                if call_json(&s.app, get(&format!("/v1/jobs/{id}"))).await.1["state"] == "running" {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    // One runs, one waits, the rest are refused.
    assert_eq!(codes, vec![202, 202, 429, 429]);
    assert!(retry_after.unwrap() >= 1);
    let (status, v) = call_json(&s.app, post_raw("/v1/ocr", png(20, 20))).await;
    assert_error(status, &v, 429, "queue_full");
    let (status, v) = call_json(&s.app, get("/ready")).await;
    assert_eq!((status.as_u16(), v["status"].as_str()), (503, Some("busy")));
    let (_, _, metrics) = call(&s.app, get("/metrics")).await;
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(metrics.contains("docseek_errors_total{code=\"queue_full\"}"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_position_is_reported() {
    let s = start(slow(50), |c| c.concurrency = 1);
    let mut ids = Vec::new();
    for i in 0..3 {
        let (_, v) = call_json(&s.app, post_raw("/v1/jobs", png(20, 20))).await;
        ids.push(v["id"].as_str().unwrap().to_string());
        if i == 0 {
            // Let the first job take the only run slot.
            for _ in 0..100 {
                let (_, v) = call_json(&s.app, get(&format!("/v1/jobs/{}", ids[0]))).await;
                if v["state"] == "running" {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    let (_, last) = call_json(&s.app, get(&format!("/v1/jobs/{}", ids[2]))).await;
    assert_eq!(last["state"], "queued");
    assert_eq!(last["queue_position"], 2);
    for id in &ids {
        assert_eq!(wait_final(&s.app, id).await["state"], "done");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_openapi_info_and_errors() {
    let s = start(FakeEngine::new(), |_| {});
    let (status, _) = call_json(&s.app, post_raw("/v1/ocr", png(16, 16))).await;
    assert_eq!(status, 200);
    let (status, headers, body) = call(&s.app, get("/metrics")).await;
    assert_eq!(status, 200);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = String::from_utf8(body).unwrap();
    for needle in [
        "docseek_queue_depth ",
        "docseek_pages_total ",
        "docseek_tokens_per_second ",
        "docseek_page_latency_seconds_bucket{le=\"0.5\"}",
        "docseek_batch_size_pages_count",
    ] {
        assert!(text.contains(needle), "missing {needle}");
    }
    let (_, api) = call_json(&s.app, get("/openapi.json")).await;
    assert_eq!(api["openapi"], "3.1.0");
    for path in [
        "/v1/ocr",
        "/v1/jobs",
        "/v1/jobs/{id}",
        "/v1/jobs/{id}/events",
        "/v1/jobs/{id}/result",
        "/v1/jobs/{id}/pages/{index}/image",
        "/v1/chat/completions",
        "/v1/models",
        "/v1/info",
        "/health",
        "/ready",
        "/metrics",
    ] {
        assert!(api["paths"][path].is_object(), "{path} undocumented");
    }
    let (status, v) = call_json(&s.app, get("/v1/nope")).await;
    assert_error(status, &v, 404, "not_found");
    let (status, v) = call_json(&s.app, get("/v1/jobs/..%2F..%2Fetc")).await;
    assert_error(status, &v, 404, "not_found");
    // Security headers on every response.
    let (_, headers, _) = call(&s.app, get("/")).await;
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-eval"), "{csp}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers.get("access-control-allow-origin").is_none());
}

fn data_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn chat_request(stream: bool, prompt: &str) -> Request<Body> {
    let body = serde_json::json!({
        "model": "fake",
        "stream": stream,
        "messages": [{ "role": "user", "content": [
            { "type": "image_url", "image_url": { "url": data_url(&png(30, 20)) } },
            { "type": "text", "text": prompt }
        ]}]
    });
    Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_chat_completions_plain_and_streamed() {
    let s = start(FakeEngine::new(), |_| {});
    let (status, v) =
        call_json(&s.app, chat_request(false, "<image>\n<|grounding|>Convert the document to markdown.")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "chat.completion");
    let content = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(content.contains("<|ref|>title<|/ref|>") && content.contains("# Page 30x20"), "{content}");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() > 3);
    // Free OCR maps to the plain task.
    let (_, v) = call_json(&s.app, chat_request(false, "Free OCR.")).await;
    assert_eq!(v["choices"][0]["message"]["content"], "Page 30x20, mean brightness 86.");

    let (status, headers, body) = call(&s.app, chat_request(true, "<image>\nFree OCR.")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/event-stream");
    let events = sse_events(&String::from_utf8(body).unwrap());
    assert_eq!(events.last().unwrap().1, "[DONE]");
    let mut text = String::new();
    for (_, data) in &events[..events.len() - 1] {
        let chunk: Value = serde_json::from_str(data).unwrap();
        assert_eq!(chunk["object"], "chat.completion.chunk");
        text.push_str(chunk["choices"][0]["delta"]["content"].as_str().unwrap_or(""));
    }
    assert_eq!(text, "Page 30x20, mean brightness 86.");
    assert!(events.len() > 4, "not streamed token by token: {events:?}");

    let (status, v) = call_json(&s.app, get("/v1/models")).await;
    assert_eq!(status, 200);
    assert_eq!(v["data"][0]["id"], "fake");
    let bad = serde_json::json!({ "messages": [{ "role": "user", "content": [{ "type": "image_url", "image_url": { "url": "http://example.com/a.png" } }] }] });
    let req = Request::post("/v1/chat/completions").body(Body::from(bad.to_string())).unwrap();
    let (status, v) = call_json(&s.app, req).await;
    assert_error(status, &v, 400, "bad_request");
}

const SAMPLE_PDF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/en_tracemonkey_p1.pdf");
const SAMPLE_PDF_3_PAGES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/en_tracemonkey_p1-3.pdf");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_ocr_of_a_sample_pdf_has_boxes_in_points() {
    let s = start(FakeEngine::new(), |_| {});
    let pdf = std::fs::read(SAMPLE_PDF).unwrap();
    let (status, v) = call_json(&s.app, post_multipart("/v1/ocr?dpi=72", &pdf, &[])).await;
    assert_eq!(status, 200, "{v}");
    let pages = v["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 1);
    // US Letter at 72 dpi: 612 x 792 points = pixels.
    assert_eq!(pages[0]["pixel_size"], serde_json::json!({ "width": 612, "height": 792 }));
    assert_eq!(pages[0]["point_size"], serde_json::json!({ "width": 612.0, "height": 792.0 }));
    assert_eq!(pages[0]["dpi"], 72.0);
    assert_eq!(pages[0]["blocks"][0]["text"], "Page 612x792");
    // Boxes in PDF points of the original page.
    assert_eq!(pages[0]["blocks"][0]["boxes"][0]["points"][2], 551.35);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_page_pdf_job_with_page_selection_and_progress() {
    let s = start(FakeEngine { token_delay: Duration::from_millis(1), script: None }, |_| {});
    let pdf = std::fs::read(SAMPLE_PDF_3_PAGES).unwrap();
    let (status, v) = call_json(&s.app, post_multipart("/v1/jobs", &pdf, &[("dpi", "50"), ("pages", "1,3")])).await;
    assert_eq!(status, 202, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let (_, _, body) = call(&s.app, get(&format!("/v1/jobs/{id}/events"))).await;
    let events = sse_events(&String::from_utf8(body).unwrap());
    let pages: Vec<Value> =
        events.iter().filter(|(e, _)| e == "page").map(|(_, d)| serde_json::from_str(d).unwrap()).collect();
    assert_eq!(pages.len(), 2);
    let mut numbers: Vec<u64> = pages.iter().map(|p| p["page"]["number"].as_u64().unwrap()).collect();
    numbers.sort();
    assert_eq!(numbers, vec![1, 3]);
    assert!(events.iter().any(|(e, d)| e == "pages" && d.contains("\"count\":2")), "{events:?}");
    let v = wait_final(&s.app, &id).await;
    assert_eq!((v["state"].as_str(), v["pages_done"].as_u64()), (Some("done"), Some(2)));
    let (_, _, md) = call(&s.app, get(&format!("/v1/jobs/{id}/result?format=md"))).await;
    assert_eq!(String::from_utf8(md).unwrap().matches("# Page").count(), 2);
    let (status, _, png) = call(&s.app, get(&format!("/v1/jobs/{id}/pages/1/image"))).await;
    assert_eq!(status, 200);
    assert!(image::load_from_memory(&png).unwrap().height() > 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_and_encrypted_looking_pdfs_fail_cleanly() {
    let s = start(FakeEngine::new(), |_| {});
    let (status, v) = call_json(&s.app, post_raw("/v1/ocr", b"%PDF-1.7\n1 0 obj garbage\n%%EOF".to_vec())).await;
    assert_error(status, &v, 422, "invalid_document");
    // The server is still fine afterwards.
    let pdf = std::fs::read(SAMPLE_PDF).unwrap();
    let (status, _) = call_json(&s.app, post_raw("/v1/ocr?dpi=36", pdf)).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_is_called_on_completion_for_allowed_hosts_only() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let hook = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_addr = hook.local_addr().unwrap().to_string();
    let allowed = hook_addr.clone();
    let s = start(FakeEngine::new(), move |c| c.webhook_hosts = vec![allowed]);
    let (status, v) =
        call_json(&s.app, post_multipart("/v1/jobs", &png(20, 20), &[("webhook", "http://evil.example/hook")])).await;
    assert_error(status, &v, 400, "bad_request");
    let (status, v) = call_json(
        &s.app,
        post_multipart("/v1/jobs", &png(20, 20), &[("webhook", &format!("http://{hook_addr}/done?x=1"))]),
    )
    .await;
    assert_eq!(status, 202, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let (mut conn, _) =
        tokio::time::timeout(Duration::from_secs(20), hook.accept()).await.expect("webhook never called").unwrap();
    let mut buf = vec![0u8; 8192];
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("\"state\"") {
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    conn.write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n").await.unwrap();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("POST /done?x=1 HTTP/1.1"), "{text}");
    let body: Value = serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["state"], "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figures_are_cropped_linked_and_served() {
    let script = "<|ref|>image<|/ref|><|det|>[[0, 0, 499, 499]]<|/det|>\n\n\
                  <|ref|>image_caption<|/ref|><|det|>[[0, 520, 499, 560]]<|/det|>\nFigure 1: a gradient\n";
    let s = start(FakeEngine { token_delay: Duration::ZERO, script: Some(script.into()) }, |_| {});
    let (status, v) = call_json(&s.app, post_raw("/v1/jobs", png(200, 100))).await;
    assert_eq!(status, 202, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(wait_final(&s.app, &id).await["state"], "done");
    let (_, _, md) = call(&s.app, get(&format!("/v1/jobs/{id}/result?format=md"))).await;
    let md = String::from_utf8(md).unwrap();
    assert!(md.starts_with("![Figure 1: a gradient](figures/page-1-fig-1.png)"), "{md}");
    let (_, v) = call_json(&s.app, get(&format!("/v1/jobs/{id}/result"))).await;
    assert_eq!(v["pages"][0]["blocks"][0]["figure"], "figures/page-1-fig-1.png");
    // The link resolves against the result URL to the figure route.
    let (status, headers, body) = call(&s.app, get(&format!("/v1/jobs/{id}/figures/page-1-fig-1.png"))).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "image/png");
    let crop = image::load_from_memory(&body).unwrap().to_rgb8();
    // int(499 / 999 * 200) = 99, int(499 / 999 * 100) = 49: the top-left of the gradient page.
    assert_eq!(crop.dimensions(), (99, 49));
    assert_eq!(crop.get_pixel(10, 10).0, [70, 30, 128]);
    for missing in ["page-1-fig-2.png", "page-2-fig-1.png", "..%2Fdocseek.db", "page-1-fig-1.jpg"] {
        let (status, v) = call_json(&s.app, get(&format!("/v1/jobs/{id}/figures/{missing}"))).await;
        assert_error(status, &v, 404, "not_found");
    }
    // A synchronous answer crops nothing (its job is gone once answered): no dangling links.
    let (status, _, md) = call(&s.app, post_raw("/v1/ocr?format=md", png(200, 100))).await;
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8(md).unwrap(), "Figure 1: a gradient\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_headers_hidden_on_request_and_kept_flagged_in_json() {
    let script = "<|ref|>header<|/ref|><|det|>[[100, 10, 900, 30]]<|/det|>\nProceedings of Nothing 2009\n\n\
                  <|ref|>text<|/ref|><|det|>[[100, 200, 900, 400]]<|/det|>\nBody text of the page.\n";
    let s = start(FakeEngine { token_delay: Duration::ZERO, script: Some(script.into()) }, |_| {});
    let pdf = std::fs::read(SAMPLE_PDF_3_PAGES).unwrap();
    let (status, v) = call_json(&s.app, post_multipart("/v1/jobs", &pdf, &[("dpi", "36")])).await;
    assert_eq!(status, 202, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(wait_final(&s.app, &id).await["state"], "done");
    let md = |q: &'static str| {
        let (app, id) = (s.app.clone(), id.clone());
        async move { String::from_utf8(call(&app, get(&format!("/v1/jobs/{id}/result?format=md{q}"))).await.2).unwrap() }
    };
    assert_eq!(md("").await.matches("Proceedings of Nothing").count(), 3);
    let hidden = md("&hide_headers=true").await;
    assert!(!hidden.contains("Proceedings") && hidden.matches("Body text").count() == 3, "{hidden}");
    let (_, v) = call_json(&s.app, get(&format!("/v1/jobs/{id}/result?hide_headers=true"))).await;
    let flags = &v["pages"][1]["blocks"][0]["flags"];
    assert_eq!((flags["hidden"].as_bool(), flags["running"].as_str()), (Some(true), Some("header")), "{v}");
    let (status, v) = call_json(&s.app, get(&format!("/v1/jobs/{id}/result?hide_headers=maybe"))).await;
    assert_error(status, &v, 400, "bad_request");
    // A job renders when its result is fetched: result fields at submission are refused, not ignored.
    let (status, v) = call_json(&s.app, post_multipart("/v1/jobs", &png(20, 20), &[("format", "md")])).await;
    assert_error(status, &v, 400, "bad_request");
    assert!(v["error"]["message"].as_str().unwrap().contains("result?format="), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn language_hints_reach_results_and_live_pages() {
    // UDHR article 1 reads the same in Croatian and Bosnian: the request's hint decides.
    let script = "<|ref|>text<|/ref|><|det|>[[100, 100, 900, 500]]<|/det|>\nSva ljudska bića rađaju se slobodna i jednaka u \
                  dostojanstvu i pravima. Ona su obdarena razumom i sviješću i treba da jedno prema drugome postupaju u duhu bratstva.\n";
    let s = start(FakeEngine { token_delay: Duration::ZERO, script: Some(script.into()) }, |_| {});
    for hint in ["hrv", "bos"] {
        let (status, v) = call_json(&s.app, post_raw(&format!("/v1/ocr?lang={hint}"), png(30, 20))).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["pages"][0]["blocks"][0]["language"]["tag"], hint, "{v}");
        let (_, v) = call_json(&s.app, post_multipart("/v1/jobs", &png(30, 20), &[("lang", hint)])).await;
        let id = v["id"].as_str().unwrap().to_string();
        let (_, _, body) = call(&s.app, get(&format!("/v1/jobs/{id}/events"))).await;
        let events = sse_events(&String::from_utf8(body).unwrap());
        let page: Value = serde_json::from_str(&events.iter().find(|(e, _)| e == "page").unwrap().1).unwrap();
        assert_eq!(page["page"]["blocks"][0]["language"]["tag"], hint);
        let (_, v) = call_json(&s.app, get(&format!("/v1/jobs/{id}/result"))).await;
        assert_eq!(v["languages"][0]["tag"], hint);
    }
}
