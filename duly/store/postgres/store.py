"""The PostgreSQL store: many workers on many machines, one database.

How it keeps the rules of DESIGN §7: the database's ``now()`` decides every due time and
lease under the real clock (a virtual clock's time is passed instead); claims take due rows
``FOR UPDATE SKIP LOCKED`` in one statement; every write after a claim is fenced by
``(id, attempt, state = 'running')``; batch writers lock rows in id order so they never
deadlock one another; key uniqueness is a partial unique index with ``ON CONFLICT``;
NOTIFY only wakes workers up. The schema is not migrated on construction (run
``duly migrate``, or pass ``auto_migrate=True``); migrations run under an advisory lock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolTimeout

from duly._faults import ARMED, crash_point
from duly.core.clock import Clock
from duly.core.errors import (
    DuplicateKey,
    InvalidTransition,
    JobNotFound,
    SchemaOutdated,
    StaleAttempt,
)
from duly.core.model import (
    Attempt,
    ClaimParams,
    EnqueueParams,
    EnqueueResult,
    Finish,
    HeartbeatResult,
    Held,
    Job,
    JobFilter,
    QueueStats,
)
from duly.core.states import JobState, Outcome
from duly.store import _sql
from duly.store.postgres import _conn
from duly.store.postgres._conn import fetch
from duly.store.postgres._listen import Listener
from duly.store.postgres._produce import Producer
from duly.store.postgres._rows import finish_arrays, nulls_as_empty, succeeded_arrays, to_attempt, to_claimed_job, to_job, utc
from duly.store.postgres.admin import PostgresAdmin
from duly.store.postgres.triggers import PostgresTriggers
from duly.store.url import redact_url

PACKAGE = "duly.store.postgres"
#: Seconds the constructor waits for the pool's first connections.
POOL_OPEN_TIMEOUT = 10.0
#: Seconds a verb waits for a free pooled connection before failing (PoolTimeout).
POOL_TIMEOUT = 10.0

Rows = list[tuple[Any, ...]]
#: A bulk enqueue at least this large refreshes the jobs table's planner statistics.
ANALYZE_AFTER_ROWS = 10_000


class PostgresStore(PostgresTriggers, PostgresAdmin):
    backend = "postgres"
    # a flush and a claim on two pooled connections run at once: the worker keeps them apart
    combines_finish_with_claim = False

    def __init__(
        self,
        url: str,
        clock: Clock,
        prefix: str = "duly_",
        auto_migrate: bool = False,
        check_schema: bool = True,
        min_size: int = 1,
        max_size: int = 10,
    ) -> None:
        self.clock = clock
        self._max_size = max_size
        self.url = redact_url(url)
        self._dsn = _conn.normalise_url(url)
        self.prefix = _sql.check_prefix(prefix)
        self.channel = prefix + "jobs"
        names: dict[str, sql.Composable] = {
            t: sql.Identifier(prefix + t) for t in _sql.TABLES + _sql.INDEXES
        }
        names["channel"] = sql.Identifier(self.channel)
        self._names = names
        raw = _sql.load_queries(PACKAGE)
        names["cols"] = sql.SQL(raw.pop("job_columns"))
        names["claim_cols"] = sql.SQL(raw.pop("claim_columns"))
        self._q: dict[str, str] = {k: self._render(v) for k, v in raw.items()}
        self._closed = False
        with _conn.first_connection(self._dsn) as first:
            if auto_migrate:
                self._migrate_on(first)
            elif check_schema:
                self._check_schema(first)
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            self._dsn,
            min_size=min_size,
            max_size=max_size,
            kwargs=_conn.connect_kwargs(self._dsn),
            open=True,
            timeout=POOL_TIMEOUT,
            name=f"duly:{self.url}",
        )
        try:
            self._pool.wait(timeout=POOL_OPEN_TIMEOUT)
        except PoolTimeout as exc:
            self._pool.close()
            raise _conn.unavailable(self._dsn, exc) from None
        self._listener = Listener(self._dsn, self._q["listen"])
        self._producer = Producer(
            self._q, sql.Identifier(prefix + "jobs"), self.channel, self._now_param
        )

    # -- plumbing ------------------------------------------------------------------------

    def _render(self, text: str) -> str:
        return sql.SQL(text).format(**self._names).as_string(None)

    def _now_param(self) -> datetime | None:
        """NULL under the real clock (the SQL uses the database's now()), else the clock's time."""
        return self.clock.now() if self.clock.virtual else None

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection that looks alive. Dead ones (a restarted server, a terminated
        backend) go back to the pool, which replaces them, and the next one is tried at once
        (the pool's own ``check`` would back off for a second or more per dead connection)."""
        for _ in range(self._max_size + 1):
            conn = self._pool.getconn()
            if _conn.alive(conn):
                break
            self._pool.putconn(conn)
        else:
            conn = self._pool.getconn()  # let the verb meet the error, whatever it is
        try:
            yield conn
        finally:
            self._pool.putconn(conn)

    def _run(self, name: str, params: dict[str, Any], prepare: bool | None = None) -> Rows:
        """One statement on a pooled connection, committed at once (autocommit)."""
        with self._connection() as conn:
            return fetch(conn, self._q[name], params, prepare)

    # -- schema --------------------------------------------------------------------------

    def migrate(self, stepwise: bool = False) -> list[int]:
        """Bring the schema up to date: a fresh database gets ``schema.sql`` at once (unless
        ``stepwise``), an older one its missing migrations; one transaction, under a lock."""
        with _conn.first_connection(self._dsn) as conn:
            return self._migrate_on(conn, stepwise)

    def _migrate_on(self, conn: psycopg.Connection[Any], stepwise: bool = False) -> list[int]:
        applied = []
        with conn.transaction():
            conn.execute(self._q["migrate_lock"], {"lock": "duly:migrate:" + self.prefix})
            conn.execute(self._q["create_migrations"])
            current = fetch(conn, self._q["schema_version"], {})[0][0]
            migrations = _sql.load_migrations(PACKAGE)
            if current == 0 and not stepwise:
                conn.execute(self._render(_sql.load_schema(PACKAGE)))
                todo = [(version, "") for version, _ in migrations]
            else:
                todo = [(v, text) for v, text in migrations if v > current]
            for version, text in todo:
                if text:
                    conn.execute(self._render(text))
                conn.execute(self._q["record_migration"], {"version": version})
                applied.append(version)
        return applied

    def _version_on(self, conn: psycopg.Connection[Any]) -> int:
        try:
            return int(fetch(conn, self._q["schema_version"], {})[0][0])
        except psycopg.errors.UndefinedTable:
            return 0

    def _check_schema(self, conn: psycopg.Connection[Any]) -> None:
        current = self._version_on(conn)
        latest = _sql.load_migrations(PACKAGE)[-1][0]
        if current < latest:
            raise SchemaOutdated(
                f"the duly tables (prefix {self.prefix!r}) in {self.url} are at schema version "
                f"{current}, this duly needs version {latest}: run `duly migrate` "
                f"(with --url or DULY_DATABASE_URL naming that database, and --prefix "
                f"{self.prefix})"
            )

    def schema_version(self) -> int:
        with self._connection() as conn:
            return self._version_on(conn)

    # -- time ----------------------------------------------------------------------------

    def now(self) -> datetime:
        if self.clock.virtual:
            return self.clock.now()
        found: datetime = self._run("now", {"now": None})[0][0]
        return found.astimezone(UTC)

    # -- producing -----------------------------------------------------------------------

    def enqueue(self, params: EnqueueParams, conn: Any = None) -> EnqueueResult:
        if conn is not None:
            return self._producer.enqueue(_conn.caller_connection(conn), params)
        with self._connection() as own:
            return self._producer.enqueue(own, params)

    def enqueue_many(self, params: Sequence[EnqueueParams], conn: Any = None) -> list[int]:
        if not params:
            return []
        if conn is not None:
            return self._producer.enqueue_many(_conn.caller_connection(conn), params)
        with self._connection() as own:
            with own.transaction():
                ids = self._producer.enqueue_many(own, params)
            if len(params) >= ANALYZE_AFTER_ROWS:
                # Fresh statistics at once: with none, the planner scans and sorts the whole
                # table for each claim until autovacuum gets round to it (215 ms vs 11 ms per
                # claim of 1,000 over 520,000 new rows).
                own.execute(self._q["analyze_jobs"])
        return ids

    # -- consuming -----------------------------------------------------------------------

    def claim(self, params: ClaimParams) -> list[Job]:
        if params.limit <= 0:
            return []
        values: dict[str, Any] = {
            "now": self._now_param(), "worker_id": params.worker_id, "limit": params.limit,
            "exclude_tasks": list(params.exclude_tasks),
            "exclude_queues": list(getattr(params, "exclude_queues", ())),
        }  # fmt: skip
        if params.queues is None:
            rows = self._run("claim_any", values, prepare=True)
        else:
            rows = self._run(
                "claim_queues", {**values, "queues": list(params.queues)}, prepare=True
            )
        rows.sort(key=lambda r: (-r[5], r[6], r[0]))  # RETURNING has no order: the claim order
        return [to_claimed_job(r, params.worker_id) for r in rows]

    def finish_and_claim(self, items: Sequence[Finish], params: ClaimParams) -> tuple[list[Finish], list[Job]]:
        return (self.finish(items) if items else []), self.claim(params)

    def heartbeat(self, worker_id: str, held: Sequence[Held]) -> HeartbeatResult:
        if not held:
            return HeartbeatResult(frozenset(), frozenset())
        rows = self._run(
            "heartbeat",
            {
                "now": self._now_param(),
                **nulls_as_empty({
                    "ids": [h.job_id for h in held],
                    "attempts": [h.attempt for h in held],
                    "started": [h.started_at for h in held],  # none known: padded with NULLs
                }),
            },
            prepare=True,
        )
        alive = {r[0] for r in rows}
        stale = frozenset(h.job_id for h in held if h.job_id not in alive)
        return HeartbeatResult(stale, frozenset(r[0] for r in rows if r[1]))

    def set_progress(self, held: Held, done: int, total: int | None) -> None:
        values = {
            "now": self._now_param(),
            "id": held.job_id,
            "attempt": held.attempt,
            "started": held.started_at,
            "done": done,
            "total": total,
        }
        with self._connection() as conn:
            if conn.execute(self._q["progress"], values).rowcount == 0:
                raise StaleAttempt(held.job_id, held.attempt)

    def finish(self, items: Sequence[Finish]) -> list[Finish]:
        if not items:
            return []
        # An exact repeat of an (id, attempt) in one batch is stale: the first one ended it.
        first: dict[tuple[int, int], int] = {}
        for n, item in enumerate(items):
            first.setdefault((item.job_id, item.attempt), n)
        batch = [items[n] for n in sorted(first.values())]
        # Plain successes (the bulk of any batch) by their own statement, the rest by the
        # general one; one transaction either way (BEGIN/COMMIT only for a mixed batch).
        ok: list[Finish] = []
        rest: list[Finish] = []
        for item in batch:
            (ok if item.outcome is Outcome.SUCCEEDED else rest).append(item)
        now = self._now_param()
        done: set[tuple[int, int]] = set()
        with self._connection() as conn, conn.transaction() if ARMED or (ok and rest) else nullcontext():
            if ok:
                values: dict[str, Any] = {"now": now, **succeeded_arrays(ok)}
                done.update((r[0], r[1]) for r in fetch(conn, self._q["finish_succeeded"], values, prepare=True))
            if rest:
                values = {"now": now, "channel": self.channel, **finish_arrays(rest)}
                done.update((r[0], r[1]) for r in fetch(conn, self._q["finish"], values, prepare=True))
            crash_point("finish.in_transaction", batch)  # only armed runs pay for BEGIN/COMMIT
        return [
            item for n, item in enumerate(items)
            if (item.job_id, item.attempt) not in done or first[(item.job_id, item.attempt)] != n
        ]  # fmt: skip

    def rescue(self) -> list[Held]:
        return [Held(r[0], r[1]) for r in self._run("rescue", {"now": self._now_param()})]

    # -- steering ------------------------------------------------------------------------

    def _current(self, job_id: int) -> Job:
        job = self.get_job(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def cancel(self, job_id: int) -> Job:
        rows = self._run("cancel", {"now": self._now_param(), "id": job_id})
        if not rows:
            current = self._current(job_id)
            raise InvalidTransition(
                f"job {job_id} is {current.state}; only waiting or running jobs can be cancelled"
            )
        return to_job(rows[0])

    def retry(self, job_id: int) -> Job:
        values = {"now": self._now_param(), "id": job_id, "channel": self.channel}
        try:
            rows = self._run("retry", values)
        except psycopg.errors.UniqueViolation:
            key = self._current(job_id).key
            holder = self._run("live_by_key", {"now": None, "key": key})
            raise DuplicateKey(key or "", holder[0][0] if holder else -1) from None
        if not rows:
            current = self._current(job_id)
            raise InvalidTransition(
                f"job {job_id} is {current.state}; only failed, cancelled or expired jobs can be retried"
            )
        return to_job(rows[0])

    def run_at_least_within(self, key: str, seconds: float) -> Job | None:
        """Move the live job holding ``key`` to run no later than now + ``seconds`` (a running
        one keeps the bound for the run its attempt leads to); the live job, or None when no
        live job holds the key."""
        values = {"now": self._now_param(), "key": key, "seconds": float(seconds)}
        rows = self._run("run_at_least_within", {**values, "channel": self.channel})
        if not rows:
            rows = self._run("live_by_key", values)
        return to_job(rows[0]) if rows else None

    def delete(self, job_id: int) -> bool:
        return bool(self._run("delete", {"id": job_id})[0][0])

    # -- reading -------------------------------------------------------------------------

    def get_job(self, job_id: int) -> Job | None:
        rows = self._run("get_job", {"now": self._now_param(), "id": job_id})
        return to_job(rows[0]) if rows else None

    def list_jobs(self, flt: JobFilter) -> list[Job]:
        walked = self.list_jobs_by_index(flt)  # queue/state filters: admin.py
        if walked is not None:
            return walked
        text = None
        if flt.text:
            text = (
                "%" + flt.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            )
        limit = max(1, min(flt.limit, 1000))
        values = {
            "now": self._now_param(),
            "queue": flt.queue,
            "state": None if flt.state is None else flt.state.value,
            "task": flt.task,
            "text": text,
            "before_id": flt.before_id,
            "after_id": flt.after_id,
            "ids": list(flt.ids) if flt.ids else None,
            "limit": limit,
            "part": None,
        }
        if flt.task is None:
            return [to_job(r) for r in self._run("list_jobs", values, prepare=False)]
        # the (task, id) index leaves running jobs out: those come from jobs_lease (only the
        # part a state filter can match is asked for)
        parts = ("rest", "running") if flt.state is None else ("running",) if flt.state is JobState.RUNNING else ("rest",)
        rows = [r for part in parts for r in self._run("list_jobs", {**values, "part": part}, prepare=False)]
        rows.sort(key=lambda r: r[0], reverse=True)
        return [to_job(r) for r in rows[:limit]]

    def attempts(self, job_id: int) -> list[Attempt]:
        out = [to_attempt(r) for r in self._run("attempts", {"id": job_id})]
        job = self.get_job(job_id)
        if job is not None and job.state is JobState.RUNNING:
            out.append(
                Attempt(job.id, job.attempt, job.worker_id, job.started_at, None, Outcome.RUNNING)
            )
        return out

    def stats(self) -> list[QueueStats]:
        counts: dict[str, dict[JobState, int]] = {}
        lapsed: dict[str, int] = {}
        for queue, state, n, expired in self._run("stats", {"now": self._now_param()}):
            counts.setdefault(queue, {})[JobState(state)] = n
            lapsed[queue] = lapsed.get(queue, 0) + expired
        return [
            QueueStats(q, {s: c.get(s, 0) for s in JobState}, lapsed.get(q, 0))
            for q, c in sorted(counts.items())
        ]

    def lease_expired(self) -> dict[str, int]:
        return {q: int(n) for q, n in self._run("lease_expired", {"now": self._now_param()})}

    def next_run_at(self, queues: Sequence[str] | None = None) -> datetime | None:
        rows = self._run("next_run_at", {"queues": None if queues is None else list(queues)})
        return utc(rows[0][0]) if rows else None

    # -- wake-ups ------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[str], None]) -> Callable[[], None]:
        return self._listener.add(callback)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._listener.close()
            self._pool.close()
