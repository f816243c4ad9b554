//! The server with a real model under concurrent requests (run by hand, it needs a model:
//! `DOCSEEK_LOAD_MODEL=/work/ckpt/ocr1 cargo test --release --test server_batching -- --ignored --nocapture`).
//!
//! Starts `docseek serve` on the model (mode tiny, a short token budget), submits
//! `LOAD_CLIENTS` (16) jobs at once, follows each to its end, and checks that none is lost.
//! Prints throughput, latency percentiles, pages per decoding step and peak RSS against the
//! weights + the KV budget. Then cancels a long job while it decodes and checks that the
//! engine ran at most one more step with it (`docseek_engine_steps_total`,
//! `docseek_engine_step_pages`).
//! Knobs: LOAD_CLIENTS (16), LOAD_NEW_TOKENS (8), LOAD_KV_MB (2048).

mod server_support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use server_support::*;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// A metric's value from the Prometheus text.
fn metric(addr: &str, name: &str) -> f64 {
    let (_, _, body) = http(addr, "GET", "/metrics", &[], b"");
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("metric {name} missing"))
}

/// Polls a job until it is final (bounded by `limit`); returns its status JSON.
fn wait_final(addr: &str, id: &str, limit: Duration) -> Value {
    let start = Instant::now();
    loop {
        let (_, v) = http_json(addr, "GET", &format!("/v1/jobs/{id}"), &[], b"");
        if matches!(v["state"].as_str(), Some("done" | "failed" | "cancelled")) {
            return v;
        }
        assert!(start.elapsed() < limit, "job {id} still {} after {limit:?}", v["state"]);
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Bytes of the model's weights files.
fn weight_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "safetensors"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

#[test]
#[ignore = "needs a model: DOCSEEK_LOAD_MODEL=DIR, run by hand with --ignored --nocapture"]
fn concurrent_jobs_batch_on_a_real_model() {
    let model = std::env::var("DOCSEEK_LOAD_MODEL").expect("set DOCSEEK_LOAD_MODEL to a model folder");
    let model_dir = std::path::PathBuf::from(&model);
    assert!(model_dir.join("config.json").is_file(), "DOCSEEK_LOAD_MODEL={model} is not a model folder");
    let clients = env_or("LOAD_CLIENTS", 16);
    let new_tokens = env_or("LOAD_NEW_TOKENS", 8).to_string();
    let kv_mb = env_or("LOAD_KV_MB", 2048);
    let data = tempfile::tempdir().unwrap();
    let n = clients.to_string();
    let kv = kv_mb.to_string();
    let server = ServeProcess::start(
        &[
            "--model",
            &model,
            "--data-dir",
            data.path().to_str().unwrap(),
            "--mode",
            "tiny",
            "--max-new-tokens",
            &new_tokens,
            "--concurrency",
            &n,
            "--max-batch",
            &n,
            "--max-queue",
            "64",
            "--kv-cache-mb",
            &kv,
        ],
        &[],
    );
    let pid = server.child.id();
    let addr = server.addr.clone();
    let idle_kib = rss_kib(pid);
    let peak = Arc::new(Mutex::new(idle_kib));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = rss_kib(pid);
                let mut p = peak.lock().unwrap();
                *p = (*p).max(r);
                drop(p);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let image = Arc::new(png(800, 1000));
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (addr, image) = (addr.clone(), image.clone());
            std::thread::spawn(move || {
                let t = Instant::now();
                let (s, v) = http_json(&addr, "POST", "/v1/jobs", &[], &image);
                assert_eq!(s, 202, "{v}");
                let id = v["id"].as_str().unwrap().to_string();
                let status = wait_final(&addr, &id, Duration::from_secs(1800));
                assert_eq!(status["state"], "done", "{status}");
                let (s, _, _) = http(&addr, "GET", &format!("/v1/jobs/{id}/result?format=md"), &[], b"");
                assert_eq!(s, 200);
                t.elapsed()
            })
        })
        .collect();
    let mut lat: Vec<Duration> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    let elapsed = started.elapsed();
    let steps = metric(&addr, "docseek_engine_steps_total");
    let step_pages_sum = metric(&addr, "docseek_batch_size_pages_sum");
    lat.sort();
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize].as_secs_f64();
    println!(
        "load: {clients} jobs (1 page, mode tiny, {new_tokens} new tokens) in {:.1} s -> {:.3} pages/s; none lost",
        elapsed.as_secs_f64(),
        clients as f64 / elapsed.as_secs_f64()
    );
    println!("latency s: p50 {:.1}, p90 {:.1}, p99 {:.1}, max {:.1}", pct(0.5), pct(0.9), pct(0.99), pct(1.0));
    println!("engine: {steps} steps, {:.2} pages per step on average", step_pages_sum / steps.max(1.0));

    // Cancel a long job while it decodes: the engine runs it for at most one more step.
    let (s, v) = http_json(&addr, "POST", "/v1/jobs?max_new_tokens=400", &[], &image);
    assert_eq!(s, 202, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let t = Instant::now();
    while metric(&addr, "docseek_engine_step_pages") < 1.0 || metric(&addr, "docseek_engine_steps_total") < steps + 3.0
    {
        assert!(t.elapsed() < Duration::from_secs(900), "the long job never decoded");
        std::thread::sleep(Duration::from_millis(50));
    }
    let cancelled_at = Instant::now();
    let (s, _, _) = http(&addr, "DELETE", &format!("/v1/jobs/{id}"), &[], b"");
    assert_eq!(s, 200);
    let at_cancel = metric(&addr, "docseek_engine_steps_total");
    std::thread::sleep(Duration::from_secs(20));
    let after = metric(&addr, "docseek_engine_steps_total");
    println!(
        "cancel: {} more step(s) after DELETE returned (the one in flight), then idle; checked {:.1} s later",
        after - at_cancel,
        cancelled_at.elapsed().as_secs_f64()
    );
    assert!(after - at_cancel <= 1.0, "the engine ran {} steps after the cancel", after - at_cancel);

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.join().unwrap();
    let peak_b = *peak.lock().unwrap() as f64 * 1024.0;
    let idle_b = idle_kib as f64 * 1024.0;
    let kv_b = (kv_mb << 20) as f64;
    println!(
        "server RSS: {:.2} GB once loaded (weights on disk {:.2} GB, widened to f32 on the CPU), peak {:.2} GB: \
         +{:.2} GB under load against a KV budget of {:.2} GB",
        idle_b / 1e9,
        weight_bytes(&model_dir) as f64 / 1e9,
        peak_b / 1e9,
        (peak_b - idle_b) / 1e9,
        kv_b / 1e9
    );
}
