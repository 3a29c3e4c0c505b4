-- Named queries of the PostgreSQL store's triggers. {tcols} is the trigger_columns block;
-- JSON columns are read as text. %(now)s as in queries.sql (NULL: the database's now()).

-- name: trigger_columns
id, name, kind, spec, timezone, task, args::text, kwargs::text, options::text, catch_up,
catch_up_limit, start_at, end_at, debounce, filter::text, secret, declared, paused,
next_fire_at, window_events::text, missed, last_fire_at, last_job_id, last_manual_at,
last_manual_job_id, created_at, updated_at

-- name: trigger_insert
INSERT INTO {triggers} (name, kind, spec, timezone, task, args, kwargs, options, catch_up,
                        catch_up_limit, start_at, end_at, debounce, filter, secret, declared,
                        next_fire_at, created_at, updated_at)
VALUES (%(name)s::text, %(kind)s::text, %(spec)s::text, %(timezone)s::text, %(task)s::text,
        %(args)s::jsonb, %(kwargs)s::jsonb, %(options)s::jsonb, %(catch_up)s::text,
        %(catch_up_limit)s::integer, %(start_at)s::timestamptz, %(end_at)s::timestamptz,
        %(debounce)s::float8, %(filter)s::jsonb, %(secret)s::text, %(declared)s::boolean,
        %(next_fire_at)s::timestamptz, coalesce(%(now)s::timestamptz, now()),
        coalesce(%(now)s::timestamptz, now()))
ON CONFLICT (name) DO NOTHING
RETURNING {tcols}

-- name: trigger_update_declared
-- A trigger declared in code again: take the code's rule; keep the state unless the schedule
-- itself changed (then its next fire time is recomputed).
UPDATE {triggers}
SET next_fire_at = CASE WHEN kind = %(kind)s::text
                             AND spec = %(spec)s::text
                             AND timezone IS NOT DISTINCT FROM %(timezone)s::text
                             AND start_at IS NOT DISTINCT FROM %(start_at)s::timestamptz
                             AND end_at IS NOT DISTINCT FROM %(end_at)s::timestamptz
                        THEN next_fire_at ELSE %(next_fire_at)s::timestamptz END,
    kind = %(kind)s::text, spec = %(spec)s::text, timezone = %(timezone)s::text,
    task = %(task)s::text, args = %(args)s::jsonb, kwargs = %(kwargs)s::jsonb,
    options = %(options)s::jsonb, catch_up = %(catch_up)s::text,
    catch_up_limit = %(catch_up_limit)s::integer, start_at = %(start_at)s::timestamptz,
    end_at = %(end_at)s::timestamptz, debounce = %(debounce)s::float8,
    filter = %(filter)s::jsonb, declared = true,
    updated_at = coalesce(%(now)s::timestamptz, now())
WHERE name = %(name)s::text
RETURNING {tcols}

-- name: trigger_get
SELECT {tcols} FROM {triggers} WHERE name = %(name)s::text

-- name: trigger_by_secret
SELECT {tcols} FROM {triggers} WHERE secret = %(secret)s::text AND kind = 'webhook'

-- name: trigger_list
SELECT {tcols} FROM {triggers} ORDER BY name

-- name: trigger_events
SELECT {tcols} FROM {triggers} WHERE kind = 'event' AND NOT paused

-- name: trigger_delete
DELETE FROM {triggers} WHERE name = %(name)s::text

-- name: trigger_pause
UPDATE {triggers}
SET paused = %(paused)s::boolean, next_fire_at = %(next_fire_at)s::timestamptz,
    updated_at = coalesce(%(now)s::timestamptz, now())
WHERE name = %(name)s::text
RETURNING {tcols}

-- name: trigger_due
-- A trigger another scheduler is firing right now (its fire transaction holds the row lock)
-- is skipped: reading it would only lead to a guarded update that waits, then matches
-- nothing. Correctness does not rest on this (the lock is gone when the read commits):
-- the guard in trigger_advance and the slots' primary key make each slot fire once.
SELECT {tcols} FROM {triggers}
WHERE NOT paused AND next_fire_at IS NOT NULL
  AND next_fire_at <= coalesce(%(now)s::timestamptz, now())
ORDER BY next_fire_at
LIMIT %(limit)s::integer
FOR NO KEY UPDATE SKIP LOCKED

-- name: trigger_next_fire
SELECT min(next_fire_at) FROM {triggers} WHERE NOT paused AND next_fire_at IS NOT NULL

-- name: trigger_advance
-- Guarded by the next fire time the scheduler read: a second scheduler recording the same
-- firing waits for the first one's row lock, then finds the time moved and matches nothing.
-- Closing a debounce window removes the %(taken)s events the job took; events appended
-- since the scheduler read the window stay, in a new window that ends one debounce from now.
UPDATE {triggers}
SET next_fire_at = CASE WHEN %(clear_window)s::boolean
                             AND jsonb_array_length(coalesce(window_events, '[]'::jsonb))
                                 > %(taken)s::integer
                        THEN coalesce(%(now)s::timestamptz, now())
                             + coalesce(debounce, 0) * interval '1 second'
                        ELSE %(next_fire_at)s::timestamptz END,
    missed = missed + %(missed)s::integer,
    window_events = CASE WHEN %(clear_window)s::boolean
                         THEN (SELECT jsonb_agg(w.e ORDER BY w.n)
                               FROM jsonb_array_elements(window_events) WITH ORDINALITY AS w(e, n)
                               WHERE w.n > %(taken)s::integer)
                         ELSE window_events END,
    updated_at = coalesce(%(now)s::timestamptz, now())
WHERE id = %(id)s::bigint AND next_fire_at IS NOT DISTINCT FROM %(expected)s::timestamptz
RETURNING id

-- name: trigger_fired
UPDATE {triggers}
SET last_fire_at = coalesce(%(now)s::timestamptz, now()), last_job_id = %(job_id)s::bigint,
    updated_at = coalesce(%(now)s::timestamptz, now())
WHERE id = %(id)s::bigint

-- name: trigger_manual
UPDATE {triggers}
SET last_manual_at = coalesce(%(now)s::timestamptz, now()), last_manual_job_id = %(job_id)s::bigint,
    updated_at = coalesce(%(now)s::timestamptz, now())
WHERE id = %(id)s::bigint

-- name: trigger_delete_id
DELETE FROM {triggers} WHERE id = %(id)s::bigint

-- name: slot_insert
-- The slot's unique key makes each slot fire once, whatever the number of schedulers.
INSERT INTO {slots} (trigger_id, slot_at, job_id)
VALUES (%(id)s::bigint, %(slot_at)s::timestamptz, NULL)
ON CONFLICT DO NOTHING
RETURNING slot_at

-- name: slot_job
UPDATE {slots} SET job_id = %(job_id)s::bigint
WHERE trigger_id = %(id)s::bigint AND slot_at = %(slot_at)s::timestamptz

-- name: window_append
UPDATE {triggers}
SET window_events = coalesce(window_events, '[]'::jsonb) || jsonb_build_array(%(event)s::jsonb),
    next_fire_at = coalesce(next_fire_at, %(window_end)s::timestamptz),
    updated_at = coalesce(%(now)s::timestamptz, now())
WHERE id = %(id)s::bigint

-- name: trigger_jobs
SELECT id, state, started_at, finished_at, last_error FROM {jobs}
WHERE trigger_id = %(id)s::bigint ORDER BY id DESC LIMIT 50
