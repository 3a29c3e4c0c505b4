-- Named queries of the SQLite store's triggers. {tcols} is the trigger column list.

-- name: trigger_insert
INSERT INTO {triggers} (name, kind, spec, timezone, task, args, kwargs, options, catch_up,
                        catch_up_limit, start_at, end_at, debounce, filter, secret, declared,
                        next_fire_at, created_at, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?18)
ON CONFLICT (name) DO NOTHING
RETURNING {tcols}

-- name: trigger_update_declared
-- A trigger declared in code again: take the code's rule; keep the state unless the schedule
-- itself changed (then its next fire time is recomputed).
UPDATE {triggers}
SET next_fire_at = CASE WHEN kind IS ?2 AND spec IS ?3 AND timezone IS ?4 AND start_at IS ?11
                             AND end_at IS ?12 THEN next_fire_at ELSE ?17 END,
    kind = ?2, spec = ?3, timezone = ?4, task = ?5, args = ?6, kwargs = ?7, options = ?8,
    catch_up = ?9, catch_up_limit = ?10, start_at = ?11, end_at = ?12, debounce = ?13,
    filter = ?14, declared = 1, updated_at = ?18
WHERE name = ?1
RETURNING {tcols}

-- name: trigger_get
SELECT {tcols} FROM {triggers} WHERE name = ?

-- name: trigger_by_id
SELECT {tcols} FROM {triggers} WHERE id = ?

-- name: trigger_by_secret
SELECT {tcols} FROM {triggers} WHERE secret = ? AND kind = 'webhook'

-- name: trigger_list
SELECT {tcols} FROM {triggers} ORDER BY name

-- name: trigger_events
SELECT {tcols} FROM {triggers} WHERE kind = 'event' AND paused = 0

-- name: trigger_delete
DELETE FROM {triggers} WHERE name = ?

-- name: trigger_pause
UPDATE {triggers} SET paused = ?2, next_fire_at = ?3, updated_at = ?4 WHERE name = ?1
RETURNING {tcols}

-- name: trigger_due
SELECT {tcols} FROM {triggers}
WHERE paused = 0 AND next_fire_at IS NOT NULL AND next_fire_at <= ?
ORDER BY next_fire_at
LIMIT ?

-- name: trigger_next_fire
SELECT min(next_fire_at) FROM {triggers} WHERE paused = 0 AND next_fire_at IS NOT NULL

-- name: trigger_advance
-- Closing a debounce window (?7 = 1) removes the ?9 events the job took; events appended
-- since the scheduler read the window stay, in a new window that ends one debounce from now.
UPDATE {triggers}
SET next_fire_at = CASE WHEN ?7 = 1 AND json_array_length(coalesce(window_events, '[]')) > ?9
                        THEN ?8 + CAST(coalesce(debounce, 0) * 1000000 AS INTEGER) ELSE ?3 END,
    missed = missed + ?4,
    window_events = CASE WHEN ?7 = 1
                         THEN (SELECT CASE WHEN count(*) > 0 THEN json_group_array(value) END
                               FROM json_each(window_events) WHERE key >= ?9)
                         ELSE window_events END,
    updated_at = ?8
WHERE id = ?1 AND next_fire_at IS ?2

-- name: trigger_fired
UPDATE {triggers} SET last_fire_at = ?2, last_job_id = ?3, updated_at = ?2 WHERE id = ?1

-- name: trigger_manual
UPDATE {triggers} SET last_manual_at = ?2, last_manual_job_id = ?3, updated_at = ?2 WHERE id = ?1

-- name: trigger_delete_id
DELETE FROM {triggers} WHERE id = ?

-- name: slot_insert
INSERT INTO {slots} (trigger_id, slot_at, job_id) VALUES (?, ?, NULL)
ON CONFLICT DO NOTHING

-- name: slot_job
UPDATE {slots} SET job_id = ? WHERE trigger_id = ? AND slot_at = ?

-- name: window_append
UPDATE {triggers}
SET window_events = json_insert(coalesce(window_events, '[]'), '$[#]', json(?2)),
    next_fire_at = coalesce(next_fire_at, ?3), updated_at = ?4
WHERE id = ?1

-- name: trigger_jobs
SELECT id, state, started_at, finished_at, last_error FROM {jobs}
WHERE trigger_id = ? ORDER BY id DESC LIMIT 50
