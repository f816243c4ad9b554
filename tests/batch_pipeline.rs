//! The pipeline library API on real PDFs (rasterizer worker = the built `docseek` binary):
//! stages overlap (the next pages render while the engine decodes), per-page events and
//! outcomes, stage timings, and a crash-isolated bad PDF failing alone.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use docseek::engine::FakeEngine;
use docseek::options::OcrOptions;
use docseek::pdf::{Rasterizer, RasterizerConfig};
use docseek::pipeline::{
    DocumentError, DocumentRequest, DocumentStatus, Event, InputSource, OutputFormat, PageStatus, Pipeline,
    PipelineConfig, ProgressSink,
};

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples").join(name)
}

fn pipeline(engine: FakeEngine, jobs: usize) -> Pipeline {
    let config = RasterizerConfig {
        worker_exe: Some(env!("CARGO_BIN_EXE_docseek").into()),
        workers: jobs,
        ..Default::default()
    };
    Pipeline::with_rasterizer(Arc::new(engine), PipelineConfig::new(jobs, 1), Rasterizer::new(config))
}

/// Low dpi: quick in the unoptimised test build.
fn options() -> OcrOptions {
    OcrOptions { dpi: 36.0, ..Default::default() }
}

#[derive(Default)]
struct Timeline(Mutex<Vec<String>>);

impl ProgressSink for Timeline {
    fn event(&self, event: &Event) {
        let line = match event {
            Event::PageRendered { page, .. } => format!("rendered {page}"),
            Event::PageDone { report, .. } => format!("done {}", report.page),
            _ => return,
        };
        self.0.lock().unwrap().push(line);
    }
}

#[test]
fn next_pages_render_while_the_engine_decodes() {
    let slow = FakeEngine { token_delay: Duration::from_millis(20), script: None };
    let pipeline = pipeline(slow, 1);
    let timeline = Arc::new(Timeline::default());
    let request = DocumentRequest::new("paper.pdf", InputSource::path(sample("en_tracemonkey_p1-3.pdf")))
        .with_options(options())
        .with_formats(vec![OutputFormat::Raw])
        .with_sink(timeline.clone());
    let out = pipeline.run(request).unwrap();
    assert_eq!(out.status, DocumentStatus::Ok);
    assert_eq!(out.page_count, 3);
    let pages: Vec<(usize, PageStatus)> = out.pages.iter().map(|p| (p.page, p.status)).collect();
    assert_eq!(pages, [(1, PageStatus::Finished), (2, PageStatus::Finished), (3, PageStatus::Finished)]);
    assert!(out.raw_pages.iter().all(|t| t.contains("# Page 306x396")), "{:?}", out.raw_pages);
    let events = timeline.0.lock().unwrap().clone();
    let at = |e: &str| events.iter().position(|x| x == e).unwrap_or_else(|| panic!("{e} missing: {events:?}"));
    assert!(at("rendered 3") < at("done 1"), "page 3 renders while page 1 decodes: {events:?}");
    assert!(out.timings.raster > Duration::ZERO && out.timings.decode > Duration::ZERO);
    let stats = pipeline.stats();
    assert_eq!((stats.documents, stats.pages), (1, 3));
    assert!(stats.engine_busy >= Duration::from_millis(20 * 20), "{stats:?}");
}

#[test]
fn a_bad_pdf_fails_alone_and_pages_select() {
    let pipeline = pipeline(FakeEngine::new(), 2);
    let corrupt = pipeline.submit_ticket(
        DocumentRequest::new("bad.pdf", InputSource::bytes(b"%PDF-1.7\nnot really".to_vec())).with_options(options()),
    );
    let selected = OcrOptions { pages: Some("2-3".parse().unwrap()), ..options() };
    let good = pipeline.submit_ticket(
        DocumentRequest::new("paper.pdf", InputSource::path(sample("en_tracemonkey_p1-3.pdf"))).with_options(selected),
    );
    match corrupt.wait() {
        Err(DocumentError::Intake(e)) => assert!(e.is_bad_input(), "{e}"),
        other => panic!("expected an intake error, got {other:?}"),
    }
    let out = good.wait().unwrap();
    assert_eq!(out.page_count, 3);
    assert_eq!(out.pages.iter().map(|p| p.page).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(out.files[0].path, "paper.raw.txt");
}
