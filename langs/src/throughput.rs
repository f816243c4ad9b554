//! Throughput measurement of detection (MB/s of UTF-8 input) beside whatlang alone on the same
//! texts in the same run, used by `docseek bench langid` and `examples/throughput.rs`.

use std::time::{Duration, Instant};

use crate::detector::{LanguageDetector, ProfileDetector};

/// One measured detector.
#[derive(Debug, Clone)]
pub struct Throughput {
    /// What was measured.
    pub name: &'static str,
    /// Megabytes (10^6 bytes) of input per second.
    pub mb_per_s: f64,
    /// Texts per second.
    pub texts_per_s: f64,
}

/// Runs `f` over all `texts` repeatedly for at least `min_time`; returns (bytes/s, texts/s).
fn measure(texts: &[String], min_time: Duration, mut f: impl FnMut(&str) -> usize) -> (f64, f64) {
    let bytes: usize = texts.iter().map(String::len).sum();
    let mut sink = 0usize;
    for t in texts.iter().take(16) {
        sink = sink.wrapping_add(f(t));
    }
    let start = Instant::now();
    let mut rounds = 0usize;
    while rounds == 0 || start.elapsed() < min_time {
        for t in texts {
            sink = sink.wrapping_add(f(t));
        }
        rounds += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    std::hint::black_box(sink);
    ((bytes * rounds) as f64 / secs, (texts.len() * rounds) as f64 / secs)
}

/// Measures our detection, our spans, and whatlang alone over `texts`, each for `min_time`.
pub fn compare(texts: &[String], min_time: Duration) -> Vec<Throughput> {
    let det = ProfileDetector::global();
    let mut out = Vec::new();
    let mut push = |name, (b, t): (f64, f64)| out.push(Throughput { name, mb_per_s: b / 1e6, texts_per_s: t });
    push("docseek-langs detect", measure(texts, min_time, |t| det.detect(t).code.len()));
    push("docseek-langs spans", measure(texts, min_time, |t| det.spans(t).len()));
    push("whatlang 0.18 detect", measure(texts, min_time, |t| whatlang::detect(t).map_or(0, |i| i.lang() as usize)));
    out
}
