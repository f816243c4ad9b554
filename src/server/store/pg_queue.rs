//! The page-level work queue on PostgreSQL ([`WorkQueue`] for [`PgStore`]).
//!
//! An item is a job's document (`idx = -1`, to rasterize) or one of its pages. Leasing takes
//! `ready` items and items whose lease deadline passed, `FOR UPDATE SKIP LOCKED`, so workers
//! never wait on each other; a heartbeat moves the deadline on while the worker lives. A result
//! is committed only by the lease that holds the item (same worker, same attempt), in the
//! transaction that marks the item done, so a page is committed exactly once however often it
//! was leased. Lock order in every transaction: the item first, then its job row; the job row
//! lock serialises the "was that the last page?" check, so exactly one commit finishes a job.

use std::time::Duration;

use tokio_postgres::GenericClient;

use super::postgres::{insert_job, insert_page, notify, PgStore};
use super::{
    now_ms, FailOutcome, JobId, JobRecord, Lease, PageMeta, PageRecord, QueueStats, StoreError, WorkQueue, WorkerStatus,
};

/// The `idx` of a job's document item.
const DOCUMENT: i32 = -1;
/// Workers listed in the stats: those seen within this many seconds.
const WORKER_STATS_WINDOW_S: f64 = 3600.0;

fn idx(lease: &Lease) -> i32 {
    lease.page.map_or(DOCUMENT, |p| p as i32)
}

/// Locks the job row; returns its state, or `None` when the job is gone.
async fn lock_job(client: &impl GenericClient, id: &str) -> Result<Option<String>, StoreError> {
    Ok(client.query_opt("SELECT state FROM jobs WHERE id = $1 FOR UPDATE", &[&id]).await?.map(|r| r.get(0)))
}

/// Marks the job done when it has a page count and no item left to do (the job row must be
/// locked by the caller, so two last pages cannot both miss it).
async fn finish_if_complete(client: &impl GenericClient, id: &str) -> Result<(), StoreError> {
    client
        .execute(
            "UPDATE jobs SET state = 'done', finished_ms = $2
             WHERE id = $1 AND state IN ('queued', 'running') AND page_count IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM work_items WHERE job_id = $1 AND state IN ('ready', 'leased'))",
            &[&id, &now_ms()],
        )
        .await?;
    Ok(())
}

/// A failed page as committed when its item is given up on.
fn failed_page(index: usize, meta: Option<PageMeta>, reason: &str) -> PageRecord {
    let meta = meta.unwrap_or(PageMeta { page_number: index + 1, width: 0, height: 0, width_pt: 0.0, height_pt: 0.0 });
    PageRecord {
        index,
        page_number: meta.page_number,
        width: meta.width,
        height: meta.height,
        width_pt: meta.width_pt,
        height_pt: meta.height_pt,
        raw: None,
        outcome: None,
        tokens: 0,
        prompt_tokens: 0,
        timings: Default::default(),
        error: Some(reason.to_string()),
    }
}

/// Gives up on an item whose attempts are spent (the item row is locked by the caller):
/// commits a failed page, or fails the job for a document, then finishes the job if that was
/// its last item.
async fn give_up(
    client: &impl GenericClient,
    job: &str,
    idx: i32,
    meta: Option<&str>,
    code: &str,
    reason: &str,
    worker: Option<&str>,
) -> Result<(), StoreError> {
    client
        .execute(
            "UPDATE work_items SET state = 'failed', worker = NULL, lease_until = NULL, last_error = $3
             WHERE job_id = $1 AND idx = $2",
            &[&job, &idx, &reason],
        )
        .await?;
    let state = lock_job(client, job).await?;
    let id = JobId(job.to_string());
    if state.as_deref().is_some_and(|s| s == "queued" || s == "running") {
        if idx == DOCUMENT {
            client
                .execute(
                    "UPDATE jobs SET state = 'failed', error_code = $2, error_message = $3, finished_ms = $4 WHERE id = $1",
                    &[&job, &code, &reason, &now_ms()],
                )
                .await?;
        } else {
            let meta = meta.and_then(|m| serde_json::from_str(m).ok());
            insert_page(client, &id, &failed_page(idx as usize, meta, reason), worker, None).await?;
            if let Some(w) = worker {
                client.execute("UPDATE workers SET pages_failed = pages_failed + 1 WHERE id = $1", &[&w]).await?;
            }
            finish_if_complete(client, job).await?;
        }
    }
    notify(client, &id).await
}

#[async_trait::async_trait]
impl WorkQueue for PgStore {
    async fn submit(&self, job: &JobRecord) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        insert_job(&*tx, job).await?;
        tx.execute(
            "INSERT INTO work_items(job_id, idx, max_attempts) VALUES ($1, $2, $3)",
            &[&job.id.as_str(), &DOCUMENT, &self.max_attempts],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn lease(&self, worker: &str, max: usize, lease: Duration) -> Result<Vec<Lease>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Items whose last lease expired with no attempt left are given up on, not re-leased.
        let spent = tx
            .query(
                "SELECT job_id, idx, meta, attempts, last_error FROM work_items
                 WHERE state = 'leased' AND lease_until < now() AND attempts >= max_attempts
                 FOR UPDATE SKIP LOCKED",
                &[],
            )
            .await?;
        for row in &spent {
            let (job, idx, attempts): (&str, i32, i32) = (row.get(0), row.get(1), row.get(3));
            let last: Option<&str> = row.get(4);
            let reason = match last {
                Some(e) => {
                    format!("gave up after {attempts} attempts (the last worker stopped answering); earlier: {e}")
                }
                None => format!("gave up after {attempts} attempts (the last worker stopped answering)"),
            };
            give_up(&*tx, job, idx, row.get(2), "worker_lost", &reason, None).await?;
        }
        let rows = tx
            .query(
                "UPDATE work_items w
                 SET state = 'leased', worker = $1, attempts = w.attempts + 1,
                     lease_until = now() + make_interval(secs => $3),
                     last_error = CASE WHEN w.state = 'leased'
                         THEN coalesce(w.last_error || '; ', '') || 'lease of attempt ' || w.attempts || ' expired'
                         ELSE w.last_error END
                 FROM (SELECT job_id, idx FROM work_items
                       WHERE state = 'ready' OR (state = 'leased' AND lease_until < now())
                       ORDER BY queued_at, idx
                       LIMIT $2
                       FOR UPDATE SKIP LOCKED) picked
                 WHERE w.job_id = picked.job_id AND w.idx = picked.idx
                 RETURNING w.job_id, w.idx, w.attempts, w.meta",
                &[&worker, &(max as i64), &lease.as_secs_f64()],
            )
            .await?;
        tx.commit().await?;
        Ok(rows
            .iter()
            .map(|r| {
                let idx: i32 = r.get(1);
                Lease {
                    job: JobId(r.get(0)),
                    page: (idx >= 0).then_some(idx as usize),
                    attempt: r.get::<_, i32>(2) as u32,
                    meta: r.get::<_, Option<&str>>(3).and_then(|m| serde_json::from_str(m).ok()),
                }
            })
            .collect())
    }

    async fn heartbeat(&self, worker: &str, role: &str, lease: Duration) -> Result<u64, StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO workers(id, role) VALUES ($1, $2)
                 ON CONFLICT (id) DO UPDATE SET last_seen = now(), stopped = false",
                &[&worker, &role],
            )
            .await?;
        let held = client
            .execute(
                "UPDATE work_items SET lease_until = now() + make_interval(secs => $2) WHERE worker = $1 AND state = 'leased'",
                &[&worker, &lease.as_secs_f64()],
            )
            .await?;
        Ok(held)
    }

    async fn add_pages(&self, worker: &str, lease: &Lease, pages: &[PageMeta]) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let job = lease.job.as_str();
        let held = tx
            .execute(
                "UPDATE work_items SET state = 'done', worker = NULL, lease_until = NULL
                 WHERE job_id = $1 AND idx = $2 AND state = 'leased' AND worker = $3 AND attempts = $4",
                &[&job, &DOCUMENT, &worker, &(lease.attempt as i32)],
            )
            .await?;
        if held == 0 {
            return Ok(false);
        }
        if lock_job(&*tx, job).await?.is_some_and(|s| s == "queued" || s == "running") {
            tx.execute(
                "UPDATE jobs SET page_count = $2, state = 'running' WHERE id = $1",
                &[&job, &(pages.len() as i32)],
            )
            .await?;
            let indices: Vec<i32> = (0..pages.len() as i32).collect();
            let metas: Vec<String> = pages.iter().map(|p| serde_json::to_string(p).unwrap_or_default()).collect();
            tx.execute(
                "INSERT INTO work_items(job_id, idx, max_attempts, meta)
                 SELECT $1, i, $2, m FROM unnest($3::integer[], $4::text[]) AS t(i, m)
                 ON CONFLICT (job_id, idx) DO NOTHING",
                &[&job, &self.max_attempts, &indices, &metas],
            )
            .await?;
            finish_if_complete(&*tx, job).await?;
        }
        notify(&*tx, &lease.job).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn complete(&self, worker: &str, lease: &Lease, page: &PageRecord) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let job = lease.job.as_str();
        let held = tx
            .execute(
                "UPDATE work_items SET state = 'done', worker = NULL, lease_until = NULL
                 WHERE job_id = $1 AND idx = $2 AND state = 'leased' AND worker = $3 AND attempts = $4",
                &[&job, &idx(lease), &worker, &(lease.attempt as i32)],
            )
            .await?;
        if held == 0 {
            return Ok(false);
        }
        let live = lock_job(&*tx, job).await?.is_some_and(|s| s == "queued" || s == "running");
        let committed = live && insert_page(&*tx, &lease.job, page, Some(worker), Some(lease.attempt as i32)).await?;
        if committed {
            tx.execute("UPDATE workers SET pages_done = pages_done + 1 WHERE id = $1", &[&worker]).await?;
            finish_if_complete(&*tx, job).await?;
            notify(&*tx, &lease.job).await?;
        }
        tx.commit().await?;
        Ok(committed)
    }

    async fn fail(
        &self,
        worker: &str,
        lease: &Lease,
        code: &str,
        reason: &str,
        retry: bool,
    ) -> Result<FailOutcome, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let job = lease.job.as_str();
        let row = tx
            .query_opt(
                "SELECT attempts, max_attempts, meta FROM work_items
                 WHERE job_id = $1 AND idx = $2 AND state = 'leased' AND worker = $3 AND attempts = $4
                 FOR UPDATE",
                &[&job, &idx(lease), &worker, &(lease.attempt as i32)],
            )
            .await?;
        let Some(row) = row else { return Ok(FailOutcome::LeaseLost) };
        let (attempts, max): (i32, i32) = (row.get(0), row.get(1));
        let outcome = if retry && attempts < max {
            tx.execute(
                "UPDATE work_items SET state = 'ready', worker = NULL, lease_until = NULL, last_error = $3
                 WHERE job_id = $1 AND idx = $2",
                &[&job, &idx(lease), &reason],
            )
            .await?;
            FailOutcome::Retry
        } else {
            give_up(&*tx, job, idx(lease), row.get(2), code, reason, Some(worker)).await?;
            FailOutcome::GaveUp
        };
        tx.commit().await?;
        Ok(outcome)
    }

    async fn waiting_jobs(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let n: i64 = client.query_one("SELECT count(*) FROM jobs WHERE state = 'queued'", &[]).await?.get(0);
        Ok(n as u64)
    }

    async fn release(&self, worker: &str) -> Result<u64, StoreError> {
        let client = self.client().await?;
        // The attempt is given back: a clean shutdown is not the page's fault.
        let n = client
            .execute(
                "UPDATE work_items SET state = 'ready', worker = NULL, lease_until = NULL, attempts = greatest(attempts - 1, 0)
                 WHERE worker = $1 AND state = 'leased'",
                &[&worker],
            )
            .await?;
        client.execute("UPDATE workers SET stopped = true, last_seen = now() WHERE id = $1", &[&worker]).await?;
        Ok(n)
    }

    async fn cancel(&self, id: &JobId) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Items before the job row, as everywhere.
        tx.execute(
            "UPDATE work_items SET state = 'failed', worker = NULL, lease_until = NULL, last_error = 'cancelled'
             WHERE job_id = $1 AND state = 'ready'",
            &[&id.as_str()],
        )
        .await?;
        let n = tx
            .execute(
                "UPDATE jobs SET state = 'cancelled', finished_ms = $2 WHERE id = $1 AND state IN ('queued', 'running')",
                &[&id.as_str(), &now_ms()],
            )
            .await?;
        notify(&*tx, id).await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    fn changes(&self) -> tokio::sync::broadcast::Receiver<JobId> {
        self.changes.subscribe()
    }

    async fn stats(&self) -> Result<QueueStats, StoreError> {
        let client = self.client().await?;
        let mut stats = QueueStats::default();
        for r in client
            .query("SELECT state, count(*), coalesce(sum(greatest(attempts - 1, 0)), 0)::bigint FROM work_items GROUP BY state", &[])
            .await?
        {
            let n = r.get::<_, i64>(1) as u64;
            stats.retries += r.get::<_, i64>(2) as u64;
            match r.get::<_, &str>(0) {
                "ready" => stats.ready = n,
                "leased" => stats.leased = n,
                "done" => stats.done = n,
                _ => stats.failed = n,
            }
        }
        let rows = client
            .query(
                "SELECT w.id, w.role, w.pages_done, w.pages_failed, extract(epoch FROM now() - w.last_seen)::float8, w.stopped,
                        (SELECT count(*) FROM work_items i WHERE i.worker = w.id AND i.state = 'leased')
                 FROM workers w WHERE w.last_seen > now() - make_interval(secs => $1) ORDER BY w.id",
                &[&WORKER_STATS_WINDOW_S],
            )
            .await?;
        stats.workers = rows
            .iter()
            .map(|r| WorkerStatus {
                id: r.get(0),
                role: r.get(1),
                pages_done: r.get::<_, i64>(2) as u64,
                pages_failed: r.get::<_, i64>(3) as u64,
                seen_s_ago: r.get(4),
                stopped: r.get(5),
                leased: r.get::<_, i64>(6) as u64,
            })
            .collect();
        Ok(stats)
    }
}
