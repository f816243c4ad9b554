//! The page pipeline shared by the batch CLI ([`super::Pipeline`]) and the server
//! ([`crate::server::runner`]): rasterize → encode → schedule → per-page commit.
//!
//! A caller hands [`PageFlow::run`] a document's pages as its source yields them (the
//! rasterizer for the CLI; the server's stored or freshly rendered page images), a page-job
//! template, the document's cancel flag and its [`PageHooks`]. Each rendered page goes to the
//! engine thread (encoder workers, then the token-level scheduler: its tokens stream to
//! [`PageHooks::token`], its cancel flag is checked every step), and each finished page -
//! recognised, failed or cancelled - goes to [`PageHooks::commit`] in completion order, on the
//! engine thread, while later pages are still rendering, encoding and decoding. Structure and
//! languages come after the commit: per page for the server's live events, per document for
//! the CLI's outputs (both through [`crate::doc`]).
//!
//! `window` bounds the pages of one document inside the engine at once (the server uses it so
//! one long document does not fill the engine queue ahead of other jobs); without it the
//! engine queue's back-pressure is the only bound.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::report::{PageReport, PageStatus, StageTimings};
use super::source::RenderedPage;
use super::structure::FinishedPage;
use crate::engine::owner::{CancelFlag, EngineThread, PageRequest, TokenHook};
use crate::engine::{EngineError, PageJob, PageText};

/// A page as its source yields it.
#[derive(Debug, Clone)]
pub struct SourcePage {
    /// Position among the document's selected pages (0-based).
    pub slot: usize,
    /// Page number in the document (1-based).
    pub number: usize,
    /// The render, or why rendering failed.
    pub page: Result<RenderedPage, String>,
    /// Time rendering (or loading) took.
    pub raster: Duration,
}

/// Why a page has no text.
#[derive(Debug)]
pub enum PageFailure {
    /// It could not be rendered.
    Render(String),
    /// The engine failed it, or it was cancelled ([`EngineError::Cancelled`]).
    Engine(EngineError),
}

/// A finished page, as the commit hook receives it.
#[derive(Debug)]
pub struct PageDone {
    /// Position among the document's selected pages.
    pub slot: usize,
    /// Page number in the document (1-based).
    pub number: usize,
    /// The render (None when rendering failed).
    pub page: Option<RenderedPage>,
    /// Time rendering took.
    pub raster: Duration,
    /// The engine's answer.
    pub result: Result<PageText, PageFailure>,
}

impl PageDone {
    /// The page as the CLI's structuring stage and manifest see it.
    pub fn finished(&self) -> FinishedPage {
        let (width, height) = self.page.as_ref().map_or((0, 0), |p| p.image.dimensions());
        let mut report = PageReport {
            page: self.number,
            status: PageStatus::Failed,
            error: None,
            width,
            height,
            prompt_tokens: 0,
            generated_tokens: 0,
            timings: StageTimings { raster: self.raster, ..Default::default() },
        };
        let mut raw = String::new();
        match &self.result {
            Ok(text) => {
                report.status = text.outcome.into();
                report.prompt_tokens = text.prompt_tokens;
                report.generated_tokens = text.generated_tokens;
                report.timings.encode = text.timings.encode;
                report.timings.prefill = text.timings.prefill;
                report.timings.decode = text.timings.decode;
                raw = text.raw.clone();
            }
            Err(PageFailure::Engine(EngineError::Cancelled)) => report.status = PageStatus::Cancelled,
            Err(PageFailure::Engine(e)) => report.error = Some(e.to_string()),
            Err(PageFailure::Render(e)) => report.error = Some(e.clone()),
        }
        FinishedPage { report, raw, page: self.page.clone() }
    }
}

/// Where one document's pages report.
pub trait PageHooks: Send + Sync {
    /// A page was rendered and goes to the engine.
    fn rendered(&self, page: &SourcePage) {
        let _ = page;
    }

    /// A piece of a page's text, as it is generated.
    fn token(&self, slot: usize, number: usize, piece: &str) {
        let _ = (slot, number, piece);
    }

    /// A page is finished: commit it (a manifest slot, a store row, an event).
    fn commit(&self, page: PageDone);
}

/// Counts a document's pages inside the engine, for the `window` bound.
#[derive(Default)]
struct InFlight {
    count: Mutex<usize>,
    changed: Condvar,
}

impl InFlight {
    fn enter(&self, window: Option<usize>) {
        let mut n = self.count.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = window {
            while *n >= w.max(1) {
                n = self.changed.wait(n).unwrap_or_else(|p| p.into_inner());
            }
        }
        *n += 1;
    }

    fn leave(&self) {
        *self.count.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        self.changed.notify_all();
    }

    fn wait_empty(&self) {
        let mut n = self.count.lock().unwrap_or_else(|p| p.into_inner());
        while *n > 0 {
            n = self.changed.wait(n).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// The shared page pipeline over one engine thread; cheap to clone.
#[derive(Clone)]
pub struct PageFlow {
    engine: EngineThread,
}

/// How [`PageFlow::run`] ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// When every page is in the engine (commits still come).
    Submitted,
    /// When every page is committed.
    Committed,
}

impl PageFlow {
    /// A flow feeding `engine`.
    pub fn new(engine: EngineThread) -> Self {
        PageFlow { engine }
    }

    /// The engine thread.
    pub fn engine(&self) -> &EngineThread {
        &self.engine
    }

    /// Runs one document's `pages` (blocking: call it from a worker thread): each rendered
    /// page becomes `template` with its image, and every page ends in `hooks.commit`. Pages
    /// met after `cancel` is set are committed as cancelled without running.
    pub fn run(
        &self,
        pages: impl Iterator<Item = SourcePage>,
        template: &PageJob,
        cancel: &CancelFlag,
        hooks: Arc<dyn PageHooks>,
        window: Option<usize>,
        until: Until,
    ) {
        let in_flight = Arc::new(InFlight::default());
        for source in pages {
            if cancel.load(Ordering::Relaxed) {
                let result = Err(PageFailure::Engine(EngineError::Cancelled));
                let page = source.page.ok();
                hooks.commit(PageDone {
                    slot: source.slot,
                    number: source.number,
                    page,
                    raster: source.raster,
                    result,
                });
                continue;
            }
            let rendered = match &source.page {
                Ok(p) => p.clone(),
                Err(e) => {
                    let result = Err(PageFailure::Render(e.clone()));
                    hooks.commit(PageDone {
                        slot: source.slot,
                        number: source.number,
                        page: None,
                        raster: source.raster,
                        result,
                    });
                    continue;
                }
            };
            hooks.rendered(&source);
            in_flight.enter(window);
            let request = page_request(template, rendered, &source, cancel, hooks.clone(), in_flight.clone());
            if let Err(refused) = self.engine.submit_blocking(*request) {
                (refused.reply)(Err(EngineError::Cancelled));
            }
        }
        if until == Until::Committed {
            in_flight.wait_empty();
        }
    }
}

/// The engine request of one rendered page: tokens to the hooks, the result committed.
fn page_request(
    template: &PageJob,
    page: RenderedPage,
    source: &SourcePage,
    cancel: &CancelFlag,
    hooks: Arc<dyn PageHooks>,
    in_flight: Arc<InFlight>,
) -> Box<PageRequest> {
    let job = PageJob { image: page.image.clone(), ..template.clone() };
    let (slot, number, raster) = (source.slot, source.number, source.raster);
    let token_hooks = hooks.clone();
    let on_token: TokenHook = Box::new(move |piece: &str| token_hooks.token(slot, number, piece));
    Box::new(PageRequest {
        job,
        cancel: cancel.clone(),
        on_token: Some(on_token),
        stream: false,
        reply: Box::new(move |result| {
            let result = result.map_err(PageFailure::Engine);
            hooks.commit(PageDone { slot, number, page: Some(page), raster, result });
            in_flight.leave();
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::owner::NoObserver;
    use crate::engine::FakeEngine;
    use crate::model::PageOutcome;

    /// Records commits and the most pages in flight.
    #[derive(Default)]
    struct Record {
        done: Mutex<Vec<(usize, Result<PageOutcome, String>)>>,
        tokens: Mutex<usize>,
    }

    impl PageHooks for Record {
        fn token(&self, _slot: usize, _number: usize, _piece: &str) {
            *self.tokens.lock().unwrap() += 1;
        }
        fn commit(&self, page: PageDone) {
            let r = page.result.map(|t| t.outcome).map_err(|e| format!("{e:?}"));
            self.done.lock().unwrap().push((page.slot, r));
        }
    }

    fn source(slot: usize, ok: bool) -> SourcePage {
        let image = Arc::new(image::RgbImage::new(16 + slot as u32, 16));
        let page = RenderedPage { image, width_pt: 10.0, height_pt: 10.0, dpi: 72.0 };
        SourcePage {
            slot,
            number: slot + 1,
            page: if ok { Ok(page) } else { Err("bad page".into()) },
            raster: Duration::ZERO,
        }
    }

    #[test]
    fn every_page_is_committed_once_with_render_failures_and_cancellation() {
        let engine = Arc::new(FakeEngine { token_delay: Duration::from_millis(1), script: None });
        let (thread, join) = EngineThread::spawn(engine, 4, 3, Arc::new(NoObserver)).unwrap();
        let flow = PageFlow::new(thread);
        let hooks = Arc::new(Record::default());
        let cancel = CancelFlag::default();
        let pages = (0..6).map(|i| source(i, i != 2));
        flow.run(pages, &PageJob::test_page(), &cancel, hooks.clone(), Some(2), Until::Committed);
        let mut done = hooks.done.lock().unwrap().clone();
        done.sort_by_key(|d| d.0);
        assert_eq!(done.len(), 6);
        assert!(done[2].1.as_ref().is_err_and(|e| e.contains("bad page")));
        assert!(done.iter().filter(|d| d.0 != 2).all(|d| d.1 == Ok(PageOutcome::Finished)));
        assert!(*hooks.tokens.lock().unwrap() > 5);
        // A cancelled document commits its pages as cancelled without running them.
        let cancelled = Arc::new(Record::default());
        cancel.store(true, Ordering::Relaxed);
        flow.run(
            (0..3).map(|i| source(i, true)),
            &PageJob::test_page(),
            &cancel,
            cancelled.clone(),
            None,
            Until::Committed,
        );
        assert_eq!(cancelled.done.lock().unwrap().len(), 3);
        assert!(cancelled.done.lock().unwrap().iter().all(|d| d.1.as_ref().is_err_and(|e| e.contains("Cancelled"))));
        drop(flow);
        join.join().unwrap();
    }
}
