//! Live job events read from the shared store, so any API node can stream any job: the
//! job and its committed pages are read again whenever a change notice for the job arrives
//! (`LISTEN`/`NOTIFY`), or after [`super::POLL_FALLBACK`] without one, and whatever is new is
//! sent as the same events a single server sends (`state`, `pages`, `page`, `done`).

use std::collections::HashSet;
use std::sync::Arc;

use axum::response::sse::Event;
use tokio::sync::mpsc;

use crate::server::results;
use crate::server::runner::JobEvent;
use crate::server::store::{JobId, JobState, JobStore};

/// Streams job `id` into `tx` (each event turned into SSE by `sse`) until it is final or the
/// client goes away.
pub async fn follow(store: Arc<dyn JobStore>, id: JobId, tx: mpsc::Sender<Event>, sse: fn(&JobEvent) -> Event) {
    // Subscribe before the first read, so no change falls between the two.
    let mut changes = store.queue().map(|q| q.changes());
    let mut state: Option<JobState> = None;
    let mut count: Option<usize> = None;
    let mut sent: HashSet<usize> = HashSet::new();
    loop {
        let job = match store.job(&id).await {
            Ok(Some(job)) => job,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(job = %id, error = %e, "cannot read a followed job");
                super::wait_change(&mut changes, &id, super::POLL_FALLBACK).await;
                continue;
            }
        };
        if state != Some(job.state) && !job.state.is_final() {
            state = Some(job.state);
            if tx.send(sse(&JobEvent::State { state: job.state })).await.is_err() {
                return;
            }
        }
        if let (None, Some(n)) = (count, job.page_count) {
            count = Some(n);
            if tx.send(sse(&JobEvent::Pages { count: n })).await.is_err() {
                return;
            }
        }
        // Pages committed before the state was read are all here (a job is finished in the
        // transaction of its last page).
        let pages = store.pages(&id).await.unwrap_or_default();
        let new: Vec<_> = pages.into_iter().filter(|p| !sent.contains(&p.index)).collect();
        for p in new {
            sent.insert(p.index);
            let hints = job.options.languages.clone();
            let Ok(page) = tokio::task::spawn_blocking(move || results::page_event(&p, &hints)).await else { return };
            if tx.send(sse(&JobEvent::Page { page })).await.is_err() {
                return;
            }
        }
        if job.state.is_final() {
            let (code, message) = job.error.unzip();
            let _ = tx.send(sse(&JobEvent::Done { state: job.state, code, message })).await;
            return;
        }
        if tx.is_closed() {
            return;
        }
        super::wait_change(&mut changes, &id, super::POLL_FALLBACK).await;
    }
}
