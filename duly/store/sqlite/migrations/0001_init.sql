-- duly schema version 1 (SQLite). Times are UTC microseconds since the epoch (INTEGER),
-- exact, so a time read back and written again compares equal.
CREATE TABLE {jobs} (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: ids fence attempts
    task             TEXT    NOT NULL,
    queue            TEXT    NOT NULL,
    args             TEXT    NOT NULL,
    kwargs           TEXT    NOT NULL,
    priority         INTEGER NOT NULL DEFAULT 0,
    state            TEXT    NOT NULL CHECK (state IN
                        ('queued','running','retrying','succeeded','failed','cancelled','expired')),
    run_at           INTEGER NOT NULL,
    expires_at       INTEGER,
    key              TEXT,
    attempt          INTEGER NOT NULL DEFAULT 0,
    errors           INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL CHECK (max_attempts >= 1),
    lease_seconds    REAL    NOT NULL CHECK (lease_seconds > 0),
    worker_id        TEXT,
    lease_expires_at INTEGER,
    started_at       INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    progress_done    INTEGER,
    progress_total   INTEGER,
    result           TEXT,
    last_error       TEXT,
    trigger_id       INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    finished_at      INTEGER,
    CHECK ((state = 'running') = (lease_expires_at IS NOT NULL))
);
-- The claim walks this index in exactly the claim order.
CREATE INDEX {jobs_fetch} ON {jobs} (priority DESC, run_at, id) WHERE state IN ('queued','retrying');
CREATE INDEX {jobs_lease} ON {jobs} (lease_expires_at) WHERE state = 'running';
CREATE INDEX {jobs_expiry} ON {jobs} (expires_at)
    WHERE expires_at IS NOT NULL AND state IN ('queued','retrying');
CREATE UNIQUE INDEX {jobs_key} ON {jobs} (key)
    WHERE key IS NOT NULL AND state IN ('queued','retrying','running');
CREATE INDEX {jobs_queue_state} ON {jobs} (queue, state, run_at);
CREATE INDEX {jobs_finished} ON {jobs} (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE {attempts} (
    job_id        INTEGER NOT NULL,
    attempt       INTEGER NOT NULL,
    worker_id     TEXT,
    started_at    INTEGER,
    finished_at   INTEGER,
    outcome       TEXT    NOT NULL,
    error_type    TEXT,
    error_message TEXT,
    traceback     TEXT,
    log           TEXT,
    PRIMARY KEY (job_id, attempt)
) WITHOUT ROWID;

CREATE TABLE {workers} (
    id           TEXT PRIMARY KEY,
    hostname     TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    queues       TEXT,
    concurrency  INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    stopping     INTEGER NOT NULL DEFAULT 0
);
