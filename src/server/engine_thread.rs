//! The server's handle on the shared engine thread ([`crate::engine::EngineThread`]): async
//! calls with a oneshot reply, an optional token stream, and the Prometheus metrics of the
//! engine queue (depth, batch sizes, page latency, tokens, failures).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::engine::owner::{EngineObserver, EngineThread, PageRequest, TokenHook};
use crate::engine::{EngineError, EngineInfo, OcrEngine, PageJob, PageText};
use crate::server::metrics;

pub use crate::engine::CancelFlag;

/// Feeds the server's metrics from the engine thread.
struct EngineMetrics;

impl EngineObserver for EngineMetrics {
    fn dequeued(&self, pages: usize) {
        metrics::global().engine_queue_depth.fetch_sub(pages as u64, Ordering::Relaxed);
    }

    fn batch_done(&self, pages: usize, _busy: Duration) {
        metrics::global().batch_size.observe(pages as f64);
    }

    fn page_done(&self, result: &Result<PageText, EngineError>, latency: Duration) {
        let m = metrics::global();
        match result {
            Ok(text) => m.page_done(text.generated_tokens as u64, latency),
            Err(EngineError::Cancelled) => {}
            Err(_) => {
                m.page_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The handle requests use to reach the engine thread.
#[derive(Clone)]
pub struct EngineHandle {
    thread: EngineThread,
}

impl EngineHandle {
    /// Starts the engine thread with a queue of `capacity` pages and batches of up to
    /// `max_batch`.
    pub fn spawn(engine: Arc<dyn OcrEngine>, capacity: usize, max_batch: usize) -> std::io::Result<Self> {
        // The thread ends with the last handle; nothing joins it.
        let (thread, _join) = EngineThread::spawn(engine, capacity, max_batch, Arc::new(EngineMetrics))?;
        Ok(EngineHandle { thread })
    }

    /// What the engine is.
    pub fn info(&self) -> &EngineInfo {
        self.thread.info()
    }

    /// Recognises one page, waiting for queue space (back-pressure) and the result; with
    /// `stream`, the page runs alone and its text pieces are sent there as they come.
    pub async fn recognize(
        &self,
        job: PageJob,
        cancel: CancelFlag,
        stream: Option<mpsc::UnboundedSender<String>>,
    ) -> Result<PageText, EngineError> {
        let (reply, rx) = oneshot::channel();
        let streaming = stream.is_some();
        let on_token = stream.map(|tx| -> TokenHook {
            Box::new(move |piece: &str| {
                let _ = tx.send(piece.to_string());
            })
        });
        let request = PageRequest {
            job,
            cancel,
            on_token,
            stream: streaming,
            reply: Box::new(move |result| {
                let _ = reply.send(result);
            }),
        };
        let depth = &metrics::global().engine_queue_depth;
        depth.fetch_add(1, Ordering::Relaxed);
        if self.thread.submit(request).await.is_err() {
            depth.fetch_sub(1, Ordering::Relaxed);
            return Err(EngineError::Model("the engine thread has stopped".into()));
        }
        rx.await.unwrap_or_else(|_| Err(EngineError::Model("the engine thread dropped the page".into())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::FakeEngine;

    fn page() -> PageJob {
        PageJob::test_page()
    }

    #[tokio::test]
    async fn streams_cancels_and_counts() {
        let handle = EngineHandle::spawn(Arc::new(FakeEngine::new()), 4, 4).unwrap();
        let before = metrics::global().batch_size.count();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let out = handle.recognize(page(), Arc::default(), Some(tx)).await.unwrap();
        let mut streamed = String::new();
        while let Ok(p) = rx.try_recv() {
            streamed.push_str(&p);
        }
        assert_eq!(streamed, out.raw);
        let cancelled: CancelFlag = Arc::new(std::sync::atomic::AtomicBool::new(true));
        assert!(matches!(handle.recognize(page(), cancelled, None).await, Err(EngineError::Cancelled)));
        assert!(metrics::global().batch_size.count() > before);
    }
}
