-- duly schema version 4 (SQLite): the "run by" bound of a running job. run_at_least_within
-- on a recurring named job that is running cannot move its next run (the handler decides
-- it when the run ends), so it keeps the bound here; when the attempt ends and the job
-- waits again (rescheduled, snoozed or retrying), its run_at is the least of the two.
ALTER TABLE {jobs} ADD COLUMN run_by INTEGER;
