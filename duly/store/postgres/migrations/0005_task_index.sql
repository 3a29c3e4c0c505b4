-- duly schema version 5 (PostgreSQL): the job list filtered by task. Its keys (task, id)
-- never change after the insert, so the updates of a job's state leave them alone (bottom-up
-- deletion keeps the extra entries of non-HOT updates from bloating it); walked newest
-- first, it answers ?task=X in one index range, matches or not.
CREATE INDEX {jobs_task} ON {jobs} (task, id);
