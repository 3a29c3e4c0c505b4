-- duly schema version 6 (SQLite): the (queue, state, run_at) index leaves out running jobs,
-- so a claim only removes a job's entry and its finish only adds one (each rewrote it
-- before). Running jobs (bounded by the workers' slots) are read from jobs_lease instead:
-- the queue names, the counts and the job list's filters take them from there (admin.sql).
-- The (task, id) index stays whole: SQLite rewrites it only when a job is inserted or
-- deleted. Every statement that reads this index names its condition (state <> 'running'),
-- which is what lets SQLite use a partial index.
DROP INDEX {jobs_queue_state};
CREATE INDEX {jobs_queue_state} ON {jobs} (queue, state, run_at) WHERE state <> 'running';
