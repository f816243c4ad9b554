//! The fleet on real servers: `docseek serve` API nodes and `docseek worker`s sharing one
//! PostgreSQL (a throwaway cluster) and one S3-compatible store (moto), all on 127.0.0.1.
//! Checks that 200 pages submitted through two API nodes complete exactly once, that a worker
//! killed mid-page loses nothing (its page is leased again after the deadline), and that the
//! jobs of a killed API node are still served by the other.
//! `fleet_throughput` (ignored; run by hand) prints pages/s with 1, 2 and 3 workers.

mod fleet_support;
mod server_support;

use std::time::{Duration, Instant};

use fleet_support::*;
use serde_json::Value;
use server_support::{http, http_json, tiny_checkpoint, ServeProcess};

/// The tests each start a cluster, moto and several processes: one at a time on two cores.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn pairs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(k, w)| (k.as_str(), w.as_str())).collect()
}

/// Starts an API node (no engine) over the fleet's stores.
fn api_node(fleet: &[String], data: &tempfile::TempDir, env: &[(String, String)]) -> ServeProcess {
    serve_node(fleet, data, env, &["--api-only"])
}

/// Starts `docseek serve` over the fleet's stores with `extra` flags.
fn serve_node(fleet: &[String], data: &tempfile::TempDir, env: &[(String, String)], extra: &[&str]) -> ServeProcess {
    let mut args = fleet.to_vec();
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(["--mode", "tiny", "--data-dir"].map(String::from));
    args.push(data.path().to_str().unwrap().into());
    ServeProcess::start(&strs(&args), &pairs(env))
}

/// Starts a worker with the fake engine (`token_delay_ms` per token) and `extra` flags.
fn fake_worker(fleet: &[String], env: &[(String, String)], token_delay_ms: u64, extra: &[&str]) -> WorkerProcess {
    let mut args = fleet.to_vec();
    args.extend(["--model", "fake"].map(String::from));
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut env = env.to_vec();
    env.push(("DOCSEEK_FAKE_TOKEN_DELAY_MS".into(), token_delay_ms.to_string()));
    WorkerProcess::start(&strs(&args), &env)
}

/// Submits a document as a job through `addr`; returns its id.
fn submit(addr: &str, doc: &[u8], query: &str) -> String {
    let (status, v) = http_json(addr, "POST", &format!("/v1/jobs?{query}"), &[], doc);
    assert_eq!(status, 202, "{v}");
    v["id"].as_str().unwrap().to_string()
}

/// Polls a job through `addr` until it is final (bounded).
fn wait_final(addr: &str, id: &str, limit: Duration) -> Value {
    let started = Instant::now();
    loop {
        let (status, v) = http_json(addr, "GET", &format!("/v1/jobs/{id}"), &[], b"");
        assert_eq!(status, 200, "{v}");
        if ["done", "failed", "cancelled"].contains(&v["state"].as_str().unwrap_or("")) {
            return v;
        }
        assert!(started.elapsed() < limit, "job {id} not final after {limit:?}: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The page numbers of a job's JSON result, fetched through `addr`.
fn result_pages(addr: &str, id: &str) -> Vec<u64> {
    let (status, v) = http_json(addr, "GET", &format!("/v1/jobs/{id}/result?format=json"), &[], b"");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["failed_pages"], serde_json::json!([]), "{v}");
    v["pages"].as_array().unwrap().iter().map(|p| p["number"].as_u64().unwrap()).collect()
}

/// `docseek_worker_pages_total` per worker, from an API node's /metrics.
fn worker_pages(addr: &str) -> Vec<(String, f64)> {
    let (_, _, body) = http(addr, "GET", "/metrics", &[], b"");
    metric_series(&String::from_utf8(body).unwrap(), "docseek_worker_pages_total")
}

#[test]
fn two_api_nodes_and_three_workers_complete_200_pages_exactly_once() {
    let _serial = serial();
    let (pg, s3) = (Postgres::start(), S3::start());
    let env = s3.env();
    let fleet = fleet_args(&pg, &s3, "exactly-once");
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let apis = [api_node(&fleet, &d1, &env), api_node(&fleet, &d2, &env)];
    // Two fake engines and the real engine over a tiny random checkpoint.
    let lease = ["--lease-s", "5", "--max-batch", "4"];
    let mut workers = vec![fake_worker(&fleet, &env, 1, &lease), fake_worker(&fleet, &env, 1, &lease)];
    let mut tiny = fleet.clone();
    tiny.extend(["--model", tiny_checkpoint().to_str().unwrap(), "--device", "cpu"].map(String::from));
    tiny.extend(lease.map(String::from));
    workers.push(WorkerProcess::start(&strs(&tiny), &env));

    // 20 ten-page documents, alternately through each API node.
    let doc = tiff(10, 64, 48);
    let ids: Vec<(usize, String)> =
        (0..20).map(|i| (i % 2, submit(&apis[i % 2].addr, &doc, "max_new_tokens=8"))).collect();
    for (node, id) in &ids {
        // Followed and fetched through the node that did not take it.
        let other = &apis[1 - node].addr;
        let v = wait_final(other, id, Duration::from_secs(300));
        assert_eq!(
            (v["state"].as_str(), v["page_count"].as_u64(), v["pages_done"].as_u64()),
            (Some("done"), Some(10), Some(10)),
            "{v}"
        );
        assert_eq!(result_pages(other, id), (1..=10).collect::<Vec<_>>());
    }

    // Every page was committed once, by one lease of one attempt, and counted once.
    rt().block_on(async {
        let db = pg.client().await;
        let row = db.query_one("SELECT count(*), count(DISTINCT (job_id, idx)) FROM pages", &[]).await.unwrap();
        assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (200, 200));
        let row = db
            .query_one(
                "SELECT count(*), coalesce(sum(attempts), 0)::bigint FROM work_items WHERE idx >= 0 AND state = 'done'",
                &[],
            )
            .await
            .unwrap();
        assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (200, 200), "a page was leased more than once");
        let open: i64 =
            db.query_one("SELECT count(*) FROM work_items WHERE state <> 'done'", &[]).await.unwrap().get(0);
        assert_eq!(open, 0);
    });
    let per_worker = worker_pages(&apis[0].addr);
    assert_eq!(per_worker.iter().map(|(_, n)| n).sum::<f64>(), 200.0, "{per_worker:?}");
    for w in &workers {
        let done = per_worker.iter().find(|(s, _)| s.contains(&w.id)).map(|(_, n)| *n).unwrap_or(0.0);
        assert!(done > 0.0, "worker {} committed no page: {per_worker:?}", w.id);
    }
    // A synchronous request through an API node is answered by the fleet too.
    let (status, _, md) = http(&apis[1].addr, "POST", "/v1/ocr?format=md&max_new_tokens=8", &[], &tiff(2, 64, 48));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&md));
    assert!(!md.is_empty());
    let (status, health) = http_json(&apis[1].addr, "GET", "/health", &[], b"");
    assert_eq!(status, 200, "{health}");
    assert_eq!(
        (health["store"]["backend"].as_str(), health["blobs"]["status"].as_str()),
        (Some("postgres"), Some("ok"))
    );
}

#[test]
fn a_worker_killed_mid_page_loses_nothing() {
    let _serial = serial();
    let (pg, s3) = (Postgres::start(), S3::start());
    let env = s3.env();
    let fleet = fleet_args(&pg, &s3, "kill-worker");
    let data = tempfile::tempdir().unwrap();
    let api = api_node(&fleet, &data, &env);
    // About 7 s a page, one page at a time, 2 s leases.
    let slow = fake_worker(&fleet, &env, 300, &["--lease-s", "2", "--max-batch", "1"]);
    let id = submit(&api.addr, &tiff(4, 64, 48), "");
    let db_rt = rt();
    let db = db_rt.block_on(pg.client());
    let started = Instant::now();
    let (idx, deadline) = loop {
        let row = db_rt
            .block_on(db.query_opt(
                "SELECT idx, lease_until::text FROM work_items WHERE job_id = $1 AND idx >= 0 AND state = 'leased' AND worker = $2",
                &[&id, &slow.id],
            ))
            .unwrap();
        if let Some(row) = row {
            break (row.get::<_, i32>(0), row.get::<_, String>(1));
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the slow worker never leased a page");
        std::thread::sleep(Duration::from_millis(50));
    };
    // Let it work on the page for a moment, then kill it without warning.
    std::thread::sleep(Duration::from_millis(500));
    let slow_id = slow.id.clone();
    slow.kill9();
    let fast = fake_worker(&fleet, &env, 1, &["--lease-s", "2"]);

    let v = wait_final(&api.addr, &id, Duration::from_secs(120));
    assert_eq!((v["state"].as_str(), v["pages_done"].as_u64()), (Some("done"), Some(4)), "{v}");
    assert_eq!(result_pages(&api.addr, &id), vec![1, 2, 3, 4]);
    db_rt.block_on(async {
        // The killed worker's page: leased a second time, after its deadline, and committed once.
        let item = db
            .query_one("SELECT attempts, state, last_error FROM work_items WHERE job_id = $1 AND idx = $2", &[&id, &idx])
            .await
            .unwrap();
        assert_eq!((item.get::<_, i32>(0), item.get::<_, &str>(1)), (2, "done"));
        assert!(item.get::<_, Option<&str>>(2).is_some_and(|e| e.contains("expired")), "{:?}", item.get::<_, Option<&str>>(2));
        let page = db
            .query_one(
                "SELECT worker, attempt, committed_at > $3::text::timestamptz FROM pages WHERE job_id = $1 AND idx = $2",
                &[&id, &idx, &deadline],
            )
            .await
            .unwrap();
        assert_eq!(page.get::<_, Option<&str>>(0), Some(fast.id.as_str()));
        assert_eq!(page.get::<_, Option<i32>>(1), Some(2));
        assert!(page.get::<_, bool>(2), "committed before the killed worker's lease ran out");
        let rows: Vec<(String, i64)> = db
            .query("SELECT coalesce(worker, ''), count(*) FROM pages WHERE job_id = $1 GROUP BY 1", &[&id])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        assert_eq!(rows, vec![(fast.id.clone(), 4)], "every page committed once, all by the surviving worker");
    });
    let per_worker = worker_pages(&api.addr);
    assert_eq!(per_worker.iter().map(|(_, n)| n).sum::<f64>(), 4.0, "{per_worker:?}");
    assert!(!per_worker.iter().any(|(s, n)| s.contains(&slow_id) && *n > 0.0), "{per_worker:?}");
    // A clean stop hands nothing back here (it holds nothing) and exits 0.
    assert!(fast.terminate().success());
}

#[test]
fn the_jobs_of_a_killed_api_node_are_served_by_the_other() {
    let _serial = serial();
    let (pg, s3) = (Postgres::start(), S3::start());
    let env = s3.env();
    let fleet = fleet_args(&pg, &s3, "kill-api");
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // The survivor is a full node: it serves the API and pulls pages with its own engine.
    let full = [("DOCSEEK_FAKE_TOKEN_DELAY_MS".to_string(), "20".to_string())];
    let survivor_env: Vec<(String, String)> = env.iter().cloned().chain(full).collect();
    let doomed = api_node(&fleet, &d1, &env);
    let survivor = serve_node(&fleet, &d2, &survivor_env, &["--model", "fake", "--max-batch", "2"]);
    let _workers =
        [fake_worker(&fleet, &env, 20, &["--max-batch", "2"]), fake_worker(&fleet, &env, 20, &["--max-batch", "2"])];
    let doc = tiff(6, 64, 48);
    let ids: Vec<String> = (0..3).map(|_| submit(&doomed.addr, &doc, "")).collect();
    // Live events of the first job, streamed by the other node.
    let events = {
        let (addr, id) = (survivor.addr.clone(), ids[0].clone());
        std::thread::spawn(move || {
            let (status, _, body) = http(&addr, "GET", &format!("/v1/jobs/{id}/events"), &[], b"");
            (status, String::from_utf8(body).unwrap())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    doomed.kill9();
    for id in &ids {
        let v = wait_final(&survivor.addr, id, Duration::from_secs(120));
        assert_eq!((v["state"].as_str(), v["pages_done"].as_u64()), (Some("done"), Some(6)), "{v}");
        assert_eq!(result_pages(&survivor.addr, id), (1..=6).collect::<Vec<_>>());
    }
    let (status, body) = events.join().unwrap();
    assert_eq!(status, 200);
    let events = server_support::sse_events(&body);
    let pages: Vec<u64> = events
        .iter()
        .filter(|(e, _)| e == "page")
        .map(|(_, d)| serde_json::from_str::<Value>(d).unwrap()["page"]["number"].as_u64().unwrap())
        .collect();
    let mut sorted = pages.clone();
    sorted.sort();
    assert_eq!(sorted, (1..=6).collect::<Vec<_>>(), "each page event once: {body}");
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "done");
    assert_eq!(serde_json::from_str::<Value>(data).unwrap()["state"], "done");
    // The survivor still takes new work.
    let id = submit(&survivor.addr, &doc, "");
    assert_eq!(wait_final(&survivor.addr, &id, Duration::from_secs(120))["state"], "done");
    let (_, _, body) = http(&survivor.addr, "GET", "/metrics", &[], b"");
    let roles = metric_series(&String::from_utf8(body).unwrap(), "docseek_worker_pages_total");
    assert!(
        roles.iter().any(|(s, n)| s.contains("role=\"serve\"") && *n > 0.0),
        "the full node pulled no page: {roles:?}"
    );
}

#[test]
#[ignore = "measurement: cargo test --test fleet_pg fleet_throughput -- --ignored --nocapture"]
fn fleet_throughput() {
    let _serial = serial();
    let (pg, s3) = (Postgres::start(), S3::start());
    let env = s3.env();
    let delay: u64 = std::env::var("FLEET_TOKEN_DELAY_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    let docs: usize = std::env::var("FLEET_DOCS").ok().and_then(|v| v.parse().ok()).unwrap_or(12);
    let doc = tiff(10, 64, 48);
    let mut rates = Vec::new();
    for n in 1..=3 {
        let fleet = fleet_args(&pg, &s3, &format!("throughput-{n}"));
        let data = tempfile::tempdir().unwrap();
        let api = api_node(&fleet, &data, &env);
        let workers: Vec<WorkerProcess> =
            (0..n).map(|_| fake_worker(&fleet, &env, delay, &["--max-batch", "4"])).collect();
        let started = Instant::now();
        let ids: Vec<String> = (0..docs).map(|_| submit(&api.addr, &doc, "")).collect();
        for id in &ids {
            assert_eq!(wait_final(&api.addr, id, Duration::from_secs(600))["state"], "done");
        }
        let secs = started.elapsed().as_secs_f64();
        let pages = (docs * 10) as f64;
        rates.push(pages / secs);
        println!("workers={n} pages={pages} seconds={secs:.2} pages_per_s={:.2}", pages / secs);
        for w in workers {
            assert!(w.terminate().success());
        }
    }
    println!("speed-up at 2 workers: {:.2}x, at 3 workers: {:.2}x", rates[1] / rates[0], rates[2] / rates[0]);
}

#[test]
fn a_stopped_worker_hands_its_pages_back_at_once() {
    let _serial = serial();
    let (pg, s3) = (Postgres::start(), S3::start());
    let env = s3.env();
    let fleet = fleet_args(&pg, &s3, "graceful");
    let data = tempfile::tempdir().unwrap();
    let api = api_node(&fleet, &data, &env);
    // A long lease: only a clean hand-back lets another worker have the page soon.
    let slow = fake_worker(&fleet, &env, 300, &["--lease-s", "600", "--max-batch", "1"]);
    let id = submit(&api.addr, &tiff(2, 64, 48), "");
    let db_rt = rt();
    let db = db_rt.block_on(pg.client());
    let started = Instant::now();
    let idx: i32 = loop {
        let row = db_rt
            .block_on(db.query_opt(
                "SELECT idx FROM work_items WHERE job_id = $1 AND idx >= 0 AND worker = $2",
                &[&id, &slow.id],
            ))
            .unwrap();
        if let Some(row) = row {
            break row.get(0);
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the slow worker never leased a page");
        std::thread::sleep(Duration::from_millis(50));
    };
    let slow_id = slow.id.clone();
    assert!(slow.terminate().success());
    let row = db_rt
        .block_on(
            db.query_one("SELECT state, attempts, worker FROM work_items WHERE job_id = $1 AND idx = $2", &[&id, &idx]),
        )
        .unwrap();
    assert_eq!((row.get::<_, &str>(0), row.get::<_, i32>(1), row.get::<_, Option<&str>>(2)), ("ready", 0, None));
    let _fast = fake_worker(&fleet, &env, 1, &[]);
    let v = wait_final(&api.addr, &id, Duration::from_secs(60));
    assert_eq!((v["state"].as_str(), v["pages_done"].as_u64()), (Some("done"), Some(2)), "{v}");
    let (_, _, body) = http(&api.addr, "GET", "/metrics", &[], b"");
    let up = metric_series(&String::from_utf8(body).unwrap(), "docseek_worker_up");
    assert!(up.iter().any(|(s, v)| s.contains(&slow_id) && *v == 0.0), "the stopped worker reads as down: {up:?}");
}

#[test]
fn the_queue_retries_up_to_its_cap_keeps_the_reason_and_commits_once() {
    use docseek::server::store::{FailOutcome, JobId, JobRecord, JobState, JobStore, PageMeta, PageRecord, PgStore};
    let _serial = serial();
    let pg = Postgres::start();
    rt().block_on(async {
        let store = PgStore::connect(&pg.url()).await.unwrap().with_max_attempts(2);
        let queue = store.queue().unwrap();
        let lease_for = Duration::from_secs(30);
        let job = JobRecord {
            id: JobId::generate(),
            state: JobState::Queued,
            filename: None,
            media: "png".into(),
            options: Default::default(),
            webhook: None,
            page_count: None,
            error: None,
            created_ms: docseek::server::store::now_ms(),
            finished_ms: None,
            ephemeral: false,
        };
        queue.submit(&job).await.unwrap();
        assert_eq!(queue.waiting_jobs().await.unwrap(), 1);
        let doc = queue.lease("w1", 4, lease_for).await.unwrap();
        assert_eq!((doc.len(), doc[0].page), (1, None));
        // Nothing else to lease while the document is held.
        assert!(queue.lease("w2", 4, lease_for).await.unwrap().is_empty());
        let meta = PageMeta { page_number: 1, width: 10, height: 10, width_pt: 5.0, height_pt: 5.0 };
        assert!(queue.add_pages("w1", &doc[0], &[meta, PageMeta { page_number: 2, ..meta }]).await.unwrap());
        assert_eq!(queue.waiting_jobs().await.unwrap(), 0, "a rasterized job is running");
        // A second hand-in of the same document lease changes nothing.
        assert!(!queue.add_pages("w1", &doc[0], &[meta]).await.unwrap());
        let pages = queue.lease("w2", 4, lease_for).await.unwrap();
        assert_eq!(pages.iter().map(|l| (l.page, l.attempt)).collect::<Vec<_>>(), vec![(Some(0), 1), (Some(1), 1)]);
        let record = |index: usize| PageRecord {
            index,
            page_number: index + 1,
            width: 10,
            height: 10,
            width_pt: 5.0,
            height_pt: 5.0,
            raw: Some(format!("page {index}")),
            outcome: Some("finished".into()),
            tokens: 2,
            prompt_tokens: 1,
            timings: Default::default(),
            error: None,
        };
        // Page 0: fails, is retried once (the cap is 2), fails again and is given up on.
        assert_eq!(queue.fail("w2", &pages[0], "model_failed", "boom 1", true).await.unwrap(), FailOutcome::Retry);
        let again = queue.lease("w3", 4, lease_for).await.unwrap();
        assert_eq!(again.iter().map(|l| (l.page, l.attempt)).collect::<Vec<_>>(), vec![(Some(0), 2)]);
        // The first attempt's result can no longer be committed.
        assert!(!queue.complete("w2", &pages[0], &record(0)).await.unwrap());
        assert_eq!(queue.fail("w3", &again[0], "model_failed", "boom 2", true).await.unwrap(), FailOutcome::GaveUp);
        // Page 1 commits once; a repeated commit of the same lease is refused.
        assert!(queue.complete("w2", &pages[1], &record(1)).await.unwrap());
        assert!(!queue.complete("w2", &pages[1], &record(1)).await.unwrap());
        let done = store.job(&job.id).await.unwrap().unwrap();
        assert_eq!((done.state, done.page_count), (JobState::Done, Some(2)));
        let stored = store.pages(&job.id).await.unwrap();
        assert_eq!(stored.len(), 2);
        assert_eq!((stored[0].raw.as_deref(), stored[0].error.as_deref()), (None, Some("boom 2")));
        assert_eq!(stored[1].raw.as_deref(), Some("page 1"));
        let stats = queue.stats().await.unwrap();
        assert_eq!((stats.ready, stats.leased, stats.failed, stats.retries), (0, 0, 1, 1));
    });
}
