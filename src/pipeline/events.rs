//! Progress events of the pipeline, the sinks that receive them, and cancellation.
//!
//! Every document submitted to the [`Pipeline`](super::Pipeline) reports through its own
//! [`ProgressSink`]: page rendered, tokens streamed, page done (with its outcome), document
//! done. Sinks are called from the pipeline's worker threads, so they must be cheap and
//! thread-safe (forward into a channel when in doubt).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::report::{DocumentStatus, PageReport};

/// Identifies one submitted document for the lifetime of a [`Pipeline`](super::Pipeline).
pub type DocId = u64;

/// One progress event.
#[derive(Debug, Clone)]
pub enum Event {
    /// The document was opened; `pages` pages will be recognised (after `--pages`).
    DocumentStarted {
        /// The document.
        doc: DocId,
        /// Its display name.
        name: String,
        /// Pages selected for recognition.
        pages: usize,
    },
    /// A page image is ready and queued for the engine.
    PageRendered {
        /// The document.
        doc: DocId,
        /// 1-based page number in the document.
        page: usize,
        /// Rendered size in pixels.
        width: u32,
        /// Rendered size in pixels.
        height: u32,
        /// Time spent rendering it.
        elapsed: Duration,
    },
    /// The engine streamed one token of a page (only when the engine runs pages one at a time).
    Token {
        /// The document.
        doc: DocId,
        /// 1-based page number.
        page: usize,
        /// Decoded text piece.
        piece: String,
    },
    /// A page finished (recognised, or failed with an error recorded in the report).
    PageDone {
        /// The document.
        doc: DocId,
        /// What happened to the page.
        report: PageReport,
    },
    /// The document finished; its full result goes to the submitter's completion callback.
    DocumentDone {
        /// The document.
        doc: DocId,
        /// Overall status.
        status: DocumentStatus,
        /// Wall time from submission to completion.
        elapsed: Duration,
    },
}

/// Receives progress events.
pub trait ProgressSink: Send + Sync {
    /// Called once per event, from a pipeline thread.
    fn event(&self, event: &Event);
}

impl<F: Fn(&Event) + Send + Sync> ProgressSink for F {
    fn event(&self, event: &Event) {
        self(event)
    }
}

/// A sink that drops every event.
pub struct NoProgress;

impl ProgressSink for NoProgress {
    fn event(&self, _event: &Event) {}
}

/// A shared cancellation flag: cancelling stops rendering, skips queued pages and stops the
/// page being decoded at its next token. Clones share the flag.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A fresh, not-cancelled token.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks everything watching this token to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// The flag itself, as the engine thread watches it ([`crate::engine::CancelFlag`]).
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_token_is_shared_by_clones() {
        let a = CancelToken::new();
        let b = a.clone();
        assert!(!b.is_cancelled());
        a.cancel();
        assert!(b.is_cancelled());
    }
}
