-- docseek PostgreSQL schema, version 1: jobs, committed pages, the page-level work queue and
-- the workers that lease from it. Applied once, in a transaction, by PgStore::connect.

CREATE TABLE jobs (
    id            TEXT PRIMARY KEY,
    created_ms    BIGINT  NOT NULL,
    state         TEXT    NOT NULL,
    filename      TEXT,
    media         TEXT    NOT NULL,
    options       TEXT    NOT NULL,
    webhook       TEXT,
    page_count    INTEGER,
    error_code    TEXT,
    error_message TEXT,
    finished_ms   BIGINT,
    ephemeral     BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX jobs_unfinished ON jobs (created_ms) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_finished ON jobs (finished_ms) WHERE finished_ms IS NOT NULL;

-- One row per committed page; written once, in the transaction that finishes its work item.
CREATE TABLE pages (
    job_id        TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    idx           INTEGER NOT NULL,
    page_number   INTEGER NOT NULL,
    width         INTEGER NOT NULL,
    height        INTEGER NOT NULL,
    width_pt      REAL    NOT NULL,
    height_pt     REAL    NOT NULL,
    raw           TEXT,
    outcome       TEXT,
    tokens        INTEGER NOT NULL DEFAULT 0,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    encode_ms     DOUBLE PRECISION NOT NULL DEFAULT 0,
    prefill_ms    DOUBLE PRECISION NOT NULL DEFAULT 0,
    decode_ms     DOUBLE PRECISION NOT NULL DEFAULT 0,
    error         TEXT,
    worker        TEXT,
    attempt       INTEGER,
    committed_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, idx)
);

-- The work queue: idx -1 is the job's document (to rasterize), idx >= 0 its pages.
CREATE TABLE work_items (
    job_id       TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    idx          INTEGER NOT NULL,
    state        TEXT    NOT NULL DEFAULT 'ready' CHECK (state IN ('ready', 'leased', 'done', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    worker       TEXT,
    lease_until  TIMESTAMPTZ,
    last_error   TEXT,
    meta         TEXT,
    queued_at    TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (job_id, idx)
);
CREATE INDEX work_ready ON work_items (queued_at, idx) WHERE state = 'ready';
CREATE INDEX work_leased ON work_items (lease_until) WHERE state = 'leased';
CREATE INDEX work_by_worker ON work_items (worker) WHERE state = 'leased';

CREATE TABLE workers (
    id           TEXT PRIMARY KEY,
    role         TEXT        NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen    TIMESTAMPTZ NOT NULL DEFAULT now(),
    pages_done   BIGINT      NOT NULL DEFAULT 0,
    pages_failed BIGINT      NOT NULL DEFAULT 0,
    stopped      BOOLEAN     NOT NULL DEFAULT false
);
