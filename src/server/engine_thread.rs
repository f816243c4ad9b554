//! The server's handle on the shared engine thread ([`crate::engine::EngineThread`]): async
//! calls with a oneshot reply, an optional token stream, the shared page pipeline for jobs
//! ([`crate::pipeline::pages::PageFlow`]), and the Prometheus metrics of the engine queue
//! (depth, pages per step, page latency, tokens, failures).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::engine::owner::{EngineConfig, EngineObserver, EngineThread, PageRequest, TokenHook};
use crate::engine::{EngineError, EngineInfo, OcrEngine, PageJob, PageText};
use crate::pipeline::pages::PageFlow;
use crate::server::config::ServerConfig;
use crate::server::metrics;

pub use crate::engine::CancelFlag;

/// Feeds the server's metrics from the engine thread.
struct EngineMetrics;

impl EngineObserver for EngineMetrics {
    fn enqueued(&self, pages: usize) {
        metrics::global().engine_queue_depth.fetch_add(pages as u64, Ordering::Relaxed);
    }

    fn dequeued(&self, pages: usize) {
        metrics::global().engine_queue_depth.fetch_sub(pages as u64, Ordering::Relaxed);
    }

    fn batch_done(&self, pages: usize, _busy: Duration) {
        let m = metrics::global();
        m.batch_size.observe(pages as f64);
        m.engine_steps.fetch_add(1, Ordering::Relaxed);
        m.engine_step_pages.store(pages as u64, Ordering::Relaxed);
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
        Self::spawn_with(engine, EngineConfig::new(capacity, max_batch))
    }

    /// Starts the engine thread as the server's settings say (queue, batch, KV budget).
    pub fn for_server(engine: Arc<dyn OcrEngine>, config: &ServerConfig) -> std::io::Result<Self> {
        let engine_config = EngineConfig {
            kv_cache_bytes: config.kv_cache_mb.map(|mb| mb << 20),
            ..EngineConfig::new(config.engine_queue_pages, config.max_batch)
        };
        Self::spawn_with(engine, engine_config)
    }

    /// Starts the engine thread with `config`.
    pub fn spawn_with(engine: Arc<dyn OcrEngine>, config: EngineConfig) -> std::io::Result<Self> {
        // The thread ends with the last handle; nothing joins it.
        let (thread, _join) = EngineThread::spawn_with(engine, config, Arc::new(EngineMetrics))?;
        Ok(EngineHandle { thread })
    }

    /// The shared page pipeline over this engine thread (jobs run their pages through it).
    pub fn page_flow(&self) -> PageFlow {
        PageFlow::new(self.thread.clone())
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
        if self.thread.submit(request).await.is_err() {
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
