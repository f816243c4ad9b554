//! The shared job store on PostgreSQL (`--store postgres://user:pass@host:port/db`): jobs,
//! committed pages, the page-level work queue ([`super::pg_queue`]) and job-change events
//! (`LISTEN`/`NOTIFY` on [`CHANGES_CHANNEL`]), for a fleet of API nodes and workers.
//!
//! Connections come from a small `deadpool-postgres` pool. The schema is versioned: each file
//! of `migrations/` is applied once, in order, in a transaction holding an advisory lock (so
//! nodes starting together do not race), and recorded in `docseek_schema`. Connections are
//! plain TCP (`NoTls`): reach the server over a trusted network or a local TLS proxy.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures_util::StreamExt;
use tokio::sync::broadcast;
use tokio_postgres::{AsyncMessage, NoTls, Row};

use super::{duration_ms, millis, now_ms, JobId, JobRecord, JobState, JobStore, PageRecord, StoreError, WorkQueue};
use crate::engine::PageTimings;

/// The schema migrations, in order: (version, SQL).
const MIGRATIONS: [(i32, &str); 1] = [(1, include_str!("migrations/0001_jobs_pages_queue.sql"))];
/// Advisory lock key taken while migrating ("docseek" in ASCII).
const MIGRATION_LOCK: i64 = 0x64_6f63_7365_656b;
/// The `NOTIFY` channel whose payload is the id of a job that changed.
pub const CHANGES_CHANNEL: &str = "docseek_jobs";
/// Connections per process.
const POOL_SIZE: usize = 16;
/// Job-change notices buffered per subscriber.
const CHANGES_BUFFER: usize = 4096;
/// Pause before the change listener reconnects.
const LISTEN_RETRY: Duration = Duration::from_secs(1);
/// Attempts per work item before it is given up on.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// Jobs, pages and the work queue in PostgreSQL.
pub struct PgStore {
    pub(super) pool: Pool,
    pub(super) changes: broadcast::Sender<JobId>,
    pub(super) max_attempts: i32,
    listener: tokio::task::JoinHandle<()>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

pub(super) const JOB_COLUMNS: &str =
    "id, created_ms, state, filename, media, options, webhook, page_count, error_code, error_message, finished_ms, ephemeral";

pub(super) fn row_to_job(row: &Row) -> JobRecord {
    let code: Option<String> = row.get(8);
    let message: Option<String> = row.get(9);
    JobRecord {
        id: JobId(row.get(0)),
        created_ms: row.get(1),
        state: JobState::parse(row.get(2)),
        filename: row.get(3),
        media: row.get(4),
        options: serde_json::from_str(row.get(5)).unwrap_or_default(),
        webhook: row.get(6),
        page_count: row.get::<_, Option<i32>>(7).map(|n| n as usize),
        error: code.map(|c| (c, message.unwrap_or_default())),
        finished_ms: row.get(10),
        ephemeral: row.get(11),
    }
}

const PAGE_COLUMNS: &str = "idx, page_number, width, height, width_pt, height_pt, raw, outcome, tokens, prompt_tokens,
    encode_ms, prefill_ms, decode_ms, error";

fn row_to_page(r: &Row) -> PageRecord {
    PageRecord {
        index: r.get::<_, i32>(0) as usize,
        page_number: r.get::<_, i32>(1) as usize,
        width: r.get::<_, i32>(2) as u32,
        height: r.get::<_, i32>(3) as u32,
        width_pt: r.get(4),
        height_pt: r.get(5),
        raw: r.get(6),
        outcome: r.get(7),
        tokens: r.get::<_, i32>(8) as usize,
        prompt_tokens: r.get::<_, i32>(9) as usize,
        timings: PageTimings {
            encode: duration_ms(r.get(10)),
            prefill: duration_ms(r.get(11)),
            decode: duration_ms(r.get(12)),
        },
        error: r.get(13),
    }
}

/// Inserts a page row unless the page is already committed; returns whether it was written.
pub(super) async fn insert_page(
    client: &impl tokio_postgres::GenericClient,
    id: &JobId,
    page: &PageRecord,
    worker: Option<&str>,
    attempt: Option<i32>,
) -> Result<bool, StoreError> {
    let n = client
        .execute(
            "INSERT INTO pages(job_id, idx, page_number, width, height, width_pt, height_pt, raw, outcome, tokens,
                 prompt_tokens, encode_ms, prefill_ms, decode_ms, error, worker, attempt)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
             ON CONFLICT (job_id, idx) DO NOTHING",
            &[
                &id.as_str(),
                &(page.index as i32),
                &(page.page_number as i32),
                &(page.width as i32),
                &(page.height as i32),
                &page.width_pt,
                &page.height_pt,
                &page.raw,
                &page.outcome,
                &(page.tokens as i32),
                &(page.prompt_tokens as i32),
                &millis(page.timings.encode),
                &millis(page.timings.prefill),
                &millis(page.timings.decode),
                &page.error,
                &worker,
                &attempt,
            ],
        )
        .await?;
    Ok(n == 1)
}

impl PgStore {
    /// Connects, applies pending migrations and starts listening for job changes.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let config = tokio_postgres::Config::from_str(url).map_err(|e| StoreError::Invalid(format!("--store: {e}")))?;
        let manager =
            Manager::from_config(config.clone(), NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager).max_size(POOL_SIZE).build().map_err(|e| StoreError::Pool(e.to_string()))?;
        migrate(&pool).await?;
        let (changes, _) = broadcast::channel(CHANGES_BUFFER);
        let listener = tokio::spawn(listen(config, changes.clone()));
        Ok(PgStore { pool, changes, max_attempts: DEFAULT_MAX_ATTEMPTS as i32, listener })
    }

    /// Sets how many attempts a work item gets before it is given up on (at least 1).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.clamp(1, i32::MAX as u32) as i32;
        self
    }

    pub(super) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.pool.get().await?)
    }
}

/// Applies the migrations the database has not seen yet.
async fn migrate(pool: &Pool) -> Result<(), StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS docseek_schema (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await?;
    let current: i32 = tx.query_one("SELECT coalesce(max(version), 0) FROM docseek_schema", &[]).await?.get(0);
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.batch_execute(sql).await?;
        tx.execute("INSERT INTO docseek_schema(version) VALUES ($1)", &[version]).await?;
        tracing::info!(version, "applied a schema migration");
    }
    tx.commit().await?;
    Ok(())
}

/// Forwards `NOTIFY docseek_jobs` payloads (job ids) to `tx`, reconnecting when the
/// connection drops; runs until aborted.
async fn listen(config: tokio_postgres::Config, tx: broadcast::Sender<JobId>) {
    loop {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
                let forward = {
                    let tx = tx.clone();
                    async move {
                        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                        let _ready = ready_tx;
                        while let Some(message) = messages.next().await {
                            match message {
                                Ok(AsyncMessage::Notification(n)) => {
                                    if let Some(id) = JobId::parse(n.payload()) {
                                        let _ = tx.send(id);
                                    }
                                }
                                Ok(_) => {}
                                Err(e) => {
                                    tracing::warn!(error = %e, "job change listener lost its connection");
                                    break;
                                }
                            }
                        }
                    }
                };
                let forwarding = tokio::spawn(forward);
                if let Err(e) = client.batch_execute(&format!("LISTEN {CHANGES_CHANNEL}")).await {
                    tracing::warn!(error = %e, "cannot LISTEN for job changes");
                    forwarding.abort();
                } else {
                    let _ = ready_rx.await;
                    let _ = forwarding.await;
                }
                drop(client);
            }
            Err(e) => tracing::warn!(error = %e, "job change listener cannot connect"),
        }
        tokio::time::sleep(LISTEN_RETRY).await;
    }
}

#[async_trait::async_trait]
impl JobStore for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn queue(&self) -> Option<&dyn WorkQueue> {
        Some(self)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.client().await?.simple_query("SELECT 1").await?;
        Ok(())
    }

    async fn create_job(&self, job: &JobRecord) -> Result<(), StoreError> {
        let client = self.client().await?;
        insert_job(&**client, job).await
    }

    async fn job(&self, id: &JobId) -> Result<Option<JobRecord>, StoreError> {
        let client = self.client().await?;
        let row = client.query_opt(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"), &[&id.as_str()]).await?;
        Ok(row.as_ref().map(row_to_job))
    }

    async fn unfinished_jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE state IN ('queued', 'running') ORDER BY created_ms, id"),
                &[],
            )
            .await?;
        Ok(rows.iter().map(row_to_job).collect())
    }

    async fn set_state(&self, id: &JobId, state: JobState, error: Option<(&str, &str)>) -> Result<(), StoreError> {
        let client = self.client().await?;
        let finished = state.is_final().then(now_ms);
        client
            .execute(
                "UPDATE jobs SET state = $2, error_code = $3, error_message = $4, finished_ms = $5
                 WHERE id = $1 AND state NOT IN ('done', 'failed', 'cancelled')",
                &[&id.as_str(), &state.name(), &error.map(|e| e.0), &error.map(|e| e.1), &finished],
            )
            .await?;
        notify(&**client, id).await
    }

    async fn set_page_count(&self, id: &JobId, count: usize) -> Result<(), StoreError> {
        let client = self.client().await?;
        client.execute("UPDATE jobs SET page_count = $2 WHERE id = $1", &[&id.as_str(), &(count as i32)]).await?;
        notify(&**client, id).await
    }

    async fn save_page(&self, id: &JobId, page: &PageRecord) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM pages WHERE job_id = $1 AND idx = $2", &[&id.as_str(), &(page.index as i32)])
            .await?;
        insert_page(&**client, id, page, None, None).await?;
        notify(&**client, id).await
    }

    async fn pages(&self, id: &JobId) -> Result<Vec<PageRecord>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(&format!("SELECT {PAGE_COLUMNS} FROM pages WHERE job_id = $1 ORDER BY idx"), &[&id.as_str()])
            .await?;
        Ok(rows.iter().map(row_to_page).collect())
    }

    async fn delete_job(&self, id: &JobId) -> Result<(), StoreError> {
        let client = self.client().await?;
        client.execute("DELETE FROM jobs WHERE id = $1", &[&id.as_str()]).await?;
        Ok(())
    }

    async fn expired_jobs(&self, cutoff_ms: i64) -> Result<Vec<JobId>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT id FROM jobs WHERE finished_ms IS NOT NULL AND finished_ms < $1", &[&cutoff_ms])
            .await?;
        Ok(rows.iter().map(|r| JobId(r.get(0))).collect())
    }
}

/// Inserts a job row.
pub(super) async fn insert_job(client: &impl tokio_postgres::GenericClient, job: &JobRecord) -> Result<(), StoreError> {
    let options = serde_json::to_string(&job.options).map_err(|e| StoreError::Invalid(e.to_string()))?;
    client
        .execute(
            "INSERT INTO jobs(id, created_ms, state, filename, media, options, webhook, ephemeral)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &job.id.as_str(),
                &job.created_ms,
                &job.state.name(),
                &job.filename,
                &job.media,
                &options,
                &job.webhook,
                &job.ephemeral,
            ],
        )
        .await?;
    Ok(())
}

/// Tells every node that a job changed (delivered when the transaction commits).
pub(super) async fn notify(client: &impl tokio_postgres::GenericClient, id: &JobId) -> Result<(), StoreError> {
    client.execute("SELECT pg_notify($1, $2)", &[&CHANGES_CHANNEL, &id.as_str()]).await?;
    Ok(())
}
