//! The service over the real engine: a tiny random DeepSeek-OCR checkpoint (`docseek dev
//! tiny-checkpoint`, vision tower included) loaded by `engine::load`, on the CPU. Through the
//! router (`oneshot`): synchronous OCR of a sample PDF, and a job followed over SSE through to
//! its result in every format, and the OpenAI-compatible endpoint streamed and not; over a
//! real socket: `docseek serve --model DIR`.
//!
//! The model is random, so its text is not checked against a reference; what is checked is
//! that every stage ran on real output (tokens generated within the budget, page sizes, the
//! raw text carried unchanged from the live events to the stored result, every format rendered
//! from that same document, the searchable PDF readable with the right pages).

mod server_support;

use docseek::doc::{render, Document, Format, RenderOptions};
use serde_json::Value;
use server_support::*;

const SAMPLE_PDF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/en_tracemonkey_p1.pdf");
const SAMPLE_PDF_3_PAGES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/en_tracemonkey_p1-3.pdf");
const OUTCOMES: [&str; 3] = ["finished", "length", "repetition"];

/// Checks one recognised page of the tiny model's output.
fn check_page(page: &Value, number: u64) {
    assert_eq!(page["number"], number, "{page}");
    assert!(OUTCOMES.contains(&page["outcome"].as_str().unwrap()), "{page}");
    let generated = page["generated_tokens"].as_u64().unwrap();
    let budget: u64 = TINY_MAX_NEW_TOKENS.parse().unwrap();
    assert!((1..=budget).contains(&generated), "generated {generated} tokens: {page}");
    // BOS + image slots + prompt text: more than the 64 slots of the tiny mode's view.
    assert!(page["prompt_tokens"].as_u64().unwrap() > 64, "{page}");
    assert!(page["timings"]["encode_ms"].as_f64().unwrap() > 0.0, "{page}");
    assert!(page["blocks"].is_array());
}

/// The JSON result as the document model reads it back, and the Markdown and text it renders.
fn local_renderings(json: &Value) -> (String, String) {
    let doc: Document = serde_json::from_value(json.clone()).expect("the JSON result is a docseek document");
    let opts = RenderOptions { figure_dir: "figures".into(), ..RenderOptions::default() };
    (render(&doc, Format::Markdown, &opts).unwrap().text(), render(&doc, Format::Text, &opts).unwrap().text())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_ocr_of_a_sample_pdf_with_a_tiny_checkpoint() {
    let s = start_engine(tiny_engine(), |_| {});
    let (status, info) = call_json(&s.app, get("/v1/info")).await;
    assert_eq!(status, 200);
    assert_eq!(info["model"].as_str(), tiny_checkpoint().to_str(), "{info}");
    assert_ne!(info["architecture"], "fake");

    let pdf = std::fs::read(SAMPLE_PDF).unwrap();
    let query = format!("/v1/ocr?dpi=72&mode=tiny&max_new_tokens={TINY_MAX_NEW_TOKENS}");
    let (status, v) = call_json(&s.app, post_multipart(&query, &pdf, &[])).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["schema"], "docseek.document/1");
    assert_eq!(v["failed_pages"], serde_json::json!([]));
    let pages = v["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 1);
    check_page(&pages[0], 1);
    assert_eq!(pages[0]["pixel_size"], serde_json::json!({ "width": 612, "height": 792 }));
    assert_eq!(pages[0]["point_size"], serde_json::json!({ "width": 612.0, "height": 792.0 }));

    // Greedy decoding is deterministic: the same page as Markdown is the JSON's rendering.
    let (status, headers, md) = call(&s.app, post_raw(&format!("{query}&format=md"), pdf)).await;
    assert_eq!(status, 200);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/markdown"));
    assert_eq!(String::from_utf8(md).unwrap(), local_renderings(&v).0);
    assert!(s.state.runner.store.unfinished_jobs().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_with_events_through_to_every_format_with_a_tiny_checkpoint() {
    let s = start_engine(tiny_engine(), |_| {});
    let pdf = std::fs::read(SAMPLE_PDF_3_PAGES).unwrap();
    let fields = [("dpi", "50"), ("pages", "1,3"), ("mode", "tiny"), ("max_new_tokens", TINY_MAX_NEW_TOKENS)];
    let (status, _, body) = call(&s.app, post_multipart("/v1/jobs", &pdf, &fields)).await;
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
    let id = serde_json::from_slice::<Value>(&body).unwrap()["id"].as_str().unwrap().to_string();

    // Live events, page by page, to the end.
    let (status, _, body) = call(&s.app, get(&format!("/v1/jobs/{id}/events"))).await;
    assert_eq!(status, 200);
    let events = sse_events(&String::from_utf8(body).unwrap());
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(names.first(), Some(&"state"), "{names:?}");
    assert!(events.iter().any(|(e, d)| e == "pages" && d.contains("\"count\":2")), "{events:?}");
    let done: Value = serde_json::from_str(&events.last().unwrap().1).unwrap();
    assert_eq!((names.last(), done["state"].as_str()), (Some(&"done"), Some("done")), "{events:?}");
    let mut live: Vec<Value> = events
        .iter()
        .filter(|(e, _)| e == "page")
        .map(|(_, d)| serde_json::from_str::<Value>(d).unwrap()["page"].clone())
        .collect();
    live.sort_by_key(|p| p["index"].as_u64());
    assert_eq!(live.len(), 2, "{names:?}");

    // JSON: the same pages, with the raw text the events carried.
    let (status, json) = call_json(&s.app, get(&format!("/v1/jobs/{id}/result?format=json"))).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["job"]["page_count"], 2);
    let pages = json["pages"].as_array().unwrap();
    for ((page, event), number) in pages.iter().zip(&live).zip([1, 3]) {
        check_page(page, number);
        assert_eq!(page["raw"], event["raw"]);
        assert_eq!(page["blocks"], event["blocks"], "the live page and the stored one differ");
    }

    // Every other format, rendered from that document.
    let (md, txt) = local_renderings(&json);
    let fetch = |format: &'static str| {
        let app = s.app.clone();
        let id = id.clone();
        async move {
            let (status, headers, body) = call(&app, get(&format!("/v1/jobs/{id}/result?format={format}"))).await;
            assert_eq!(status, 200, "{format}: {}", String::from_utf8_lossy(&body));
            (headers["content-type"].to_str().unwrap().to_string(), body)
        }
    };
    let (ct, body) = fetch("md").await;
    assert!(ct.starts_with("text/markdown"));
    assert_eq!(String::from_utf8(body).unwrap(), md);
    let (ct, body) = fetch("txt").await;
    assert!(ct.starts_with("text/plain"));
    assert_eq!(String::from_utf8(body).unwrap(), txt);
    let (ct, body) = fetch("html").await;
    assert!(ct.starts_with("text/html"));
    let html = String::from_utf8(body).unwrap();
    assert!(
        html.contains("id=\"page-1\"") && html.contains("id=\"page-3\"") && !html.contains("id=\"page-2\""),
        "{html}"
    );
    let (ct, body) = fetch("hocr").await;
    assert!(ct.starts_with("text/vnd.hocr+html"));
    let hocr = String::from_utf8(body).unwrap();
    assert!(hocr.contains("id=\"page_1\"") && hocr.contains("id=\"page_3\""), "{hocr}");
    assert_eq!(hocr.matches("class=\"ocr_page\"").count(), 2, "{hocr}");
    let (ct, body) = fetch("pdf").await;
    assert_eq!(ct, "application/pdf");
    let pdf_pages = pdf_pages(&body);
    assert_eq!(pdf_pages.len(), 2);
    for ((w, h, _), page) in pdf_pages.iter().zip(pages) {
        assert!((w - page["point_size"]["width"].as_f64().unwrap() as f32).abs() < 0.5, "{w}");
        assert!((h - page["point_size"]["height"].as_f64().unwrap() as f32).abs() < 0.5, "{h}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_chat_completions_over_a_tiny_checkpoint() {
    use base64::Engine as _;
    let s = start_engine(tiny_engine(), |_| {});
    let url = format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(png(96, 64)));
    let request = |stream: bool| {
        let body = serde_json::json!({
            "model": "docseek", "stream": stream, "max_tokens": 8,
            "messages": [{ "role": "user", "content": [
                { "type": "image_url", "image_url": { "url": url } },
                { "type": "text", "text": "<image>\nFree OCR." }
            ]}]
        });
        axum::http::Request::post("/v1/chat/completions")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_string()))
            .unwrap()
    };
    let (status, v) = call_json(&s.app, request(false)).await;
    assert_eq!(status, 200, "{v}");
    let completion = v["usage"]["completion_tokens"].as_u64().unwrap();
    assert!((1..=8).contains(&completion), "{v}");
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 64, "{v}");
    let content = v["choices"][0]["message"]["content"].as_str().unwrap().to_string();
    // Streamed token by token, the same greedy text.
    let (status, _, body) = call(&s.app, request(true)).await;
    assert_eq!(status, 200);
    let events = sse_events(&String::from_utf8(body).unwrap());
    assert_eq!(events.last().unwrap().1, "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1].iter().map(|(_, d)| serde_json::from_str(d).unwrap()).collect();
    let streamed: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(streamed, content);
    let pieces =
        chunks.iter().filter(|c| c["choices"][0]["delta"]["content"].as_str().is_some_and(|t| !t.is_empty())).count();
    assert!(pieces >= 2, "not streamed token by token: {chunks:?}");
    assert!(chunks.last().unwrap()["choices"][0]["finish_reason"].is_string());
}

#[test]
fn the_binary_serves_a_tiny_checkpoint_over_a_socket() {
    let data = tempfile::tempdir().unwrap();
    let model = tiny_checkpoint().to_str().unwrap().to_string();
    let args = [
        "--model",
        &model,
        "--mode",
        "tiny",
        "--max-new-tokens",
        TINY_MAX_NEW_TOKENS,
        "--data-dir",
        data.path().to_str().unwrap(),
    ];
    let server = ServeProcess::start(&args, &[]);
    let (status, info) = http_json(&server.addr, "GET", "/v1/info", &[], b"");
    assert_eq!((status, info["model"].as_str()), (200, Some(model.as_str())));
    let pdf = std::fs::read(SAMPLE_PDF).unwrap();
    let (status, v) = http_json(&server.addr, "POST", "/v1/ocr?dpi=72", &[("content-type", "application/pdf")], &pdf);
    assert_eq!(status, 200, "{v}");
    check_page(&v["pages"][0], 1);
}
