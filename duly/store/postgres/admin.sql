-- Named queries of the PostgreSQL store's operating verbs (see admin.py): the worker
-- registry, paused queues, retention pruning, throughput and counts for the dashboard.
-- %(now)s is NULL under the real clock (the database's now() decides), as in queries.sql.

-- name: register_worker
INSERT INTO {workers} (id, hostname, pid, queues, concurrency, started_at, last_seen_at, stopping)
VALUES (%(id)s::text, %(hostname)s::text, %(pid)s::integer, %(queues)s::jsonb,
        %(concurrency)s::integer, coalesce(%(now)s::timestamptz, now()),
        coalesce(%(now)s::timestamptz, now()), false)
ON CONFLICT (id) DO UPDATE
SET hostname = excluded.hostname, pid = excluded.pid, queues = excluded.queues,
    concurrency = excluded.concurrency, last_seen_at = excluded.last_seen_at, stopping = false

-- name: touch_worker
UPDATE {workers} SET last_seen_at = coalesce(%(now)s::timestamptz, now())
WHERE id = %(id)s::text
RETURNING id

-- name: remove_worker
DELETE FROM {workers} WHERE id = %(id)s::text

-- name: forget_workers
WITH d AS (DELETE FROM {workers} WHERE last_seen_at < %(before)s::timestamptz RETURNING 1)
SELECT count(*) FROM d

-- name: list_workers
-- Running jobs per holder (how many and which) come from the partial index on running jobs
-- (jobs_lease).
SELECT w.id, w.hostname, w.pid, w.queues::text, w.concurrency, w.started_at, w.last_seen_at,
       w.last_seen_at >= coalesce(%(now)s::timestamptz, now())
                         - %(dead_after)s::float8 * interval '1 second',
       coalesce(r.n, 0), r.ids
FROM {workers} AS w
LEFT JOIN (SELECT worker_id, count(*) AS n, array_agg(id ORDER BY id) AS ids FROM {jobs}
           WHERE state = 'running' GROUP BY worker_id) AS r ON r.worker_id = w.id
ORDER BY w.started_at, w.id

-- name: pause_queue
-- Returns a row only when the queue was not paused before.
WITH old AS (
    SELECT paused_at FROM {queues} WHERE name = %(name)s::text
), up AS (
    INSERT INTO {queues} (name, paused_at, updated_at)
    VALUES (%(name)s::text, coalesce(%(now)s::timestamptz, now()), coalesce(%(now)s::timestamptz, now()))
    ON CONFLICT (name) DO UPDATE
    SET paused_at = coalesce({queues}.paused_at, excluded.paused_at), updated_at = excluded.updated_at
    RETURNING name
)
SELECT up.name FROM up WHERE NOT EXISTS (SELECT 1 FROM old WHERE old.paused_at IS NOT NULL)

-- name: resume_queue
UPDATE {queues} SET paused_at = NULL, updated_at = coalesce(%(now)s::timestamptz, now())
WHERE name = %(name)s::text AND paused_at IS NOT NULL
RETURNING name

-- name: paused_queues
SELECT name, paused_at FROM {queues} WHERE paused_at IS NOT NULL ORDER BY name

-- name: prune_batch
-- One short transaction per batch: lock the oldest finished jobs (skipping rows another
-- pruner holds), delete them and their attempts. Found by the partial index on finished_at.
WITH p AS (
    SELECT id FROM {jobs}
    WHERE finished_at IS NOT NULL AND finished_at < %(before)s::timestamptz
      AND state IN ('succeeded','failed','cancelled','expired')
    ORDER BY finished_at
    LIMIT %(batch)s::integer
    FOR UPDATE SKIP LOCKED
), d AS (
    DELETE FROM {jobs} AS j USING p WHERE j.id = p.id RETURNING j.id
), a AS (
    DELETE FROM {attempts} AS a USING d WHERE a.job_id = d.id
)
SELECT count(*) FROM d

-- name: count_prunable
SELECT count(*) FROM {jobs}
WHERE finished_at IS NOT NULL AND finished_at < %(before)s::timestamptz

-- name: throughput
SELECT queue, state, date_trunc('minute', finished_at) AS minute, count(*)
FROM {jobs}
WHERE finished_at IS NOT NULL AND finished_at >= %(since)s::timestamptz
  AND state IN ('succeeded','failed','cancelled','expired')
GROUP BY queue, state, minute
ORDER BY minute, queue, state

-- name: recent_attempts
-- Attempts of the jobs that ended since %(since)s (found by the finished_at index).
SELECT j.queue, a.outcome, extract(epoch FROM a.finished_at - a.started_at)::float8
FROM {jobs} AS j
JOIN {attempts} AS a ON a.job_id = j.id
WHERE j.finished_at IS NOT NULL AND j.finished_at >= %(since)s::timestamptz
  AND a.started_at IS NOT NULL AND a.finished_at IS NOT NULL
LIMIT %(limit)s::integer

-- name: queue_names
-- Distinct queues by skipping through the (queue, state, run_at) index: one index probe per
-- queue, whatever the number of jobs (a "loose index scan"); plus the queues of running
-- jobs (which that index leaves out: jobs_lease has them) and queues known only from their
-- settings.
WITH RECURSIVE q AS (
    (SELECT queue FROM {jobs} WHERE state <> 'running' ORDER BY queue LIMIT 1)
    UNION ALL
    SELECT (SELECT j.queue FROM {jobs} AS j
            WHERE j.state <> 'running' AND j.queue > q.queue ORDER BY j.queue LIMIT 1)
    FROM q WHERE q.queue IS NOT NULL
)
SELECT queue FROM q WHERE queue IS NOT NULL
UNION
SELECT queue FROM {jobs} WHERE state = 'running'
UNION
SELECT name FROM {queues}

-- name: no_jit
-- The counting statements are many small index scans whose cost estimates can look big:
-- compiling them with JIT would take longer than running them.
SET LOCAL jit = off

-- name: capped_count
-- One queue's jobs in one stored state, counting at most %(cap)s rows over the
-- (queue, state, run_at) index, in run_at order: "due" splits queued jobs into due now and
-- scheduled later, exact while it stays under the cap (due rows come first). A count that
-- reaches the cap is replaced by an estimate (admin.py). Run unprepared: a plan for these
-- very values.
SELECT count(*), count(*) FILTER (WHERE x.run_at <= coalesce(%(now)s::timestamptz, now()))
FROM (SELECT j.run_at FROM {jobs} AS j
      WHERE j.queue = %(queue)s::text AND j.state = %(state)s::text
      ORDER BY j.run_at
      LIMIT %(cap)s::integer) AS x

-- name: estimate_state
-- The planner's estimate of one queue's jobs in one state (extended statistics on
-- (queue, state) from migration 3), read from EXPLAIN: no rows are visited.
EXPLAIN (FORMAT JSON)
SELECT 1 FROM {jobs} WHERE queue = %(queue)s::text AND state = %(state)s::text

-- name: estimate_due
EXPLAIN (FORMAT JSON)
SELECT 1 FROM {jobs}
WHERE queue = %(queue)s::text AND state = 'queued'
  AND run_at <= coalesce(%(now)s::timestamptz, now())

-- name: oldest_due
-- One index probe per queue and state (least() skips NULLs).
SELECT q.name,
       least((SELECT min(j.run_at) FROM {jobs} AS j
              WHERE j.queue = q.name AND j.state = 'queued'
                AND j.run_at <= coalesce(%(now)s::timestamptz, now())),
             (SELECT min(j.run_at) FROM {jobs} AS j
              WHERE j.queue = q.name AND j.state = 'retrying'
                AND j.run_at <= coalesce(%(now)s::timestamptz, now())))
FROM unnest(%(queues)s::text[]) AS q(name)

-- name: run_now
UPDATE {jobs}
SET run_at = least(run_at, coalesce(%(now)s::timestamptz, now())),
    updated_at = coalesce(%(now)s::timestamptz, now())
WHERE id = %(id)s::bigint AND state IN ('queued','retrying')
RETURNING {cols}, pg_notify(%(channel)s::text, queue) IS NULL

-- name: index_ids
-- Ids of one queue's jobs in one stored state (due: run_at up to now; not due: after it;
-- NULL: any), ids below %(before)s: one range of the (queue, state, run_at) index. The job
-- list's queue and state filters (admin.py). Run unprepared: the constant branches fold.
SELECT id FROM {jobs}
WHERE queue = %(queue)s::text AND state = %(state)s::text
  AND (%(due)s::boolean IS DISTINCT FROM true OR run_at <= coalesce(%(now)s::timestamptz, now()))
  AND (%(due)s::boolean IS DISTINCT FROM false OR run_at > coalesce(%(now)s::timestamptz, now()))
  AND id < %(before)s::bigint
LIMIT %(limit)s::integer

-- name: jobs_by_ids
SELECT {cols} FROM {jobs} WHERE id = ANY(%(ids)s::bigint[]) ORDER BY id DESC

-- name: estimate_filter
-- The planner's estimate of the jobs in queue %(queue)s (NULL: any) and stored state
-- %(state)s (NULL: any), read from EXPLAIN: no rows are visited.
EXPLAIN (FORMAT JSON)
SELECT 1 FROM {jobs}
WHERE (%(queue)s::text IS NULL OR queue = %(queue)s::text)
  AND (%(state)s::text IS NULL OR state = %(state)s::text)

-- name: ended_jobs
-- Jobs that ended after (%(after)s, %(after_id)s) and before %(until)s, in (finished_at, id)
-- order (the index on finished_at), with the (outcome, seconds) of their attempts that ran.
SELECT j.id, j.queue, j.state, j.finished_at,
       coalesce((SELECT jsonb_agg(jsonb_build_array(a.outcome,
                                                    extract(epoch FROM a.finished_at - a.started_at))
                                  ORDER BY a.attempt)::text
                 FROM {attempts} AS a
                 WHERE a.job_id = j.id AND a.started_at IS NOT NULL AND a.finished_at IS NOT NULL), '[]')
FROM {jobs} AS j
WHERE j.finished_at IS NOT NULL AND j.finished_at < %(until)s::timestamptz
  AND j.finished_at >= %(after)s::timestamptz
  AND (j.finished_at, j.id) > (%(after)s::timestamptz, %(after_id)s::bigint)
  AND j.state IN ('succeeded','failed','cancelled','expired')
ORDER BY j.finished_at, j.id
LIMIT %(limit)s::integer
