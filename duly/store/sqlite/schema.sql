-- The whole duly schema as a fresh install creates it (sqlite).
-- Upgrades apply migrations/NNNN_*.sql instead; tests/contract/test_migrations.py checks that
-- both roads end at the same schema. Change both together.

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
    run_by           INTEGER,
    CHECK ((state = 'running') = (lease_expires_at IS NOT NULL))
);
-- run_by (version 4): the "run by" bound run_at_least_within leaves on a running job.
-- The claim walks this index in exactly the claim order.
CREATE INDEX {jobs_fetch} ON {jobs} (priority DESC, run_at, id) WHERE state IN ('queued','retrying');
CREATE INDEX {jobs_lease} ON {jobs} (lease_expires_at) WHERE state = 'running';
CREATE INDEX {jobs_expiry} ON {jobs} (expires_at)
    WHERE expires_at IS NOT NULL AND state IN ('queued','retrying');
CREATE UNIQUE INDEX {jobs_key} ON {jobs} (key)
    WHERE key IS NOT NULL AND state IN ('queued','retrying','running');
-- Without running jobs (version 6): see jobs_lease for those.
CREATE INDEX {jobs_queue_state} ON {jobs} (queue, state, run_at) WHERE state <> 'running';
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

-- duly schema version 2 (SQLite): triggers and their fired slots.
CREATE TABLE {triggers} (
    id                 INTEGER PRIMARY KEY,
    name               TEXT    NOT NULL UNIQUE,
    kind               TEXT    NOT NULL CHECK (kind IN ('at','every','cron','event','webhook','manual')),
    spec               TEXT    NOT NULL,
    timezone           TEXT,
    task               TEXT    NOT NULL,
    args               TEXT    NOT NULL,
    kwargs             TEXT    NOT NULL,
    options            TEXT    NOT NULL,
    catch_up           TEXT    NOT NULL DEFAULT 'latest' CHECK (catch_up IN ('skip','latest','all')),
    catch_up_limit     INTEGER NOT NULL DEFAULT 100,
    start_at           INTEGER,
    end_at             INTEGER,
    debounce           REAL,
    filter             TEXT,
    secret             TEXT    UNIQUE,
    declared           INTEGER NOT NULL DEFAULT 0,
    paused             INTEGER NOT NULL DEFAULT 0,
    next_fire_at       INTEGER,
    window_events      TEXT,
    missed             INTEGER NOT NULL DEFAULT 0,
    last_fire_at       INTEGER,
    last_job_id        INTEGER,
    last_manual_at     INTEGER,
    last_manual_job_id INTEGER,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);
CREATE INDEX {triggers_due} ON {triggers} (next_fire_at) WHERE paused = 0 AND next_fire_at IS NOT NULL;
-- One row per fired slot: the unique key that makes each slot fire once, whatever the
-- number of schedulers. Written in the same transaction as the slot's job.
CREATE TABLE {slots} (
    trigger_id INTEGER NOT NULL,
    slot_at    INTEGER NOT NULL,
    job_id     INTEGER,
    PRIMARY KEY (trigger_id, slot_at)
) WITHOUT ROWID;
CREATE INDEX {jobs_trigger} ON {jobs} (trigger_id, id) WHERE trigger_id IS NOT NULL;

-- duly schema version 3 (SQLite): per-queue settings (pausing) for the operating surfaces.
-- A queue has a row here only once someone paused it; paused_at NULL means running.
CREATE TABLE {queues} (
    name       TEXT    PRIMARY KEY,
    paused_at  INTEGER,
    updated_at INTEGER NOT NULL
);

-- duly schema version 5 (SQLite): the job list filtered by task (keys never change on
-- a state transition).
CREATE INDEX {jobs_task} ON {jobs} (task, id);
