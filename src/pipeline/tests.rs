//! Tests of the pipeline's scheduling with fake engines: events, failures, batching,
//! cancellation, crashes.

use std::io::Cursor;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::engine::{EngineError, EngineInfo, FakeEngine, OcrEngine, PageJob, PageText, TokenSink};

fn png(w: u32, h: u32, shade: u8) -> InputSource {
    let mut out = Vec::new();
    image::RgbImage::from_pixel(w, h, image::Rgb([shade, shade, shade]))
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    InputSource::bytes(out)
}

/// Records every event as a compact string.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl ProgressSink for Recorder {
    fn event(&self, event: &Event) {
        let line = match event {
            Event::DocumentStarted { pages, .. } => format!("started {pages}"),
            Event::PageRendered { page, width, height, .. } => format!("rendered {page} {width}x{height}"),
            Event::Token { .. } => "token".into(),
            Event::PageDone { report, .. } => format!("page {} {:?}", report.page, report.status),
            Event::DocumentDone { status, .. } => format!("done {status:?}"),
        };
        self.0.lock().unwrap().push(line);
    }
}

#[test]
fn recognises_images_with_ordered_events() {
    let pipeline = Pipeline::new(Arc::new(FakeEngine::new()), PipelineConfig::new(2, 1));
    let recorder = Arc::new(Recorder::default());
    let request = DocumentRequest::new("dir/scan.png", png(40, 30, 200)).with_sink(recorder.clone());
    let out = pipeline.run(request).unwrap();
    assert_eq!(out.status, DocumentStatus::Ok);
    assert_eq!(out.page_count, 1);
    assert_eq!(out.pages[0].status, PageStatus::Finished);
    assert!(out.raw_pages[0].contains("# Page 40x30"), "{}", out.raw_pages[0]);
    assert!(out.pages[0].generated_tokens > 0);
    assert_eq!(out.files.len(), 1);
    assert_eq!(out.files[0].path, "scan.raw.txt");
    assert_eq!(out.files[0].bytes, out.raw_pages[0].as_bytes());
    let events = recorder.0.lock().unwrap().clone();
    let tokens = events.iter().filter(|e| *e == "token").count();
    assert_eq!(tokens, out.pages[0].generated_tokens);
    let milestones: Vec<&String> = events.iter().filter(|e| *e != "token").collect();
    assert_eq!(milestones, ["started 1", "rendered 1 40x30", "page 1 Finished", "done Ok"]);
    let stats = pipeline.stats();
    assert_eq!((stats.documents, stats.pages), (1, 1));
    assert_eq!(stats.tokens, out.pages[0].generated_tokens);
    pipeline.shutdown();
}

#[test]
fn a_bad_document_fails_alone() {
    let pipeline = Pipeline::new(Arc::new(FakeEngine::new()), PipelineConfig::new(2, 2));
    let good: Vec<Ticket> =
        (0..4).map(|i| pipeline.submit_ticket(DocumentRequest::new(format!("{i}.png"), png(10 + i, 10, 0)))).collect();
    let bad = pipeline.submit_ticket(DocumentRequest::new("bad.png", InputSource::bytes(b"garbage".to_vec())));
    let err = bad.wait().unwrap_err();
    assert!(matches!(err, DocumentError::Intake(_)), "{err:?}");
    for (i, t) in good.into_iter().enumerate() {
        let out = t.wait().unwrap();
        assert!(out.raw_pages[0].contains(&format!("# Page {}x10", 10 + i)));
    }
    let invalid = pipeline.run(DocumentRequest::new("x.png", png(5, 5, 0)).with_formats(vec![]));
    assert!(matches!(invalid, Err(DocumentError::InvalidRequest(_))));
}

/// Records the size of every engine call; the first call is slow so that pages queue up.
struct BatchProbe {
    sizes: Mutex<Vec<usize>>,
}

impl OcrEngine for BatchProbe {
    fn info(&self) -> EngineInfo {
        FakeEngine::new().info()
    }

    fn recognize(&self, job: &PageJob, sink: &mut dyn TokenSink) -> Result<PageText, EngineError> {
        self.sizes.lock().unwrap().push(1);
        std::thread::sleep(Duration::from_millis(150));
        FakeEngine::new().recognize(job, sink)
    }

    fn recognize_batch(&self, jobs: &[PageJob]) -> Vec<Result<PageText, EngineError>> {
        self.sizes.lock().unwrap().push(jobs.len());
        jobs.iter().map(|j| FakeEngine::new().recognize(j, &mut crate::engine::NoSink)).collect()
    }
}

#[test]
fn pages_of_several_documents_share_engine_batches() {
    let engine = Arc::new(BatchProbe { sizes: Mutex::new(Vec::new()) });
    let pipeline = Pipeline::new(engine.clone(), PipelineConfig::new(2, 4));
    let tickets: Vec<Ticket> =
        (0..6).map(|i| pipeline.submit_ticket(DocumentRequest::new(format!("{i}.png"), png(8, 8 + i, 9)))).collect();
    for (i, t) in tickets.into_iter().enumerate() {
        let out = t.wait().unwrap();
        assert!(out.raw_pages[0].contains(&format!("# Page 8x{}", 8 + i)), "results must stay with their document");
    }
    let sizes = engine.sizes.lock().unwrap().clone();
    assert_eq!(sizes.iter().sum::<usize>(), 6);
    assert!(sizes.iter().all(|&s| s <= 4), "{sizes:?}");
    assert!(sizes.iter().any(|&s| s > 1), "pages queued behind a slow call must be batched: {sizes:?}");
}

#[test]
fn cancellation_stops_a_document() {
    let engine = FakeEngine { token_delay: Duration::from_millis(20), script: None };
    let pipeline = Pipeline::new(Arc::new(engine), PipelineConfig::new(1, 1));
    let cancel = CancelToken::new();
    let trigger = cancel.clone();
    let sink = Arc::new(move |e: &Event| {
        if matches!(e, Event::Token { .. }) {
            trigger.cancel();
        }
    });
    let request = DocumentRequest::new("a.png", png(10, 10, 1)).with_sink(sink).with_cancel(cancel);
    assert_eq!(pipeline.run(request).unwrap_err(), DocumentError::Cancelled);
    let after = pipeline.run(DocumentRequest::new("b.png", png(10, 10, 1))).unwrap();
    assert_eq!(after.status, DocumentStatus::Ok, "the pipeline goes on after a cancellation");
}

/// An engine that panics on pages wider than 50 pixels.
struct Fragile;

impl OcrEngine for Fragile {
    fn info(&self) -> EngineInfo {
        FakeEngine::new().info()
    }

    fn recognize(&self, job: &PageJob, sink: &mut dyn TokenSink) -> Result<PageText, EngineError> {
        assert!(job.image.width() <= 50, "boom");
        FakeEngine::new().recognize(job, sink)
    }
}

#[test]
fn an_engine_panic_fails_the_page_not_the_pipeline() {
    let pipeline = Pipeline::new(Arc::new(Fragile), PipelineConfig::new(1, 1));
    let out = pipeline.run(DocumentRequest::new("wide.png", png(60, 10, 0))).unwrap();
    assert_eq!(out.status, DocumentStatus::Failed);
    assert_eq!(out.pages[0].status, PageStatus::Failed);
    assert!(out.error.as_deref().unwrap().contains("panicked"));
    assert!(out.files.is_empty());
    let ok = pipeline.run(DocumentRequest::new("narrow.png", png(20, 10, 0))).unwrap();
    assert_eq!(ok.status, DocumentStatus::Ok);
}
