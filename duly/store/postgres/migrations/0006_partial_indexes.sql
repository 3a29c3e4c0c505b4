-- duly schema version 6 (PostgreSQL): the (queue, state, run_at) and (task, id) indexes
-- leave out running jobs. A claim and a finish are updates that cannot be HOT (the state is
-- indexed), so each wrote a new entry into every full index; without running rows in these
-- two, a claim writes only the primary key and jobs_lease. Running jobs (bounded by the
-- workers' slots) are read from jobs_lease instead: the queue names, the counts and the job
-- list's filters take them from there (admin.sql, queries.sql). Rebuilding the indexes holds
-- a lock that blocks writes to the jobs table while it runs (seconds per million jobs).
DROP INDEX {jobs_queue_state};
CREATE INDEX {jobs_queue_state} ON {jobs} (queue, state, run_at) WHERE state <> 'running';
DROP INDEX {jobs_task};
CREATE INDEX {jobs_task} ON {jobs} (task, id) WHERE state <> 'running';
