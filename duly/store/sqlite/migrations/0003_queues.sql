-- duly schema version 3 (SQLite): per-queue settings (pausing) for the operating surfaces.
-- A queue has a row here only once someone paused it; paused_at NULL means running.
CREATE TABLE {queues} (
    name       TEXT    PRIMARY KEY,
    paused_at  INTEGER,
    updated_at INTEGER NOT NULL
);
