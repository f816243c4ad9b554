//! Throughput measurement of detection (MB/s of UTF-8 input, texts/s) on one thread beside
//! whatlang alone on the same texts in the same run, used by `docseek bench langid` and
//! `examples/throughput.rs`, and the sentence splitting both measure per sentence with.

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

/// A detector under measurement: text in, something that depends on the answer out.
type Measured = dyn FnMut(&str) -> usize;

/// One timed pass of `f` over all `texts`, in seconds.
fn pass(texts: &[String], f: &mut dyn FnMut(&str) -> usize) -> f64 {
    let start = Instant::now();
    let mut sink = 0usize;
    for t in texts {
        sink = sink.wrapping_add(f(t));
    }
    std::hint::black_box(sink);
    start.elapsed().as_secs_f64()
}

/// Measures our detection, our spans, and whatlang alone over `texts`. The detectors take
/// turns, one pass each, until `min_time` has passed; each is credited with its fastest pass,
/// which keeps the ratio stable on a shared, noisy machine.
pub fn compare(texts: &[String], min_time: Duration) -> Vec<Throughput> {
    let det = ProfileDetector::global();
    let bytes: usize = texts.iter().map(String::len).sum();
    let mut ours = |t: &str| det.detect(t).code.len();
    let mut spans = |t: &str| det.spans(t).len();
    let mut wl = |t: &str| whatlang::detect(t).map_or(0, |i| i.lang() as usize);
    let mut fs: [(&'static str, &mut Measured); 3] =
        [("docseek-langs detect", &mut ours), ("docseek-langs spans", &mut spans), ("whatlang 0.18 detect", &mut wl)];
    for (_, f) in fs.iter_mut() {
        for t in texts.iter().take(16) {
            std::hint::black_box(f(t));
        }
    }
    let mut best = [f64::INFINITY; 3];
    let start = Instant::now();
    while best.iter().any(|b| b.is_infinite()) || start.elapsed() < min_time {
        for (i, (_, f)) in fs.iter_mut().enumerate() {
            best[i] = best[i].min(pass(texts, *f));
        }
    }
    fs.iter()
        .zip(best)
        .map(|((name, _), secs)| Throughput {
            name,
            mb_per_s: bytes as f64 / secs / 1e6,
            texts_per_s: texts.len() as f64 / secs,
        })
        .collect()
}

/// The sentences of a paragraph: cut after a sentence terminator followed by a space (CJK full
/// stops need none); pieces without a letter are dropped.
pub fn sentences_of(paragraph: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = paragraph.chars().peekable();
    while let Some(c) = chars.next() {
        cur.push(c);
        let terminator = matches!(c, '.' | '!' | '?' | '。' | '！' | '？' | '؟' | '।' | '۔' | '።' | '။' | '།');
        if terminator && chars.peek().is_none_or(|n| n.is_whitespace() || matches!(c, '。' | '！' | '？')) {
            out.push(std::mem::take(&mut cur));
        }
    }
    out.push(cur);
    out.into_iter().map(|s| s.trim().to_string()).filter(|s| s.chars().any(char::is_alphabetic)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_are_cut_after_terminators() {
        assert_eq!(sentences_of("One two. Three 1.5 four! 12."), ["One two.", "Three 1.5 four!"]);
        assert_eq!(sentences_of("人人生而自由。他们赋有理性"), ["人人生而自由。", "他们赋有理性"]);
    }
}
