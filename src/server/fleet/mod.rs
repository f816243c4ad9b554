//! Scale-out: API nodes and workers sharing one PostgreSQL store and one blob store.
//!
//! ```text
//!   client ─► docseek serve (API node) ─┐                     ┌─ docseek worker (engine)
//!   client ─► docseek serve (API node) ─┼─► PostgreSQL ◄──────┼─ docseek worker (engine)
//!                                       └─► S3 (uploads, ◄────┘   leases items, renders,
//!                                            page images)          recognises, commits
//! ```
//!
//! An API node stores the upload and queues the job's document ([`crate::server::store::WorkQueue`]).
//! A [`worker::PageWorker`] (in `docseek worker`, or in `docseek serve` unless `--api-only`)
//! leases the document, rasterizes it into page images and queues one item per page; workers
//! then lease pages, recognise them on their engine and commit each result once. Progress and
//! events are read back from the store ([`events`]), woken by `LISTEN`/`NOTIFY` with a polling
//! fallback, so every API node answers for every job.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use crate::engine::{EngineError, EngineInfo, OcrEngine, PageJob, PageText, TokenSink};
use crate::server::runner::JobEvent;
use crate::server::store::{JobId, JobStore};

pub mod events;
pub mod worker;

/// How long a watcher waits for a change notice before it reads the store anyway (the
/// fallback when a notice was missed, e.g. while the listener reconnected).
pub const POLL_FALLBACK: Duration = Duration::from_secs(1);

/// The engine of an API node that runs none (`docseek serve --api-only`): every page is
/// refused with a clear error, so only the synchronous model endpoints are affected (jobs go
/// to the workers).
#[derive(Debug, Default, Clone)]
pub struct ApiOnlyEngine;

impl OcrEngine for ApiOnlyEngine {
    fn info(&self) -> EngineInfo {
        EngineInfo {
            model: "none (api-only node)".into(),
            architecture: "none".into(),
            device: "none".into(),
            dtype: "none".into(),
        }
    }

    fn recognize(&self, _job: &PageJob, _sink: &mut dyn TokenSink) -> Result<PageText, EngineError> {
        Err(EngineError::Model("this API node runs no engine (--api-only); submit a job instead".into()))
    }
}

/// Waits until `changes` reports job `id` (or anything, after a lag) or `timeout` passes.
pub async fn wait_change(changes: &mut Option<broadcast::Receiver<JobId>>, id: &JobId, timeout: Duration) {
    let Some(rx) = changes.as_mut() else {
        tokio::time::sleep(timeout).await;
        return;
    };
    let _ = tokio::time::timeout(timeout, async {
        loop {
            match rx.recv().await {
                Ok(changed) if &changed == id => return,
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(_)) => return,
                Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    })
    .await;
}

/// Follows a queued job in the shared store and sends its final [`JobEvent::Done`] (what a
/// synchronous request waits for); stops when every receiver is gone.
pub fn watch(store: Arc<dyn JobStore>, id: JobId) -> broadcast::Receiver<JobEvent> {
    let (tx, rx) = broadcast::channel(4);
    let mut changes = store.queue().map(|q| q.changes());
    tokio::spawn(async move {
        loop {
            if tx.receiver_count() == 0 {
                return;
            }
            match store.job(&id).await {
                Ok(Some(job)) if job.state.is_final() => {
                    let (code, message) = job.error.unzip();
                    let _ = tx.send(JobEvent::Done { state: job.state, code, message });
                    return;
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    let _ = tx.send(JobEvent::Done {
                        state: crate::server::store::JobState::Cancelled,
                        code: None,
                        message: Some("the job was deleted".into()),
                    });
                    return;
                }
                Err(e) => tracing::warn!(job = %id, error = %e, "cannot read a watched job"),
            }
            wait_change(&mut changes, &id, POLL_FALLBACK).await;
        }
    });
    rx
}
