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
