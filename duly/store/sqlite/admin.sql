-- Named queries of the SQLite store's operating verbs (see admin.py): the worker registry,
-- paused queues, retention pruning, throughput and counts for the dashboard.
-- Times are UTC microseconds since the epoch, like everywhere in the SQLite store.

-- name: register_worker
INSERT INTO {workers} (id, hostname, pid, queues, concurrency, started_at, last_seen_at, stopping)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, 0)
ON CONFLICT (id) DO UPDATE
SET hostname = excluded.hostname, pid = excluded.pid, queues = excluded.queues,
    concurrency = excluded.concurrency, last_seen_at = excluded.last_seen_at, stopping = 0

-- name: touch_worker
UPDATE {workers} SET last_seen_at = ? WHERE id = ?

-- name: remove_worker
DELETE FROM {workers} WHERE id = ?

-- name: forget_workers
DELETE FROM {workers} WHERE last_seen_at < ?

-- name: list_workers
-- Running jobs per holder (how many and which) come from the partial index on running jobs.
SELECT w.id, w.hostname, w.pid, w.queues, w.concurrency, w.started_at, w.last_seen_at,
       coalesce(r.n, 0), r.ids
FROM {workers} AS w
LEFT JOIN (SELECT worker_id, count(*) AS n, json_group_array(id) AS ids FROM {jobs} INDEXED BY {jobs_lease}
           WHERE state = 'running' GROUP BY worker_id) AS r ON r.worker_id = w.id
ORDER BY w.started_at, w.id

-- name: queue_paused_at
SELECT paused_at FROM {queues} WHERE name = ?

-- name: pause_queue
INSERT INTO {queues} (name, paused_at, updated_at) VALUES (?1, ?2, ?2)
ON CONFLICT (name) DO UPDATE SET paused_at = excluded.paused_at, updated_at = excluded.updated_at

-- name: resume_queue
UPDATE {queues} SET paused_at = NULL, updated_at = ?1 WHERE name = ?2 AND paused_at IS NOT NULL

-- name: paused_queues
SELECT name, paused_at FROM {queues} WHERE paused_at IS NOT NULL ORDER BY name

-- name: prune_batch
-- One short write transaction per batch: the oldest finished jobs first, by the index on
-- finished_at (set only on final states).
DELETE FROM {jobs}
WHERE id IN (SELECT id FROM {jobs} INDEXED BY {jobs_finished}
             WHERE finished_at IS NOT NULL AND finished_at < ?
               AND state IN ('succeeded','failed','cancelled','expired')
             ORDER BY finished_at
             LIMIT ?)
RETURNING id

-- name: prune_attempts
DELETE FROM {attempts} WHERE job_id IN (SELECT value FROM json_each(?))

-- name: count_prunable
SELECT count(*) FROM {jobs} INDEXED BY {jobs_finished}
WHERE finished_at IS NOT NULL AND finished_at < ?

-- name: throughput
SELECT queue, state, finished_at / 60000000 * 60000000 AS minute, count(*)
FROM {jobs} INDEXED BY {jobs_finished}
WHERE finished_at IS NOT NULL AND finished_at >= ?
  AND state IN ('succeeded','failed','cancelled','expired')
GROUP BY queue, state, minute
ORDER BY minute, queue, state

-- name: recent_attempts
-- Attempts of the jobs that ended since ?1 (found by the finished_at index).
SELECT j.queue, a.outcome, a.finished_at - a.started_at
FROM {jobs} AS j INDEXED BY {jobs_finished}
JOIN {attempts} AS a ON a.job_id = j.id
WHERE j.finished_at IS NOT NULL AND j.finished_at >= ?1
  AND a.started_at IS NOT NULL AND a.finished_at IS NOT NULL
LIMIT ?2

-- name: queue_names
-- Distinct queues by skipping through the (queue, state, run_at) index: one seek per queue,
-- whatever the number of jobs; plus the queues of running jobs (which that index leaves
-- out; jobs_lease has them) and queues known only from their settings.
WITH RECURSIVE q(name) AS (
    SELECT min(queue) FROM {jobs} INDEXED BY {jobs_queue_state} WHERE state <> 'running'
    UNION ALL
    SELECT (SELECT min(queue) FROM {jobs} INDEXED BY {jobs_queue_state}
            WHERE state <> 'running' AND queue > q.name)
    FROM q WHERE q.name IS NOT NULL
)
SELECT name FROM q WHERE name IS NOT NULL
UNION
SELECT queue FROM {jobs} INDEXED BY {jobs_lease} WHERE state = 'running'
UNION
SELECT name FROM {queues}

-- name: count_queue_state
-- Exact count of one queue in one state (not running), over the covering (queue, state,
-- run_at) index.
SELECT count(*), coalesce(sum(run_at <= ?3), 0)
FROM {jobs} INDEXED BY {jobs_queue_state} WHERE queue = ?1 AND state = ?2 AND state <> 'running'

-- name: count_running
-- One queue's running jobs, from the partial index on running jobs (few: one per busy slot).
SELECT count(*), coalesce(sum(run_at <= ?3), 0)
FROM {jobs} INDEXED BY {jobs_lease} WHERE state = 'running' AND queue = ?1 AND state = ?2

-- name: sample_queue_state
-- The first ?3 entries of one queue in one state, in run_at order: how many, and the run_at
-- span they cover (the estimate of a big count extrapolates over the whole span).
SELECT count(*), min(run_at), max(run_at)
FROM (SELECT run_at FROM {jobs} INDEXED BY {jobs_queue_state}
      WHERE queue = ?1 AND state = ?2 AND state <> 'running' ORDER BY run_at LIMIT ?3)

-- name: last_run_at
SELECT max(run_at) FROM {jobs} INDEXED BY {jobs_queue_state}
WHERE queue = ?1 AND state = ?2 AND state <> 'running'

-- name: oldest_due
-- One index probe per queue and waiting state.
SELECT min(run_at) FROM {jobs} INDEXED BY {jobs_queue_state}
WHERE queue = ?1 AND state = ?2 AND state <> 'running' AND run_at <= ?3

-- name: run_now
UPDATE {jobs} SET run_at = min(run_at, ?1), updated_at = ?1
WHERE id = ?2 AND state IN ('queued','retrying')
RETURNING {cols}

-- name: index_ids
-- Ids of one queue's jobs in one stored state, run_at within [?3, ?4], ids below ?5: one
-- range of the (queue, state, run_at) index, which holds the rowid (the id) of each entry,
-- so the table is not read. The job list's queue and state filters (admin.py).
SELECT id FROM {jobs} INDEXED BY {jobs_queue_state}
WHERE queue = ?1 AND state = ?2 AND state <> 'running' AND run_at BETWEEN ?3 AND ?4 AND id < ?5
LIMIT ?6

-- name: index_ids_running
-- The same for running jobs, which that index leaves out: from the partial index on
-- running jobs (few: one per busy slot).
SELECT id FROM {jobs} INDEXED BY {jobs_lease}
WHERE state = 'running' AND queue = ?1 AND state = ?2 AND run_at BETWEEN ?3 AND ?4 AND id < ?5
LIMIT ?6

-- name: jobs_by_ids
SELECT {cols} FROM {jobs} WHERE id IN (SELECT value FROM json_each(?1)) ORDER BY id DESC

-- name: newest_matching
-- Many matches: the table walked by id, newest first (NOT INDEXED: never an index range
-- of every match and a sort), keeping queue ?1 (NULL: any) and stored state ?2 (NULL:
-- any) with run_at within [?3, ?4], ids below ?5.
SELECT {cols} FROM {jobs} NOT INDEXED
WHERE (?1 IS NULL OR queue = ?1) AND (?2 IS NULL OR state = ?2) AND run_at BETWEEN ?3 AND ?4
  AND id < ?5
ORDER BY id DESC LIMIT ?6

-- name: ended_jobs
-- Jobs that ended after (?1, ?2) and before ?3, in (finished_at, id) order: the partial
-- index on finished_at holds the rowid, so this is one index range (the plain bounds on
-- finished_at are what make it one: the cursor's OR alone would not bound it).
SELECT id, queue, state, finished_at FROM {jobs} INDEXED BY {jobs_finished}
WHERE finished_at IS NOT NULL AND finished_at >= ?1 AND finished_at < ?3
  AND (finished_at > ?1 OR id > ?2)
  AND state IN ('succeeded','failed','cancelled','expired')
ORDER BY finished_at, id
LIMIT ?4

-- name: attempt_durations
SELECT job_id, outcome, finished_at - started_at FROM {attempts}
WHERE job_id IN (SELECT value FROM json_each(?1)) AND started_at IS NOT NULL AND finished_at IS NOT NULL
ORDER BY job_id, attempt
