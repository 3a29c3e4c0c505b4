-- Named queries of the PostgreSQL store (psycopg named placeholders).
-- {jobs}, {attempts}, {migrations}, {channel} are quoted identifiers; {cols} is the
-- job_columns block below. %(now)s is NULL under the real clock, so the database's now()
-- decides; under a virtual clock it carries the clock's time into every statement.
-- Rows that may make a job due end with one extra column that sends pg_notify on the
-- channel %(channel)s (NULL: send nothing); it is delivered when the transaction commits.

-- name: job_columns
id, task, queue, args::text, kwargs::text, priority,
CASE WHEN state = 'queued' AND run_at > coalesce(%(now)s::timestamptz, now())
     THEN 'scheduled' ELSE state END,
run_at, expires_at, key, attempt, errors, max_attempts, lease_seconds, worker_id,
lease_expires_at, started_at, cancel_requested, progress_done, progress_total, result::text,
last_error, created_at, updated_at, finished_at, trigger_id

-- name: claim_columns
-- What a claim returns: what it does not know already (state and worker are its own).
id, task, queue, args::text, kwargs::text, priority, run_at, expires_at, key, attempt, errors,
max_attempts, lease_seconds, result::text, last_error, created_at, trigger_id, started_at,
lease_expires_at

-- name: insert
WITH ins AS (
    INSERT INTO {jobs} (task, queue, args, kwargs, priority, state, run_at, expires_at, key,
                        max_attempts, lease_seconds, trigger_id, created_at, updated_at)
    SELECT %(task)s::text, %(queue)s::text, %(args)s::jsonb, %(kwargs)s::jsonb,
           %(priority)s::integer, 'queued',
           coalesce(%(run_at)s::timestamptz, t.now + %(delay)s::float8 * interval '1 second'),
           coalesce(%(expires_at)s::timestamptz,
                    t.now + %(expires_in)s::float8 * interval '1 second'),
           %(key)s::text, %(max_attempts)s::integer,
           %(lease_seconds)s::float8, %(trigger_id)s::bigint, t.now, t.now
    FROM (SELECT coalesce(%(now)s::timestamptz, now()) AS now) AS t
    ON CONFLICT (key) WHERE key IS NOT NULL AND state IN ('queued','retrying','running')
    DO NOTHING
    RETURNING *
)
SELECT {cols},
       CASE WHEN %(channel)s::text IS NOT NULL
                 AND run_at <= coalesce(%(now)s::timestamptz, now())
            THEN pg_notify(%(channel)s::text, queue) IS NULL END
FROM ins

-- name: insert_keyless
-- A job without a key has no conflict to settle, so no ON CONFLICT (a speculative insertion)
-- and it returns only what the database decides: its id and times. The caller knows the
-- rest (the same Job as a whole-row RETURNING; a contract test compares them).
WITH t AS (
    SELECT coalesce(%(now)s::timestamptz, now()) AS now
), ins AS (
    INSERT INTO {jobs} (task, queue, args, kwargs, priority, state, run_at, expires_at,
                        max_attempts, lease_seconds, trigger_id, created_at, updated_at)
    SELECT %(task)s::text, %(queue)s::text, %(args)s::jsonb, %(kwargs)s::jsonb,
           %(priority)s::integer, 'queued',
           coalesce(%(run_at)s::timestamptz, t.now + %(delay)s::float8 * interval '1 second'),
           coalesce(%(expires_at)s::timestamptz,
                    t.now + %(expires_in)s::float8 * interval '1 second'),
           %(max_attempts)s::integer, %(lease_seconds)s::float8, %(trigger_id)s::bigint,
           t.now, t.now
    FROM t
    RETURNING id, run_at, expires_at, created_at
)
SELECT ins.id, ins.run_at, ins.expires_at, ins.created_at, ins.run_at > t.now,
       CASE WHEN %(channel)s::text IS NOT NULL AND ins.run_at <= t.now
            THEN pg_notify(%(channel)s::text, %(queue)s::text) IS NULL END
FROM ins, t

-- name: live_by_key
SELECT {cols} FROM {jobs}
WHERE key = %(key)s::text AND state IN ('queued','retrying','running')

-- name: replace
WITH upd AS (
    UPDATE {jobs}
    SET task = %(task)s::text, queue = %(queue)s::text, args = %(args)s::jsonb,
        kwargs = %(kwargs)s::jsonb, priority = %(priority)s::integer, state = 'queued',
        run_at = coalesce(%(run_at)s::timestamptz,
                          coalesce(%(now)s::timestamptz, now())
                          + %(delay)s::float8 * interval '1 second'),
        expires_at = coalesce(%(expires_at)s::timestamptz,
                              coalesce(%(now)s::timestamptz, now())
                              + %(expires_in)s::float8 * interval '1 second'),
        max_attempts = %(max_attempts)s::integer,
        lease_seconds = %(lease_seconds)s::float8, trigger_id = %(trigger_id)s::bigint,
        errors = 0, cancel_requested = false, progress_done = NULL, progress_total = NULL,
        updated_at = coalesce(%(now)s::timestamptz, now())
    WHERE id = %(id)s::bigint AND state IN ('queued','retrying')
    RETURNING *
)
SELECT {cols},
       CASE WHEN %(channel)s::text IS NOT NULL
                 AND run_at <= coalesce(%(now)s::timestamptz, now())
            THEN pg_notify(%(channel)s::text, queue) IS NULL END
FROM upd

-- name: run_at_least_within
-- Bring the live job holding a key forward to now + %(seconds)s at the latest: a waiting
-- one at once; a running one keeps the bound in run_by, applied when its attempt ends and
-- it waits again (finish). A finish racing with this waits for the row lock, or makes
-- this wait and then see the job waiting again (the row is re-read under the lock).
WITH b AS (
    SELECT coalesce(%(now)s::timestamptz, now()) + %(seconds)s::float8 * interval '1 second' AS bound
), m AS (
    UPDATE {jobs}
    SET run_at = CASE WHEN state = 'running' THEN run_at ELSE least(run_at, b.bound) END,
        run_by = CASE WHEN state = 'running' THEN least(run_by, b.bound) ELSE run_by END,
        updated_at = coalesce(%(now)s::timestamptz, now())
    FROM b
    WHERE key = %(key)s::text AND state IN ('queued','retrying','running')
    RETURNING {jobs}.*
)
SELECT {cols},
       CASE WHEN state <> 'running' AND run_at <= coalesce(%(now)s::timestamptz, now())
            THEN pg_notify(%(channel)s::text, queue) IS NULL END
FROM m

-- name: sequence_name
SELECT pg_get_serial_sequence(%(table)s::text, 'id')

-- name: reserve_ids
-- The bulk insert's ids (ascending) and the time its jobs are created at.
SELECT coalesce(%(now)s::timestamptz, now()),
       array(SELECT nextval(%(sequence)s::regclass) FROM generate_series(1, %(n)s::integer))

-- name: copy_jobs
COPY {jobs} (id, task, queue, args, kwargs, priority, state, run_at, expires_at, key,
             max_attempts, lease_seconds, trigger_id, created_at, updated_at)
FROM STDIN

-- name: notify_queues
SELECT pg_notify(%(channel)s::text, q) IS NULL FROM unnest(%(queues)s::text[]) AS q

-- name: claim_any
-- The claimed ids go to the UPDATE as an array (id = ANY): a primary-key probe per id. As a
-- CTE joined by id, the planner hashed the whole table for each claim (a sequential scan:
-- 10 of 25 ms for 1,000 claims over 30,000 rows, growing with the table).
-- The claim commits without waiting for the WAL flush (set_config(..., true) in RETURNING:
-- this transaction only, and only when it claimed something): 0.2 instead of 0.4 ms here,
-- a third of the enqueue-to-start time. A server crash may lose such a claim: the job is
-- waiting again and its attempt number will be handed out again, so heartbeats, progress
-- and finishes are fenced on the attempt's started_at as well (a new claim never has the
-- same), and the first holder's outcome is refused as stale. Its work was done: the job
-- runs again (at least once), as after any lost lease.
UPDATE {jobs}
SET state = 'running', attempt = attempt + 1, worker_id = %(worker_id)s::text,
    started_at = coalesce(%(now)s::timestamptz, now()),
    lease_expires_at = coalesce(%(now)s::timestamptz, now()) + lease_seconds * interval '1 second',
    updated_at = coalesce(%(now)s::timestamptz, now()),
    cancel_requested = false, progress_done = NULL, progress_total = NULL
WHERE id = ANY(ARRAY(
        SELECT id FROM {jobs}
        WHERE state IN ('queued','retrying')
          AND run_at <= coalesce(%(now)s::timestamptz, now())
          AND (expires_at IS NULL OR expires_at > coalesce(%(now)s::timestamptz, now()))
          AND task <> ALL(%(exclude_tasks)s::text[])
          AND queue <> ALL(%(exclude_queues)s::text[])
        ORDER BY priority DESC, run_at, id
        LIMIT %(limit)s::integer
        FOR UPDATE SKIP LOCKED
))
RETURNING {claim_cols}, set_config('synchronous_commit', 'off', true)

-- name: claim_queues
UPDATE {jobs}
SET state = 'running', attempt = attempt + 1, worker_id = %(worker_id)s::text,
    started_at = coalesce(%(now)s::timestamptz, now()),
    lease_expires_at = coalesce(%(now)s::timestamptz, now()) + lease_seconds * interval '1 second',
    updated_at = coalesce(%(now)s::timestamptz, now()),
    cancel_requested = false, progress_done = NULL, progress_total = NULL
WHERE id = ANY(ARRAY(
        SELECT id FROM {jobs}
        WHERE state IN ('queued','retrying')
          AND run_at <= coalesce(%(now)s::timestamptz, now())
          AND (expires_at IS NULL OR expires_at > coalesce(%(now)s::timestamptz, now()))
          AND queue = ANY(%(queues)s::text[])
          AND task <> ALL(%(exclude_tasks)s::text[])
          AND queue <> ALL(%(exclude_queues)s::text[])
        ORDER BY priority DESC, run_at, id
        LIMIT %(limit)s::integer
        FOR UPDATE SKIP LOCKED
))
RETURNING {claim_cols}, set_config('synchronous_commit', 'off', true)

-- name: heartbeat
-- Batch writers (heartbeat, finish) lock their rows in id order first, so that they never
-- deadlock one another; the fence (state, attempt) is computed on the locked row, the
-- latest version. The lock reaches the table by id = ANY(the ids) and the UPDATE joins the
-- lock by id alone: primary-key probes, no filter that a partial index could serve (stale
-- statistics on a busy queue cannot turn the plan quadratic; see finish).
WITH h AS (
    SELECT * FROM unnest(%(ids)s::bigint[], %(attempts)s::integer[], %(started)s::timestamptz[])
             AS h(hb_id, hb_attempt, hb_started)
), l AS (
    SELECT j.id AS lock_id,
           (j.state = 'running' AND j.attempt = h.hb_attempt
            AND (h.hb_started IS NULL OR j.started_at = h.hb_started)) AS fenced
    FROM h JOIN {jobs} AS j ON j.id = h.hb_id
    WHERE j.id = ANY(%(ids)s::bigint[])
    ORDER BY j.id
    FOR UPDATE OF j
)
UPDATE {jobs}
SET lease_expires_at = coalesce(%(now)s::timestamptz, now()) + lease_seconds * interval '1 second',
    updated_at = coalesce(%(now)s::timestamptz, now())
FROM l
WHERE id = l.lock_id AND l.fenced
RETURNING id, cancel_requested

-- name: progress
UPDATE {jobs}
SET progress_done = %(done)s::bigint, progress_total = %(total)s::bigint,
    updated_at = coalesce(%(now)s::timestamptz, now())
WHERE id = %(id)s::bigint AND attempt = %(attempt)s::integer AND state = 'running'
  AND (%(started)s::timestamptz IS NULL OR started_at = %(started)s::timestamptz)

-- name: finish
-- One row per item in the arrays (see duly.core.transitions.plan_finish): state, delay or
-- absolute run_at, errors delta (-1 resets), result, error summary, final; plus the attempt row.
-- A job whose cancel was requested while it ran does not wait again: an outcome that would
-- make it wait (retrying, or queued by a reschedule / snooze / interrupt) ends it cancelled;
-- the attempt row keeps its own outcome. A job that waits again runs no later than its
-- run_by bound (run_at_least_within while it ran), which is then cleared. SET expressions
-- read the row as it was (j): the latest version, locked in l. The lock reaches the table
-- by id = ANY(ids), so no plan hashes the whole table for it (a sequential scan per batch);
-- the UPDATE joins l by id alone, a primary-key probe per row (l's estimate is small: an
-- id = ANY here too let a plan probe the whole batch once per row, 120 ms per 500 jobs).
WITH t AS (
    SELECT coalesce(%(now)s::timestamptz, now()) AS now
), v AS (
    SELECT v.*,
           coalesce(v.f_run_at, t.now + v.f_delay * interval '1 second') AS f_new_run_at,
           t.now AS f_now
    FROM t, unnest(%(ids)s::bigint[], %(attempts)s::integer[], %(states)s::text[],
                   %(delays)s::float8[], %(run_ats)s::timestamptz[], %(deltas)s::integer[],
                   %(results)s::text[], %(summaries)s::text[], %(finals)s::boolean[],
                   %(outcomes)s::text[], %(error_types)s::text[], %(error_messages)s::text[],
                   %(tracebacks)s::text[], %(logs)s::text[], %(progress_done)s::bigint[],
                   %(progress_total)s::bigint[], %(started)s::timestamptz[])
         AS v(f_id, f_attempt, f_state, f_delay, f_run_at, f_delta, f_result, f_summary,
              f_final, f_outcome, f_error_type, f_error_message, f_traceback, f_log,
              f_progress_done, f_progress_total, f_started)
), l AS (
    -- lock in id order, fence on the locked row (see heartbeat)
    SELECT v.*, j.id AS lock_id,
           (j.state = 'running' AND j.attempt = v.f_attempt
            AND (v.f_started IS NULL OR j.started_at = v.f_started)) AS fenced
    FROM v JOIN {jobs} AS j ON j.id = v.f_id
    WHERE j.id = ANY(%(ids)s::bigint[])
    ORDER BY j.id
    FOR UPDATE OF j
), u AS (
    UPDATE {jobs} AS j
    SET state = CASE WHEN j.cancel_requested AND l.f_state IN ('retrying','queued')
                     THEN 'cancelled'
                     WHEN l.f_state = 'retrying' AND j.expires_at IS NOT NULL
                          AND least(l.f_new_run_at, j.run_by) >= j.expires_at
                     THEN 'expired' ELSE l.f_state END,
        run_at = CASE WHEN l.f_state IN ('retrying','queued')
                      THEN least(coalesce(l.f_new_run_at, j.run_at), j.run_by)
                      ELSE coalesce(l.f_new_run_at, j.run_at) END,
        run_by = NULL,
        errors = CASE WHEN l.f_delta < 0 THEN 0 ELSE j.errors + l.f_delta END,
        result = l.f_result::jsonb,
        last_error = coalesce(l.f_summary, j.last_error),
        lease_expires_at = NULL,
        cancel_requested = false,
        finished_at = CASE WHEN l.f_final
                                OR (j.cancel_requested AND l.f_state IN ('retrying','queued'))
                                OR (l.f_state = 'retrying' AND j.expires_at IS NOT NULL
                                    AND least(l.f_new_run_at, j.run_by) >= j.expires_at)
                           THEN l.f_now END,
        progress_done = coalesce(l.f_progress_done, j.progress_done),
        progress_total = CASE WHEN l.f_progress_done IS NULL THEN j.progress_total
                              ELSE l.f_progress_total END,
        updated_at = l.f_now
    FROM l
    WHERE j.id = l.lock_id AND l.fenced
    RETURNING j.id, j.attempt, j.worker_id, j.started_at, j.queue, j.state, l.f_now,
              l.f_outcome, l.f_error_type, l.f_error_message, l.f_traceback, l.f_log
), a AS (
    INSERT INTO {attempts} (job_id, attempt, worker_id, started_at, finished_at, outcome,
                            error_type, error_message, traceback, log)
    SELECT id, attempt, worker_id, started_at, f_now, f_outcome, f_error_type,
           f_error_message, f_traceback, f_log
    FROM u
    RETURNING job_id, attempt
), n AS (
    SELECT count(pg_notify(%(channel)s::text, u.queue)) AS sent FROM u WHERE u.state = 'queued'
)
SELECT a.job_id, a.attempt, n.sent FROM a, n

-- name: finish_succeeded
-- Plain successes, the bulk of any batch, with six arrays instead of sixteen (see finish for
-- every other outcome, and for the locking and fencing, which are the same).
WITH t AS (
    SELECT coalesce(%(now)s::timestamptz, now()) AS now
), v AS (
    -- Each column comes as one text (ids and attempts an array, the rest a JSON array):
    -- the driver would dump lists element by element in Python.
    SELECT v.f_id, v.f_attempt, v.f_result, v.f_log, v.f_progress_done::bigint AS f_progress_done,
           v.f_progress_total::bigint AS f_progress_total,
           v.f_started::timestamptz AS f_started, t.now AS f_now
    FROM t, ROWS FROM (
        unnest(%(ids)s::bigint[]), unnest(%(attempts)s::integer[]),
        json_array_elements_text(%(results)s::json), json_array_elements_text(%(logs)s::json),
        json_array_elements_text(%(progress_done)s::json),
        json_array_elements_text(%(progress_total)s::json),
        json_array_elements_text(%(started)s::json)
    ) AS v(f_id, f_attempt, f_result, f_log, f_progress_done, f_progress_total, f_started)
), l AS (
    SELECT v.*, j.id AS lock_id,
           (j.state = 'running' AND j.attempt = v.f_attempt
            AND (v.f_started IS NULL OR j.started_at = v.f_started)) AS fenced
    FROM v JOIN {jobs} AS j ON j.id = v.f_id
    WHERE j.id = ANY(%(ids)s::bigint[])
    ORDER BY j.id
    FOR UPDATE OF j
), u AS (
    UPDATE {jobs} AS j
    SET state = 'succeeded',
        run_by = NULL,
        result = l.f_result::jsonb,
        lease_expires_at = NULL,
        cancel_requested = false,
        finished_at = l.f_now,
        progress_done = coalesce(l.f_progress_done, j.progress_done),
        progress_total = CASE WHEN l.f_progress_done IS NULL THEN j.progress_total
                              ELSE l.f_progress_total END,
        updated_at = l.f_now
    FROM l
    WHERE j.id = l.lock_id AND l.fenced
    RETURNING j.id, j.attempt, j.worker_id, j.started_at, l.f_now, l.f_log
)
INSERT INTO {attempts} (job_id, attempt, worker_id, started_at, finished_at, outcome, log)
SELECT id, attempt, worker_id, started_at, f_now, 'succeeded', f_log FROM u
RETURNING job_id, attempt

-- name: rescue
-- Attempts whose lease ran out end as 'lost' (counted); their jobs wait again (now), fail
-- when no attempts are left, are cancelled when a cancel was requested, or expire when past
-- expires_at. Waiting jobs past their expiry expire. Rows another transaction holds are
-- skipped: the next rescue takes them.
WITH t AS (
    SELECT coalesce(%(now)s::timestamptz, now()) AS now
), r AS (
    SELECT r.id AS rescue_id, t.now AS r_now FROM {jobs} AS r, t
    WHERE r.state = 'running'
      AND r.lease_expires_at < coalesce(%(now)s::timestamptz, now())  -- an index condition
    ORDER BY r.id
    FOR UPDATE OF r SKIP LOCKED
), u AS (
    UPDATE {jobs} AS j
    SET state = CASE WHEN j.errors + 1 >= j.max_attempts THEN 'failed'
                     WHEN j.cancel_requested THEN 'cancelled'
                     WHEN j.expires_at IS NOT NULL AND j.expires_at <= r.r_now THEN 'expired'
                     ELSE 'retrying' END,
        errors = j.errors + 1,
        run_at = r.r_now,
        lease_expires_at = NULL,
        cancel_requested = false,
        last_error = 'LeaseExpired: worker ' || coalesce(j.worker_id, '?')
                     || ' stopped renewing the lease of attempt ' || j.attempt,
        finished_at = CASE WHEN j.errors + 1 >= j.max_attempts OR j.cancel_requested
                                OR (j.expires_at IS NOT NULL AND j.expires_at <= r.r_now)
                           THEN r.r_now END,
        updated_at = r.r_now
    FROM r
    WHERE j.id = r.rescue_id  -- locked above, still running with an expired lease
    RETURNING j.id, j.attempt, j.worker_id, j.started_at, j.last_error, r.r_now
), a AS (
    INSERT INTO {attempts} (job_id, attempt, worker_id, started_at, finished_at, outcome,
                            error_type, error_message, traceback, log)
    SELECT id, attempt, worker_id, started_at, r_now, 'lost', 'LeaseExpired', last_error,
           NULL, NULL
    FROM u
), x AS (
    SELECT x.id AS expire_id, t.now AS x_now FROM {jobs} AS x, t
    WHERE x.state IN ('queued','retrying') AND x.expires_at IS NOT NULL
      AND x.expires_at <= coalesce(%(now)s::timestamptz, now())
    FOR UPDATE OF x SKIP LOCKED
), e AS (
    UPDATE {jobs} AS j
    SET state = 'expired', finished_at = x.x_now, updated_at = x.x_now
    FROM x
    WHERE j.id = x.expire_id  -- locked above, still waiting past its expiry
)
SELECT id, attempt FROM u ORDER BY id

-- name: cancel
-- A waiting job is cancelled at once; a running one gets a cancel request.
UPDATE {jobs}
SET state = CASE WHEN state = 'running' THEN 'running' ELSE 'cancelled' END,
    cancel_requested = (state = 'running') OR cancel_requested,
    finished_at = CASE WHEN state = 'running' THEN finished_at
                       ELSE coalesce(%(now)s::timestamptz, now()) END,
    updated_at = coalesce(%(now)s::timestamptz, now())
WHERE id = %(id)s::bigint AND state IN ('queued','retrying','running')
RETURNING {cols}

-- name: retry
WITH r AS (
    UPDATE {jobs}
    SET state = 'queued', run_at = coalesce(%(now)s::timestamptz, now()), errors = 0,
        finished_at = NULL, cancel_requested = false,
        expires_at = CASE WHEN expires_at IS NOT NULL
                               AND expires_at <= coalesce(%(now)s::timestamptz, now())
                          THEN NULL ELSE expires_at END,
        updated_at = coalesce(%(now)s::timestamptz, now())
    WHERE id = %(id)s::bigint AND state IN ('failed','cancelled','expired')
    RETURNING *
)
SELECT {cols}, pg_notify(%(channel)s::text, queue) IS NULL FROM r

-- name: delete
WITH d AS (
    DELETE FROM {jobs} WHERE id = %(id)s::bigint RETURNING id
), a AS (
    DELETE FROM {attempts} WHERE job_id = %(id)s::bigint
)
SELECT count(*) FROM d

-- name: get_job
SELECT {cols} FROM {jobs} WHERE id = %(id)s::bigint

-- name: list_jobs
-- Every filter is optional (NULL: not applied); run unprepared so each call gets a plan
-- for the filters it uses. %(part)s 'rest' keeps jobs that are not running, 'running' the
-- running ones: a filter by task asks for both parts apart (store.py), so the first can walk
-- the (task, id) index, which leaves running jobs out, and the second jobs_lease.
SELECT {cols} FROM {jobs}
WHERE (%(part)s::text IS NULL
       OR (%(part)s::text = 'rest' AND state <> 'running')
       OR (%(part)s::text = 'running' AND state = 'running'))
  AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
  AND (%(state)s::text IS NULL
       OR (%(state)s::text = 'scheduled' AND state = 'queued'
           AND run_at > coalesce(%(now)s::timestamptz, now()))
       OR (%(state)s::text = 'queued' AND state = 'queued'
           AND run_at <= coalesce(%(now)s::timestamptz, now()))
       OR (%(state)s::text NOT IN ('scheduled','queued') AND state = %(state)s::text))
  AND (%(task)s::text IS NULL OR task = %(task)s::text)
  AND (%(text)s::text IS NULL
       OR task ILIKE %(text)s::text OR key ILIKE %(text)s::text
       OR args::text ILIKE %(text)s::text OR kwargs::text ILIKE %(text)s::text
       OR last_error ILIKE %(text)s::text)
  AND (%(before_id)s::bigint IS NULL OR id < %(before_id)s::bigint)
  AND (%(after_id)s::bigint IS NULL OR id > %(after_id)s::bigint)
  AND (%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s::bigint[]))
ORDER BY id DESC
LIMIT %(limit)s::integer

-- name: attempts
SELECT job_id, attempt, worker_id, started_at, finished_at, outcome, error_type,
       error_message, traceback, log
FROM {attempts} WHERE job_id = %(id)s::bigint ORDER BY attempt

-- name: stats
-- The last column counts running jobs whose lease has run out (waiting, until rescued).
SELECT queue,
       CASE WHEN state = 'queued' AND run_at > coalesce(%(now)s::timestamptz, now())
            THEN 'scheduled' ELSE state END AS presented,
       count(*),
       count(*) FILTER (WHERE state = 'running'
                        AND lease_expires_at < coalesce(%(now)s::timestamptz, now()))
FROM {jobs}
GROUP BY queue, presented

-- name: lease_expired
SELECT queue, count(*) FROM {jobs}
WHERE state = 'running' AND lease_expires_at < coalesce(%(now)s::timestamptz, now())
GROUP BY queue

-- name: next_run_at
SELECT min(run_at) FROM {jobs}
WHERE state IN ('queued','retrying')
  AND (%(queues)s::text[] IS NULL OR queue = ANY(%(queues)s::text[]))

-- name: now
SELECT coalesce(%(now)s::timestamptz, now())

-- name: listen
LISTEN {channel}

-- name: migrate_lock
-- Held until the migrating transaction ends, so concurrent migrators run one after another.
SELECT pg_advisory_xact_lock(hashtext(%(lock)s::text))

-- name: create_migrations
CREATE TABLE IF NOT EXISTS {migrations} (
    version    integer PRIMARY KEY,
    applied_at timestamptz NOT NULL
)

-- name: schema_version
SELECT coalesce(max(version), 0) FROM {migrations}

-- name: record_migration
INSERT INTO {migrations} (version, applied_at) VALUES (%(version)s::integer, now())

-- name: analyze_jobs
ANALYZE {jobs}
