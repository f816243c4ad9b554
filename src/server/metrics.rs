//! Prometheus metrics in the text exposition format, prefix `docseek_`.
//!
//! Process-wide (one registry per process, like the usual Prometheus client globals), so error
//! responses can be counted where they are built. Histograms have explicit buckets.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Buckets of the per-page latency histogram (seconds, queueing included).
pub const PAGE_LATENCY_BUCKETS: [f64; 12] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];
/// Buckets of the whole-job latency histogram (seconds).
pub const JOB_LATENCY_BUCKETS: [f64; 10] = [0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0];
/// Buckets of the engine batch size histogram (pages).
pub const BATCH_SIZE_BUCKETS: [f64; 7] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];
/// The window over which pages/s and tokens/s gauges are computed.
pub const RATE_WINDOW: Duration = Duration::from_secs(60);

/// A histogram with fixed upper bounds.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// An empty histogram over `bounds` (ascending, `+Inf` implied).
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, value: f64) {
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            if value <= *b {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add((value.max(0.0) * 1e6) as u64, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn write(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {}", c.load(Ordering::Relaxed));
        }
        let n = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {n}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {n}");
    }
}

/// All metrics of the process.
#[derive(Debug)]
pub struct Metrics {
    /// Pages recognised successfully.
    pub pages: AtomicU64,
    /// Pages that failed in the engine.
    pub page_failures: AtomicU64,
    /// Generated tokens.
    pub tokens: AtomicU64,
    /// Jobs accepted.
    pub jobs_accepted: AtomicU64,
    /// Pages waiting for the engine thread.
    pub engine_queue_depth: AtomicU64,
    /// Jobs waiting for a run slot.
    pub jobs_queued: AtomicU64,
    /// Jobs being processed.
    pub jobs_running: AtomicU64,
    /// Per-page latency, enqueue to result.
    pub page_latency: Histogram,
    /// Whole-job latency, acceptance to completion.
    pub job_latency: Histogram,
    /// Pages per engine call (with token-level batching: per decoding step).
    pub batch_size: Histogram,
    /// Engine calls (decoding steps) run.
    pub engine_steps: AtomicU64,
    /// Pages in the latest engine call (decoding step).
    pub engine_step_pages: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    recent: Mutex<VecDeque<(Instant, u64)>>,
}

impl Metrics {
    fn new() -> Self {
        Metrics {
            pages: AtomicU64::new(0),
            page_failures: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
            jobs_accepted: AtomicU64::new(0),
            engine_queue_depth: AtomicU64::new(0),
            jobs_queued: AtomicU64::new(0),
            jobs_running: AtomicU64::new(0),
            page_latency: Histogram::new(&PAGE_LATENCY_BUCKETS),
            job_latency: Histogram::new(&JOB_LATENCY_BUCKETS),
            batch_size: Histogram::new(&BATCH_SIZE_BUCKETS),
            engine_steps: AtomicU64::new(0),
            engine_step_pages: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
            recent: Mutex::new(VecDeque::new()),
        }
    }

    /// Counts an error response by its stable code.
    pub fn count_error(&self, code: &str) {
        *self.errors.lock().unwrap_or_else(|p| p.into_inner()).entry(code.to_string()).or_default() += 1;
    }

    /// Records one recognised page.
    pub fn page_done(&self, tokens: u64, latency: Duration) {
        self.pages.fetch_add(1, Ordering::Relaxed);
        self.tokens.fetch_add(tokens, Ordering::Relaxed);
        self.page_latency.observe(latency.as_secs_f64());
        let now = Instant::now();
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.push_back((now, tokens));
        while recent.front().is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW) {
            recent.pop_front();
        }
    }

    /// Pages/s and tokens/s over the last [`RATE_WINDOW`].
    pub fn rates(&self) -> (f64, f64) {
        let now = Instant::now();
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let live: Vec<_> = recent.iter().filter(|(t, _)| now.duration_since(*t) <= RATE_WINDOW).collect();
        let secs = RATE_WINDOW.as_secs_f64();
        (live.len() as f64 / secs, live.iter().map(|(_, n)| *n).sum::<u64>() as f64 / secs)
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let gauge = |out: &mut String, name: &str, help: &str, kind: &str, v: f64| {
            let _ = writeln!(out, "# HELP docseek_{name} {help}\n# TYPE docseek_{name} {kind}\ndocseek_{name} {v}");
        };
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        gauge(&mut out, "queue_depth", "Pages waiting for the engine thread.", "gauge", ld(&self.engine_queue_depth));
        gauge(&mut out, "jobs_queued", "Jobs waiting for a run slot.", "gauge", ld(&self.jobs_queued));
        gauge(&mut out, "jobs_running", "Jobs being processed.", "gauge", ld(&self.jobs_running));
        gauge(&mut out, "jobs_accepted_total", "Jobs accepted.", "counter", ld(&self.jobs_accepted));
        gauge(&mut out, "pages_total", "Pages recognised.", "counter", ld(&self.pages));
        gauge(&mut out, "page_failures_total", "Pages the engine failed on.", "counter", ld(&self.page_failures));
        gauge(&mut out, "tokens_total", "Tokens generated.", "counter", ld(&self.tokens));
        let (pps, tps) = self.rates();
        gauge(&mut out, "pages_per_second", "Pages per second over the last minute.", "gauge", pps);
        gauge(&mut out, "tokens_per_second", "Tokens per second over the last minute.", "gauge", tps);
        self.page_latency.write(&mut out, "docseek_page_latency_seconds", "Page latency from enqueue to result.");
        self.job_latency.write(&mut out, "docseek_job_latency_seconds", "Job latency from acceptance to completion.");
        self.batch_size.write(&mut out, "docseek_batch_size_pages", "Pages per engine call (decoding step).");
        gauge(&mut out, "engine_steps_total", "Engine calls (decoding steps) run.", "counter", ld(&self.engine_steps));
        gauge(
            &mut out,
            "engine_step_pages",
            "Pages in the latest engine call (decoding step).",
            "gauge",
            ld(&self.engine_step_pages),
        );
        let _ =
            writeln!(out, "# HELP docseek_errors_total Error responses by code.\n# TYPE docseek_errors_total counter");
        for (code, n) in self.errors.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "docseek_errors_total{{code=\"{code}\"}} {n}");
        }
        out
    }
}

/// Appends the shared queue's depth and every recent worker's counters (read from the store,
/// so any API node reports the whole fleet).
pub fn render_fleet(out: &mut String, stats: &crate::server::store::QueueStats) {
    let _ = writeln!(
        out,
        "# HELP docseek_work_items Work items of the shared queue by state.\n# TYPE docseek_work_items gauge"
    );
    for (state, n) in [("ready", stats.ready), ("leased", stats.leased), ("done", stats.done), ("failed", stats.failed)]
    {
        let _ = writeln!(out, "docseek_work_items{{state=\"{state}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP docseek_work_retries_total Attempts beyond the first.\n# TYPE docseek_work_retries_total counter"
    );
    let _ = writeln!(out, "docseek_work_retries_total {}", stats.retries);
    type Series = (&'static str, &'static str, &'static str, fn(&crate::server::store::WorkerStatus) -> f64);
    let series: [Series; 5] = [
        ("worker_pages_total", "counter", "Pages a worker committed.", |w| w.pages_done as f64),
        ("worker_page_failures_total", "counter", "Pages a worker gave up on.", |w| w.pages_failed as f64),
        ("worker_leased_items", "gauge", "Items a worker holds now.", |w| w.leased as f64),
        ("worker_last_seen_seconds", "gauge", "Seconds since a worker's last heartbeat.", |w| w.seen_s_ago),
        (
            "worker_up",
            "gauge",
            "1 while a worker heartbeats, 0 once it stopped.",
            |w| if w.stopped { 0.0 } else { 1.0 },
        ),
    ];
    for (name, kind, help, value) in series {
        let _ = writeln!(out, "# HELP docseek_{name} {help}\n# TYPE docseek_{name} {kind}");
        for w in &stats.workers {
            let _ = writeln!(out, "docseek_{name}{{worker=\"{}\",role=\"{}\"}} {}", w.id, w.role, value(w));
        }
    }
}

/// The process-wide metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::new(&BATCH_SIZE_BUCKETS);
        h.observe(1.0);
        h.observe(3.0);
        let mut s = String::new();
        h.write(&mut s, "x", "help");
        assert!(s.contains("x_bucket{le=\"1\"} 1\n"), "{s}");
        assert!(s.contains("x_bucket{le=\"4\"} 2\n"), "{s}");
        assert!(s.contains("x_bucket{le=\"+Inf\"} 2\n"), "{s}");
        assert!(s.contains("x_count 2\n"));
    }
}
