//! Durability: a `docseek serve` process killed with SIGKILL in the middle of a multi-page job
//! is restarted on the same data directory, and every accepted job completes with every page;
//! finished pages are not recognised again.

mod server_support;

use server_support::*;

const SAMPLE_PDF_3_PAGES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/en_tracemonkey_p1-3.pdf");

fn metric(addr: &str, name: &str) -> f64 {
    let (_, _, body) = http(addr, "GET", "/metrics", &[], b"");
    let text = String::from_utf8(body).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name}"))
        .parse()
        .unwrap()
}

#[test]
fn jobs_resume_after_kill_9() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    // One page at a time, about a second per page.
    let args = ["--model", "fake", "--data-dir", dir, "--mode", "tiny", "--max-batch", "1", "--concurrency", "1"];
    let slow = [("DOCSEEK_FAKE_TOKEN_DELAY_MS", "40")];
    let server = ServeProcess::start(&args, &slow);
    let pdf = std::fs::read(SAMPLE_PDF_3_PAGES).unwrap();
    let (ct, body) = multipart(&pdf, "three.pdf", &[("dpi", "36")]);
    let (status, first) = http_json(&server.addr, "POST", "/v1/jobs", &[("content-type", &ct)], &body);
    assert_eq!(status, 202, "{first}");
    let first = first["id"].as_str().unwrap().to_string();
    // A second job waits in the queue behind the first.
    let (status, second) = http_json(&server.addr, "POST", "/v1/jobs?dpi=36", &[], &pdf);
    assert_eq!(status, 202);
    let second = second["id"].as_str().unwrap().to_string();
    let mid = poll_job(&server.addr, &first, "one page done", |v| v["pages_done"].as_u64() >= Some(1));
    assert_eq!(mid["state"], "running", "{mid}");
    assert!(mid["pages_done"].as_u64().unwrap() < 3, "too late to test resumption: {mid}");
    let done_before = mid["pages_done"].as_u64().unwrap();
    server.kill9();

    let server = ServeProcess::start(&args, &[("DOCSEEK_FAKE_TOKEN_DELAY_MS", "1")]);
    for id in [&first, &second] {
        let v = poll_job(&server.addr, id, "final", |v| {
            ["done", "failed", "cancelled"].contains(&v["state"].as_str().unwrap_or(""))
        });
        assert_eq!(v["state"], "done", "{v}");
        assert_eq!(v["pages_done"], 3, "{v}");
        let (status, result) = http_json(&server.addr, "GET", &format!("/v1/jobs/{id}/result"), &[], b"");
        assert_eq!(status, 200);
        let numbers: Vec<u64> =
            result["pages"].as_array().unwrap().iter().map(|p| p["number"].as_u64().unwrap()).collect();
        assert_eq!(numbers, vec![1, 2, 3]);
        assert!(result["pages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["blocks"][0]["text"].as_str().unwrap().starts_with("Page ")));
    }
    // The restarted process recognised only what was missing.
    assert_eq!(metric(&server.addr, "docseek_pages_total"), (6 - done_before) as f64);
}
