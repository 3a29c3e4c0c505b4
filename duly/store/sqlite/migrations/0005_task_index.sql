-- duly schema version 5 (SQLite): the job list filtered by task. Its keys (task, id) are
-- written when a job is inserted or deleted and never on a state change (SQLite rewrites
-- only the indexes whose columns an UPDATE changes), so the claim and finish path does not
-- pay for it; walked newest first, it answers ?task=X in one index range, matches or not.
CREATE INDEX {jobs_task} ON {jobs} (task, id);
