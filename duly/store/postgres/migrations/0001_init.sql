-- duly schema version 1 (PostgreSQL).
CREATE TABLE {jobs} (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task             text        NOT NULL,
    queue            text        NOT NULL,
    args             jsonb       NOT NULL,
    kwargs           jsonb       NOT NULL,
    priority         integer     NOT NULL DEFAULT 0,
    state            text        NOT NULL CHECK (state IN
                        ('queued','running','retrying','succeeded','failed','cancelled','expired')),
    run_at           timestamptz NOT NULL,
    expires_at       timestamptz,
    key              text,
    attempt          integer     NOT NULL DEFAULT 0,
    errors           integer     NOT NULL DEFAULT 0,
    max_attempts     integer     NOT NULL CHECK (max_attempts >= 1),
    lease_seconds    double precision NOT NULL CHECK (lease_seconds > 0),
    worker_id        text,
    lease_expires_at timestamptz,
    started_at       timestamptz,
    cancel_requested boolean     NOT NULL DEFAULT false,
    progress_done    bigint,
    progress_total   bigint,
    result           jsonb,
    last_error       text,
    trigger_id       bigint,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    finished_at      timestamptz,
    CHECK ((state = 'running') = (lease_expires_at IS NOT NULL))
);
CREATE INDEX {jobs_fetch} ON {jobs} (priority DESC, run_at, id) WHERE state IN ('queued','retrying');
CREATE INDEX {jobs_lease} ON {jobs} (lease_expires_at) WHERE state = 'running';
CREATE INDEX {jobs_expiry} ON {jobs} (expires_at)
    WHERE expires_at IS NOT NULL AND state IN ('queued','retrying');
CREATE UNIQUE INDEX {jobs_key} ON {jobs} (key)
    WHERE key IS NOT NULL AND state IN ('queued','retrying','running');
CREATE INDEX {jobs_queue_state} ON {jobs} (queue, state, run_at);
CREATE INDEX {jobs_finished} ON {jobs} (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE {attempts} (
    job_id        bigint      NOT NULL,
    attempt       integer     NOT NULL,
    worker_id     text,
    started_at    timestamptz,
    finished_at   timestamptz,
    outcome       text        NOT NULL,
    error_type    text,
    error_message text,
    traceback     text,
    log           text,
    PRIMARY KEY (job_id, attempt)
);

CREATE TABLE {workers} (
    id           text PRIMARY KEY,
    hostname     text NOT NULL,
    pid          integer NOT NULL,
    queues       jsonb,
    concurrency  integer NOT NULL,
    started_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    stopping     boolean NOT NULL DEFAULT false
);
