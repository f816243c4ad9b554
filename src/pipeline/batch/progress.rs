//! How a batch run shows progress on stderr: live bars on a terminal (documents, pages,
//! tokens/s, ETA), one plain line per document otherwise, JSON lines for pipelines
//! (`--json-progress`), or nothing (`--quiet`).

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use super::{BatchObserver, BatchSummary, InputFile, ManifestRecord};
use crate::pipeline::{DocId, DocumentStatus, Event, ProgressSink};

/// Which progress display to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// Live bars (stderr is a terminal).
    Bars,
    /// One line per document.
    Lines,
    /// One JSON object per event, per line (token events are summed into page events).
    Json,
    /// Nothing.
    Quiet,
}

/// Most per-document bars shown at once; more documents in flight are only counted.
const MAX_DOCUMENT_BARS: usize = 8;

/// A live per-document bar and its token count.
struct DocBar {
    bar: ProgressBar,
    tokens: usize,
    started: Instant,
}

/// Mutable display state.
struct State {
    total: usize,
    finished: usize,
    tokens: usize,
    bars: HashMap<DocId, DocBar>,
}

/// Progress display of a batch run; an observer to hand to [`run_batch`](super::run_batch).
pub struct BatchProgress {
    mode: ProgressMode,
    multi: MultiProgress,
    overall: ProgressBar,
    started: Instant,
    state: Mutex<State>,
}

impl BatchProgress {
    /// A display in `mode`.
    pub fn new(mode: ProgressMode) -> Self {
        let multi = MultiProgress::with_draw_target(match mode {
            ProgressMode::Bars => ProgressDrawTarget::stderr(),
            _ => ProgressDrawTarget::hidden(),
        });
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template(
                "{prefix:>9.bold} [{bar:30}] {pos}/{len} docs  {msg}  {elapsed_precise} ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        overall.set_prefix("docseek");
        BatchProgress {
            mode,
            multi,
            overall,
            started: Instant::now(),
            state: Mutex::new(State { total: 0, finished: 0, tokens: 0, bars: HashMap::new() }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes one line to stderr without tearing the bars.
    fn line(&self, text: &str) {
        match self.mode {
            ProgressMode::Bars => self.multi.suspend(|| eprintln!("{text}")),
            ProgressMode::Quiet => {}
            _ => {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{text}");
            }
        }
    }

    fn json(&self, value: serde_json::Value) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{value}");
    }

    /// Shows the end-of-run summary.
    pub fn summary(&self, summary: &BatchSummary) {
        self.overall.finish_and_clear();
        match self.mode {
            ProgressMode::Quiet => {}
            ProgressMode::Json => self.json(json!({ "event": "summary", "summary": summary })),
            _ => self.line(&summary_line(summary)),
        }
    }

    fn tokens_per_second(tokens: usize, since: Instant) -> f64 {
        let secs = since.elapsed().as_secs_f64();
        if secs > 0.0 {
            tokens as f64 / secs
        } else {
            0.0
        }
    }
}

/// The one-line summary of a run.
pub fn summary_line(s: &BatchSummary) -> String {
    let wall = s.wall.as_secs_f64().max(1e-9);
    let t = &s.timings;
    format!(
        "{} ok, {} partial, {} failed, {} skipped; {} pages, {} tokens in {:.1} s ({:.2} pages/s, {:.1} tokens/s); \
         stage time: raster {:.1} s, encode {:.1} s, prefill {:.1} s, decode {:.1} s, structure {:.1} s (overlap {:.2}x)",
        s.ok,
        s.partial,
        s.failed,
        s.skipped,
        s.pages,
        s.tokens,
        wall,
        s.pages as f64 / wall,
        s.tokens as f64 / wall,
        secs(t.raster),
        secs(t.encode),
        secs(t.prefill),
        secs(t.decode),
        secs(t.structure),
        s.pipeline.overlap(),
    )
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl ProgressSink for BatchProgress {
    fn event(&self, event: &Event) {
        match self.mode {
            ProgressMode::Quiet | ProgressMode::Lines => {}
            ProgressMode::Json => match event {
                Event::Token { .. } => {}
                Event::DocumentStarted { doc, name, pages } => {
                    self.json(json!({"event": "document_started", "doc": doc, "name": name, "pages": pages}))
                }
                Event::PageRendered { doc, page, width, height, elapsed } => self.json(json!({
                    "event": "page_rendered", "doc": doc, "page": page, "width": width, "height": height,
                    "seconds": elapsed.as_secs_f64()
                })),
                Event::PageDone { doc, report } => {
                    self.json(json!({"event": "page_done", "doc": doc, "report": report}))
                }
                Event::DocumentDone { doc, status, elapsed } => self.json(json!({
                    "event": "document_done", "doc": doc, "status": status, "seconds": elapsed.as_secs_f64()
                })),
            },
            ProgressMode::Bars => {
                let mut state = self.state();
                match event {
                    Event::DocumentStarted { doc, name, pages } if state.bars.len() < MAX_DOCUMENT_BARS => {
                        let bar = self.multi.add(ProgressBar::new(*pages as u64));
                        bar.set_style(
                            ProgressStyle::with_template("  {prefix:40!} [{bar:20}] {pos}/{len} pages  {msg}")
                                .expect("valid template")
                                .progress_chars("=> "),
                        );
                        bar.set_prefix(name.clone());
                        state.bars.insert(*doc, DocBar { bar, tokens: 0, started: Instant::now() });
                    }
                    Event::Token { doc, .. } => {
                        state.tokens += 1;
                        let tokens = state.tokens;
                        if let Some(b) = state.bars.get_mut(doc) {
                            b.tokens += 1;
                            let rate = Self::tokens_per_second(b.tokens, b.started);
                            b.bar.set_message(format!("{} tokens, {rate:.1} tok/s", b.tokens));
                        }
                        let rate = Self::tokens_per_second(tokens, self.started);
                        self.overall.set_message(format!("{tokens} tokens, {rate:.1} tok/s"));
                    }
                    Event::PageDone { doc, report } => {
                        if let Some(b) = state.bars.get_mut(doc) {
                            b.bar.inc(1);
                            if report.generated_tokens > b.tokens {
                                // Batched pages do not stream tokens: count them when done.
                                b.tokens = report.generated_tokens;
                            }
                        }
                    }
                    Event::DocumentDone { doc, .. } => {
                        if let Some(b) = state.bars.remove(doc) {
                            b.bar.finish_and_clear();
                            self.multi.remove(&b.bar);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

impl BatchObserver for BatchProgress {
    fn planned(&self, documents: usize) {
        self.state().total = documents;
        self.overall.set_length(documents as u64);
        if self.mode == ProgressMode::Json {
            self.json(json!({"event": "planned", "documents": documents}));
        }
    }

    fn skipped(&self, input: &InputFile) {
        let (finished, total) = {
            let mut s = self.state();
            s.finished += 1;
            (s.finished, s.total)
        };
        self.overall.inc(1);
        match self.mode {
            ProgressMode::Json => {
                self.json(json!({"event": "skipped", "input": input.rel, "reason": "done in the manifest"}))
            }
            ProgressMode::Lines => {
                self.line(&format!("[{finished}/{total}] skipped {} (done in the manifest)", input.rel.display()))
            }
            _ => {}
        }
    }

    fn recorded(&self, record: &ManifestRecord) {
        let (finished, total) = {
            let mut s = self.state();
            s.finished += 1;
            (s.finished, s.total)
        };
        self.overall.inc(1);
        let tokens: usize = record.pages.iter().map(|p| p.generated_tokens).sum();
        let text = match record.status {
            DocumentStatus::Ok => format!(
                "[{finished}/{total}] ok {}: {} page{}, {tokens} tokens, {:.1} s{}",
                record.input,
                record.pages.len(),
                if record.pages.len() == 1 { "" } else { "s" },
                record.elapsed.as_secs_f64(),
                language_note(record)
            ),
            other => format!(
                "[{finished}/{total}] {} {}: {}",
                match other {
                    DocumentStatus::Partial => "PARTIAL",
                    DocumentStatus::Cancelled => "CANCELLED",
                    _ => "FAILED",
                },
                record.input,
                record.error.as_deref().unwrap_or("unknown error")
            ),
        };
        match self.mode {
            ProgressMode::Json => self.json(json!({"event": "recorded", "record": record})),
            ProgressMode::Lines => self.line(&text),
            ProgressMode::Bars if record.status != DocumentStatus::Ok => self.line(&text),
            _ => {}
        }
    }
}

/// `, languages eng 80%, fra 20%` (empty when none was detected).
fn language_note(record: &ManifestRecord) -> String {
    if record.languages.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = record.languages.iter().map(|l| format!("{} {:.0}%", l.tag, l.share * 100.0)).collect();
    format!(", languages {}", parts.join(", "))
}
