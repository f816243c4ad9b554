//! Bounded load test on loopback (run by hand: `cargo test --release --test server_load -- --ignored --nocapture`).
//! Starts the real `docseek serve` (fake engine with a per-token delay), fires N concurrent
//! clients doing synchronous OCR and async jobs, and checks: no errors other than deliberate
//! `429`s, every accepted request answered, and the server's resident memory stays bounded.
//! Prints throughput, latency percentiles, 429 counts and peak RSS.
//! Knobs: LOAD_CLIENTS (default 32), LOAD_REQUESTS per client (default 8).

mod server_support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use server_support::*;

/// The server may not grow past this resident size under the load.
const MAX_RSS_MIB: u64 = 1024;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
#[ignore = "load test: run by hand with --ignored --nocapture"]
fn concurrent_uploads_stay_correct_and_bounded() {
    let clients = env_or("LOAD_CLIENTS", 32);
    let per_client = env_or("LOAD_REQUESTS", 8);
    let data = tempfile::tempdir().unwrap();
    let server = ServeProcess::start(
        &[
            "--model",
            "fake",
            "--data-dir",
            data.path().to_str().unwrap(),
            "--mode",
            "tiny",
            "--concurrency",
            "4",
            "--max-queue",
            "8",
            "--max-batch",
            "8",
        ],
        &[("DOCSEEK_FAKE_TOKEN_DELAY_MS", "1")],
    );
    let pid = server.child.id();
    let addr = server.addr.clone();
    let peak = Arc::new(Mutex::new(rss_kib(pid)));
    let idle_rss = *peak.lock().unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = rss_kib(pid);
                let mut p = peak.lock().unwrap();
                *p = (*p).max(r);
                drop(p);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let (w, h) = (env_or("LOAD_IMAGE_W", 800) as u32, env_or("LOAD_IMAGE_H", 600) as u32);
    let image = Arc::new(png(w, h));
    // Reference measured in the same run: the fake engine alone on this page (no HTTP, no queue).
    let floor = {
        use docseek::engine::{FakeEngine, NoSink, OcrEngine, PageJob};
        let engine = FakeEngine { token_delay: Duration::from_millis(1), script: None };
        let job = PageJob {
            image: Arc::new(image::load_from_memory(&image).unwrap().to_rgb8()),
            mode: docseek::Mode::Tiny,
            task: docseek::model::Task::Markdown,
            locate: None,
            generation: Default::default(),
        };
        let n = 20;
        let t = Instant::now();
        for _ in 0..n {
            engine.recognize(&job, &mut NoSink).unwrap();
        }
        n as f64 / t.elapsed().as_secs_f64()
    };
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let statuses = Arc::new(Mutex::new(std::collections::BTreeMap::<u16, usize>::new()));
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|c| {
            let (addr, image, latencies, statuses) = (addr.clone(), image.clone(), latencies.clone(), statuses.clone());
            std::thread::spawn(move || {
                let mut done = 0;
                while done < per_client {
                    let t = Instant::now();
                    let (status, headers, body) = if c % 2 == 0 {
                        http(&addr, "POST", "/v1/ocr?format=md", &[], &image)
                    } else {
                        // Async job, followed to completion over SSE.
                        let (s, h, b) = http(&addr, "POST", "/v1/jobs", &[], &image);
                        if s == 202 {
                            let id = serde_json::from_slice::<serde_json::Value>(&b).unwrap()["id"]
                                .as_str()
                                .unwrap()
                                .to_string();
                            let (s2, _, events) = http(&addr, "GET", &format!("/v1/jobs/{id}/events"), &[], b"");
                            assert_eq!(s2, 200);
                            assert!(String::from_utf8_lossy(&events).contains("\"state\":\"done\""));
                            http(&addr, "GET", &format!("/v1/jobs/{id}/result?format=md"), &[], b"")
                        } else {
                            (s, h, b)
                        }
                    };
                    *statuses.lock().unwrap().entry(status).or_default() += 1;
                    match status {
                        200 => {
                            assert!(String::from_utf8_lossy(&body).contains(&format!("# Page {w}x{h}")));
                            latencies.lock().unwrap().push(t.elapsed());
                            done += 1;
                        }
                        429 => {
                            let wait = headers
                                .iter()
                                .find(|(k, _)| k == "retry-after")
                                .and_then(|(_, v)| v.parse::<u64>().ok())
                                .unwrap_or(1);
                            assert!(wait >= 1);
                            // Back off (shortened: the fake engine is fast), then retry.
                            std::thread::sleep(Duration::from_millis(100 * wait.min(5)));
                        }
                        other => panic!("unexpected status {other}: {}", String::from_utf8_lossy(&body)),
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let elapsed = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.join().unwrap();
    let (_, _, metrics) = http(&addr, "GET", "/metrics", &[], b"");
    let metrics = String::from_utf8(metrics).unwrap();
    let mut lat = latencies.lock().unwrap().clone();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize].as_secs_f64() * 1000.0;
    let total = clients * per_client;
    let peak_mib = *peak.lock().unwrap() / 1024;
    println!(
        "load: {clients} clients x {per_client} requests = {total} pages in {:.2} s -> {:.1} pages/s",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    println!(
        "engine alone (same build, same page): {floor:.1} pages/s -> server reaches {:.0}% of it",
        100.0 * total as f64 / elapsed.as_secs_f64() / floor
    );
    println!("latency ms: p50 {:.0}, p90 {:.0}, p99 {:.0}, max {:.0}", pct(0.5), pct(0.9), pct(0.99), pct(1.0));
    println!("statuses: {:?}", statuses.lock().unwrap());
    println!("server RSS: idle {} MiB, peak {} MiB", idle_rss / 1024, peak_mib);
    for line in metrics.lines().filter(|l| {
        l.starts_with("docseek_batch_size_pages_")
            || l.starts_with("docseek_pages_total")
            || l.starts_with("docseek_errors_total{")
    }) {
        println!("  {line}");
    }
    assert_eq!(lat.len(), total);
    let st = statuses.lock().unwrap();
    assert!(st.keys().all(|s| *s == 200 || *s == 429), "{st:?}");
    assert!(peak_mib < MAX_RSS_MIB, "server RSS peaked at {peak_mib} MiB");
}
