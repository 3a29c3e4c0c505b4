-- duly schema version 3 (PostgreSQL): per-queue settings (pausing) for the operating
-- surfaces, and statistics that let the planner estimate per-queue, per-state counts
-- (used instead of exact counts above a threshold, see duly.store.postgres.admin).
CREATE TABLE {queues} (
    name       text        PRIMARY KEY,
    paused_at  timestamptz,
    updated_at timestamptz NOT NULL
);
CREATE STATISTICS {jobs_queue_stats} (mcv, ndistinct) ON queue, state FROM {jobs};
