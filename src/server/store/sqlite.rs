//! The embedded job store: one SQLite database (WAL) in the data directory, used by a single
//! `docseek serve` that runs its own jobs. A job survives a crash: its options, page count and
//! every finished page are committed as they happen, so a restarted server resumes from the
//! last finished page. It has no shared work queue ([`JobStore::queue`] is `None`).

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use super::{duration_ms, millis, JobId, JobRecord, JobState, JobStore, PageRecord, StoreError, WorkQueue};
use crate::engine::PageTimings;

/// The embedded job database.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

/// The database's file name in a data directory.
pub const DB_FILE: &str = "docseek.db";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs(
  id TEXT PRIMARY KEY,
  created_ms INTEGER NOT NULL,
  state TEXT NOT NULL,
  filename TEXT,
  media TEXT NOT NULL,
  options TEXT NOT NULL,
  webhook TEXT,
  page_count INTEGER,
  error_code TEXT,
  error_message TEXT,
  finished_ms INTEGER,
  ephemeral INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS pages(
  job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  idx INTEGER NOT NULL,
  page_number INTEGER NOT NULL,
  width INTEGER NOT NULL,
  height INTEGER NOT NULL,
  raw TEXT,
  outcome TEXT,
  tokens INTEGER NOT NULL DEFAULT 0,
  error TEXT,
  PRIMARY KEY(job_id, idx)
);
";

/// Page columns added after the first schema: (name, SQL type), added to older databases
/// on open.
const PAGE_COLUMNS_ADDED: [(&str, &str); 6] = [
    ("width_pt", "REAL"),
    ("height_pt", "REAL"),
    ("prompt_tokens", "INTEGER NOT NULL DEFAULT 0"),
    ("encode_ms", "REAL NOT NULL DEFAULT 0"),
    ("prefill_ms", "REAL NOT NULL DEFAULT 0"),
    ("decode_ms", "REAL NOT NULL DEFAULT 0"),
];

/// Adds the columns of [`PAGE_COLUMNS_ADDED`] that a database lacks.
fn migrate(conn: &Connection) -> Result<(), rusqlite::Error> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('pages')")?;
    let have: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    for (name, ty) in PAGE_COLUMNS_ADDED {
        if !have.iter().any(|h| h == name) {
            conn.execute_batch(&format!("ALTER TABLE pages ADD COLUMN {name} {ty}"))?;
        }
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (or creates) the store in the data directory `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)?;
        Self::open_file(&dir.join(DB_FILE))
    }

    /// Opens (or creates) the database file `path`.
    pub fn open_file(path: &Path) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        migrate(&conn)?;
        Ok(SqliteStore { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn insert_job(&self, job: &JobRecord) -> Result<(), StoreError> {
        let options = serde_json::to_string(&job.options).map_err(|e| StoreError::Invalid(e.to_string()))?;
        self.conn().execute(
            "INSERT INTO jobs(id, created_ms, state, filename, media, options, webhook, ephemeral)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                job.id.as_str(),
                job.created_ms,
                job.state.name(),
                job.filename,
                job.media,
                options,
                job.webhook,
                job.ephemeral
            ],
        )?;
        Ok(())
    }

    fn row_to_job(row: &rusqlite::Row<'_>) -> rusqlite::Result<JobRecord> {
        let options: String = row.get(5)?;
        let code: Option<String> = row.get(8)?;
        let message: Option<String> = row.get(9)?;
        Ok(JobRecord {
            id: JobId(row.get(0)?),
            created_ms: row.get(1)?,
            state: JobState::parse(&row.get::<_, String>(2)?),
            filename: row.get(3)?,
            media: row.get(4)?,
            options: serde_json::from_str(&options).unwrap_or_default(),
            webhook: row.get(6)?,
            page_count: row.get::<_, Option<i64>>(7)?.map(|n| n as usize),
            error: code.map(|c| (c, message.unwrap_or_default())),
            finished_ms: row.get(10)?,
            ephemeral: row.get(11)?,
        })
    }

    const JOB_COLUMNS: &'static str =
        "id, created_ms, state, filename, media, options, webhook, page_count, error_code, error_message, finished_ms, ephemeral";
}

#[async_trait::async_trait]
impl JobStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn queue(&self) -> Option<&dyn WorkQueue> {
        None
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.conn().query_row("SELECT 1", [], |_| Ok(()))?;
        Ok(())
    }

    async fn create_job(&self, job: &JobRecord) -> Result<(), StoreError> {
        self.insert_job(job)
    }

    /// One job, if it exists.
    async fn job(&self, id: &JobId) -> Result<Option<JobRecord>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {} FROM jobs WHERE id = ?1", Self::JOB_COLUMNS),
                [id.as_str()],
                Self::row_to_job,
            )
            .optional()?)
    }

    /// Jobs that were queued or running, oldest first (to resume after a restart).
    async fn unfinished_jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {} FROM jobs WHERE state IN ('queued', 'running') ORDER BY created_ms, rowid",
            Self::JOB_COLUMNS
        ))?;
        let rows = stmt.query_map([], Self::row_to_job)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Sets a job's state (and its error, for failures); final states get a finish time and are
    /// never left (so a cancelled job stays cancelled even if its runner finishes later).
    async fn set_state(&self, id: &JobId, state: JobState, error: Option<(&str, &str)>) -> Result<(), StoreError> {
        let finished = state.is_final().then(super::now_ms);
        self.conn().execute(
            "UPDATE jobs SET state = ?2, error_code = ?3, error_message = ?4, finished_ms = ?5
             WHERE id = ?1 AND state NOT IN ('done', 'failed', 'cancelled')",
            params![id.as_str(), state.name(), error.map(|e| e.0), error.map(|e| e.1), finished],
        )?;
        Ok(())
    }

    /// Records how many pages the job has, once rasterized.
    async fn set_page_count(&self, id: &JobId, count: usize) -> Result<(), StoreError> {
        self.conn().execute("UPDATE jobs SET page_count = ?2 WHERE id = ?1", params![id.as_str(), count as i64])?;
        Ok(())
    }

    /// Commits one page's result.
    async fn save_page(&self, id: &JobId, page: &PageRecord) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO pages(job_id, idx, page_number, width, height, raw, outcome, tokens, error,
                 width_pt, height_pt, prompt_tokens, encode_ms, prefill_ms, decode_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            params![
                id.as_str(),
                page.index as i64,
                page.page_number as i64,
                page.width,
                page.height,
                page.raw,
                page.outcome,
                page.tokens as i64,
                page.error,
                page.width_pt as f64,
                page.height_pt as f64,
                page.prompt_tokens as i64,
                millis(page.timings.encode),
                millis(page.timings.prefill),
                millis(page.timings.decode),
            ],
        )?;
        Ok(())
    }

    /// A job's finished pages, in order.
    async fn pages(&self, id: &JobId) -> Result<Vec<PageRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT idx, page_number, width, height, raw, outcome, tokens, error,
                    width_pt, height_pt, prompt_tokens, encode_ms, prefill_ms, decode_ms
             FROM pages WHERE job_id = ?1 ORDER BY idx",
        )?;
        let rows = stmt.query_map([id.as_str()], |r| {
            let (width, height): (u32, u32) = (r.get(2)?, r.get(3)?);
            // Rows from before point sizes were stored: pixels at 72 dpi.
            let width_pt = r.get::<_, Option<f64>>(8)?.map(|v| v as f32).unwrap_or(width as f32);
            let height_pt = r.get::<_, Option<f64>>(9)?.map(|v| v as f32).unwrap_or(height as f32);
            Ok(PageRecord {
                index: r.get::<_, i64>(0)? as usize,
                page_number: r.get::<_, i64>(1)? as usize,
                width,
                height,
                width_pt,
                height_pt,
                raw: r.get(4)?,
                outcome: r.get(5)?,
                tokens: r.get::<_, i64>(6)? as usize,
                prompt_tokens: r.get::<_, i64>(10)? as usize,
                timings: PageTimings {
                    encode: duration_ms(r.get(11)?),
                    prefill: duration_ms(r.get(12)?),
                    decode: duration_ms(r.get(13)?),
                },
                error: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes a job, its pages and its files.
    async fn delete_job(&self, id: &JobId) -> Result<(), StoreError> {
        self.conn().execute("DELETE FROM jobs WHERE id = ?1", [id.as_str()])?;
        Ok(())
    }

    /// Ids of final jobs that finished before `cutoff_ms` (for retention).
    async fn expired_jobs(&self, cutoff_ms: i64) -> Result<Vec<JobId>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT id FROM jobs WHERE finished_ms IS NOT NULL AND finished_ms < ?1")?;
        let rows = stmt.query_map([cutoff_ms], |r| Ok(JobId(r.get(0)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::OcrOptions;
    use crate::server::store::{now_ms, JOB_ID_HEX_LEN};

    fn record(id: &JobId) -> JobRecord {
        JobRecord {
            id: id.clone(),
            state: JobState::Queued,
            filename: Some("../../etc/passwd".into()),
            media: "png".into(),
            options: OcrOptions::default(),
            webhook: None,
            page_count: None,
            error: None,
            created_ms: now_ms(),
            finished_ms: None,
            ephemeral: false,
        }
    }

    #[tokio::test]
    async fn jobs_and_pages_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let id = JobId::generate();
        {
            let store = SqliteStore::open(dir.path()).unwrap();
            store.create_job(&record(&id)).await.unwrap();
            store.set_state(&id, JobState::Running, None).await.unwrap();
            store.set_page_count(&id, 3).await.unwrap();
            let page = PageRecord {
                index: 1,
                page_number: 2,
                width: 10,
                height: 20,
                width_pt: 5.0,
                height_pt: 10.0,
                raw: Some("hi".into()),
                outcome: Some("finished".into()),
                tokens: 1,
                prompt_tokens: 7,
                timings: PageTimings { encode: std::time::Duration::from_millis(3), ..Default::default() },
                error: None,
            };
            store.save_page(&id, &page).await.unwrap();
        }
        let store = SqliteStore::open(dir.path()).unwrap();
        let jobs = store.unfinished_jobs().await.unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].page_count, Some(3));
        let page = &store.pages(&id).await.unwrap()[0];
        assert_eq!(page.raw.as_deref(), Some("hi"));
        assert_eq!((page.width_pt, page.height_pt, page.prompt_tokens), (5.0, 10.0, 7));
        assert_eq!(page.timings.encode, std::time::Duration::from_millis(3));
        store.delete_job(&id).await.unwrap();
        assert!(store.job(&id).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn databases_of_the_first_schema_are_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let id = JobId::generate();
        {
            // The pages table as the first release wrote it: no point sizes, tokens or timings.
            let conn = Connection::open(dir.path().join("docseek.db")).unwrap();
            let first = SCHEMA.replace("CREATE TABLE IF NOT EXISTS pages", "CREATE TABLE IF NOT EXISTS unused");
            conn.execute_batch(&first).unwrap();
            conn.execute_batch(
                "CREATE TABLE pages(job_id TEXT NOT NULL, idx INTEGER NOT NULL, page_number INTEGER NOT NULL,
                 width INTEGER NOT NULL, height INTEGER NOT NULL, raw TEXT, outcome TEXT,
                 tokens INTEGER NOT NULL DEFAULT 0, error TEXT, PRIMARY KEY(job_id, idx))",
            )
            .unwrap();
            conn.execute(
                "INSERT INTO jobs(id, created_ms, state, media, options) VALUES (?1, 0, 'done', 'png', '{}')",
                [id.as_str()],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO pages VALUES (?1, 0, 1, 300, 200, 'old text', 'finished', 4, NULL)",
                [id.as_str()],
            )
            .unwrap();
        }
        let store = SqliteStore::open(dir.path()).unwrap();
        let page = &store.pages(&id).await.unwrap()[0];
        assert_eq!(page.raw.as_deref(), Some("old text"));
        // Unknown point sizes read as pixels at 72 dpi; new columns default to zero.
        assert_eq!((page.width_pt, page.height_pt, page.prompt_tokens, page.tokens), (300.0, 200.0, 0, 4));
        // Opening again is a no-op.
        drop(store);
        SqliteStore::open(dir.path()).unwrap();
    }

    #[test]
    fn job_ids_are_strict() {
        assert!(JobId::parse(JobId::generate().as_str()).is_some());
        assert!(JobId::parse("../../etc/passwd").is_none());
        assert!(JobId::parse(&"A".repeat(JOB_ID_HEX_LEN)).is_none());
    }
}
