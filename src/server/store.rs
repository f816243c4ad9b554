//! Durable job storage: an embedded SQLite database (WAL) plus upload and page-image files in
//! the data directory.
//!
//! File names are derived only from generated job ids (checked by [`JobId::parse`]) and page
//! indices, never from anything a client sent. A job survives a crash: its options, page count
//! and every finished page are committed as they happen, so a restarted server resumes from
//! the last finished page.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::engine::PageTimings;
use crate::options::OcrOptions;

/// Length of a job id in hex characters (128 random bits).
pub const JOB_ID_HEX_LEN: usize = 32;

/// A generated job id: 32 lowercase hex characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JobId(String);

impl JobId {
    /// A fresh random id.
    pub fn generate() -> Self {
        let mut bytes = [0u8; JOB_ID_HEX_LEN / 2];
        getrandom::fill(&mut bytes).expect("the OS random source is available");
        JobId(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Accepts only well-formed ids, so an id from a URL is safe in a file name.
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == JOB_ID_HEX_LEN && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
            .then(|| JobId(s.to_string()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Accepted, waiting for a run slot.
    Queued,
    /// Being rasterized or recognised.
    Running,
    /// Finished (pages may still carry individual errors).
    Done,
    /// Could not be processed (bad document, model failure).
    Failed,
    /// Cancelled by the client.
    Cancelled,
}

impl JobState {
    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> JobState {
        match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "done" => JobState::Done,
            "cancelled" => JobState::Cancelled,
            _ => JobState::Failed,
        }
    }

    /// Whether the job will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Done | JobState::Failed | JobState::Cancelled)
    }
}

/// A stored job.
#[derive(Debug, Clone, Serialize)]
pub struct JobRecord {
    /// Its id.
    pub id: JobId,
    /// State.
    pub state: JobState,
    /// The uploaded file's name, for display only (never used as a path).
    pub filename: Option<String>,
    /// Detected media kind (`pdf`, `png`, ...).
    pub media: String,
    /// The options it runs with.
    pub options: OcrOptions,
    /// Webhook to call on completion.
    pub webhook: Option<String>,
    /// Pages to recognise, once known.
    pub page_count: Option<usize>,
    /// Error code and message when failed.
    pub error: Option<(String, String)>,
    /// Milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// When it reached a final state.
    pub finished_ms: Option<i64>,
    /// A synchronous request's job: dropped at restart instead of resumed.
    pub ephemeral: bool,
}

/// One recognised (or failed) page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PageRecord {
    /// Position in the job, 0-based.
    pub index: usize,
    /// Page number in the document, 1-based.
    pub page_number: usize,
    /// Rendered image size in pixels.
    pub width: u32,
    /// Rendered image height in pixels.
    pub height: u32,
    /// Width of the original page in PDF points (for images: pixels at the render dpi).
    pub width_pt: f32,
    /// Height of the original page in PDF points.
    pub height_pt: f32,
    /// Raw model text, when recognised.
    pub raw: Option<String>,
    /// How generation ended (`finished`, `length`, `repetition`).
    pub outcome: Option<String>,
    /// Generated tokens.
    pub tokens: usize,
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Stage timings of the page.
    pub timings: PageTimings,
    /// Error message when the page failed.
    pub error: Option<String>,
}

/// The job database and file area.
pub struct Store {
    conn: Mutex<Connection>,
    dir: PathBuf,
}

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

fn millis(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn duration_ms(ms: f64) -> std::time::Duration {
    std::time::Duration::try_from_secs_f64(ms / 1e3).unwrap_or_default()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, rusqlite::Error> {
        for sub in ["uploads", "pages"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(|e| {
                rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN), Some(e.to_string()))
            })?;
        }
        let conn = Connection::open(dir.join("docseek.db"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        migrate(&conn)?;
        Ok(Store { conn: Mutex::new(conn), dir: dir.to_path_buf() })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where a job's upload is stored.
    pub fn upload_path(&self, id: &JobId) -> PathBuf {
        self.dir.join("uploads").join(id.as_str())
    }

    /// The folder of a job's rendered page images.
    pub fn pages_dir(&self, id: &JobId) -> PathBuf {
        self.dir.join("pages").join(id.as_str())
    }

    /// The rendered image of page `index` (0-based position in the job).
    pub fn page_image_path(&self, id: &JobId, index: usize) -> PathBuf {
        self.pages_dir(id).join(format!("{index}.png"))
    }

    /// Stores a new job: the upload is written (and synced) before the row is committed.
    pub fn create_job(&self, job: &JobRecord, upload: &[u8]) -> Result<(), crate::server::errors::ApiError> {
        let path = self.upload_path(&job.id);
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&path)?;
            f.write_all(upload)?;
            f.sync_all()?;
        }
        let options = serde_json::to_string(&job.options).map_err(crate::server::errors::ApiError::internal)?;
        self.conn().execute(
            "INSERT INTO jobs(id, created_ms, state, filename, media, options, webhook, ephemeral)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![job.id.as_str(), job.created_ms, job.state.name(), job.filename, job.media, options, job.webhook, job.ephemeral],
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

    /// One job, if it exists.
    pub fn job(&self, id: &JobId) -> Result<Option<JobRecord>, rusqlite::Error> {
        self.conn()
            .query_row(&format!("SELECT {} FROM jobs WHERE id = ?1", Self::JOB_COLUMNS), [id.as_str()], Self::row_to_job)
            .optional()
    }

    /// Jobs that were queued or running, oldest first (to resume after a restart).
    pub fn unfinished_jobs(&self) -> Result<Vec<JobRecord>, rusqlite::Error> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {} FROM jobs WHERE state IN ('queued', 'running') ORDER BY created_ms, rowid",
            Self::JOB_COLUMNS
        ))?;
        let rows = stmt.query_map([], Self::row_to_job)?;
        rows.collect()
    }

    /// Sets a job's state (and its error, for failures); final states get a finish time and are
    /// never left (so a cancelled job stays cancelled even if its runner finishes later).
    pub fn set_state(&self, id: &JobId, state: JobState, error: Option<(&str, &str)>) -> Result<(), rusqlite::Error> {
        let finished = state.is_final().then(now_ms);
        self.conn().execute(
            "UPDATE jobs SET state = ?2, error_code = ?3, error_message = ?4, finished_ms = ?5
             WHERE id = ?1 AND state NOT IN ('done', 'failed', 'cancelled')",
            params![id.as_str(), state.name(), error.map(|e| e.0), error.map(|e| e.1), finished],
        )?;
        Ok(())
    }

    /// Records how many pages the job has, once rasterized.
    pub fn set_page_count(&self, id: &JobId, count: usize) -> Result<(), rusqlite::Error> {
        self.conn().execute("UPDATE jobs SET page_count = ?2 WHERE id = ?1", params![id.as_str(), count as i64])?;
        Ok(())
    }

    /// Commits one page's result.
    pub fn save_page(&self, id: &JobId, page: &PageRecord) -> Result<(), rusqlite::Error> {
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
    pub fn pages(&self, id: &JobId) -> Result<Vec<PageRecord>, rusqlite::Error> {
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
        rows.collect()
    }

    /// Deletes a job, its pages and its files.
    pub fn delete_job(&self, id: &JobId) -> Result<(), rusqlite::Error> {
        self.conn().execute("DELETE FROM jobs WHERE id = ?1", [id.as_str()])?;
        let _ = std::fs::remove_file(self.upload_path(id));
        let _ = std::fs::remove_dir_all(self.pages_dir(id));
        Ok(())
    }

    /// Ids of final jobs that finished before `cutoff_ms` (for retention).
    pub fn expired_jobs(&self, cutoff_ms: i64) -> Result<Vec<JobId>, rusqlite::Error> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT id FROM jobs WHERE finished_ms IS NOT NULL AND finished_ms < ?1")?;
        let rows = stmt.query_map([cutoff_ms], |r| Ok(JobId(r.get(0)?)))?;
        rows.collect()
    }

    /// Removes the upload of a finished job (the page images stay for the viewer).
    pub fn drop_upload(&self, id: &JobId) {
        let _ = std::fs::remove_file(self.upload_path(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn jobs_and_pages_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let id = JobId::generate();
        {
            let store = Store::open(dir.path()).unwrap();
            store.create_job(&record(&id), b"bytes").unwrap();
            store.set_state(&id, JobState::Running, None).unwrap();
            store.set_page_count(&id, 3).unwrap();
            let page = PageRecord {
                index: 1, page_number: 2, width: 10, height: 20, width_pt: 5.0, height_pt: 10.0, raw: Some("hi".into()),
                outcome: Some("finished".into()), tokens: 1, prompt_tokens: 7,
                timings: PageTimings { encode: std::time::Duration::from_millis(3), ..Default::default() }, error: None,
            };
            store.save_page(&id, &page).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let jobs = store.unfinished_jobs().unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].page_count, Some(3));
        let page = &store.pages(&id).unwrap()[0];
        assert_eq!(page.raw.as_deref(), Some("hi"));
        assert_eq!((page.width_pt, page.height_pt, page.prompt_tokens), (5.0, 10.0, 7));
        assert_eq!(page.timings.encode, std::time::Duration::from_millis(3));
        // The client's file name never becomes a path.
        assert_eq!(store.upload_path(&id).file_name().unwrap().to_str().unwrap(), id.as_str());
        assert_eq!(std::fs::read(store.upload_path(&id)).unwrap(), b"bytes");
        store.delete_job(&id).unwrap();
        assert!(store.job(&id).unwrap().is_none());
        assert!(!store.upload_path(&id).exists());
    }

    #[test]
    fn databases_of_the_first_schema_are_migrated() {
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
            conn.execute("INSERT INTO pages VALUES (?1, 0, 1, 300, 200, 'old text', 'finished', 4, NULL)", [id.as_str()]).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let page = &store.pages(&id).unwrap()[0];
        assert_eq!(page.raw.as_deref(), Some("old text"));
        // Unknown point sizes read as pixels at 72 dpi; new columns default to zero.
        assert_eq!((page.width_pt, page.height_pt, page.prompt_tokens, page.tokens), (300.0, 200.0, 0, 4));
        // Opening again is a no-op.
        drop(store);
        Store::open(dir.path()).unwrap();
    }

    #[test]
    fn job_ids_are_strict() {
        assert!(JobId::parse(JobId::generate().as_str()).is_some());
        assert!(JobId::parse("../../etc/passwd").is_none());
        assert!(JobId::parse(&"A".repeat(JOB_ID_HEX_LEN)).is_none());
    }
}
