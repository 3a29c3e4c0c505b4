"""The SQLite store: one file, many processes.

Rules it follows (each answers a failure seen in SQLite-backed queues):
WAL journal; ``synchronous=NORMAL`` (a committed transaction survives a crash of the
process; a power loss may lose the last transactions, never corrupt the file; pass
``?synchronous=full`` to survive power loss too); a busy timeout of 10 s plus a bounded
retry of ``BEGIN IMMEDIATE``; every write transaction starts with ``BEGIN IMMEDIATE`` so
no transaction upgrades from reader to writer halfway; one connection per database file
per process, shared by its threads under a lock; duly's processes take turns at writing
through a ``flock`` (``_conn.WriterTurns``: woken as the holder lets go, where SQLite's busy
handler sleeps); network filesystems are refused.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from duly._faults import crash_point
from duly.core.clock import Clock
from duly.core.errors import (
    ConfigurationError,
    DatabaseUnavailable,
    DuplicateKey,
    InvalidTransition,
    JobNotFound,
    StaleAttempt,
)
from duly.core.model import (
    Attempt,
    ClaimParams,
    Finish,
    Held,
    HeartbeatResult,
    Job,
    JobFilter,
    QueueStats,
)
from duly.core.states import JobState, Outcome
from duly.core.transitions import plan_finish
from duly.store import _sql
from duly.store.sqlite._conn import (
    BUSY_RETRIES,
    MIN_SQLITE,
    NETWORK_FS,
    Cursor,
    Query,
    SQLiteConnection,
    _filesystem_type,
    _Shared,
    parse_sqlite_url,
    qmark,
    quote_ident,
)
from duly.store.sqlite._produce import SQLiteProducer
from duly.store.sqlite._rows import (
    CLAIM_COLUMNS,
    EPOCH,
    JOB_COLUMNS,
    SQLiteRows,
    _delay,
    _dt,
    _us,
    to_attempt,
)
from duly.store.sqlite.admin import SQLiteAdmin
from duly.store.sqlite.triggers import TRIGGER_COLUMNS, SQLiteTriggers
from duly.store.sqlite.wake import Doorbell

#: Names this module has always offered; they now live in ``_conn`` and ``_rows``.
__all__ = [
    "BUSY_RETRIES",
    "CLAIM_COLUMNS",
    "EPOCH",
    "JOB_COLUMNS",
    "MIN_SQLITE",
    "NETWORK_FS",
    "Cursor",
    "Query",
    "SQLiteStore",
    "parse_sqlite_url",
    "qmark",
    "quote_ident",
]


# The plumbing (producer, connection, rows) comes before the mixins that declare it as stubs.
class SQLiteStore(SQLiteProducer, SQLiteConnection, SQLiteRows, SQLiteTriggers, SQLiteAdmin):
    backend = "sqlite"
    combines_finish_with_claim = True  # one writer: a flush and a claim queue behind each other anyway

    def __init__(self, url: str, clock: Clock, prefix: str = "duly_", auto_migrate: bool = True) -> None:
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise ConfigurationError(
                f"SQLite {sqlite3.sqlite_version} is too old; duly needs 3.35 or newer"
            )
        self.url = url
        self.clock = clock
        path, opts = parse_sqlite_url(url)
        self.path = path
        if path != ":memory:":
            folder = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(folder):
                raise DatabaseUnavailable(f"SQLite URL {url!r}: folder {folder!r} does not exist")
            fstype = _filesystem_type(folder)
            if fstype in NETWORK_FS:
                raise ConfigurationError(
                    f"SQLite database {path!r} is on a network filesystem ({fstype}); its locks "
                    "are unreliable there. Use a local disk or PostgreSQL."
                )
        self._shared = _Shared.get(path, opts)
        self._closed = False
        names = {t: quote_ident(_sql.check_prefix(prefix) + t) for t in _sql.TABLES + _sql.INDEXES}
        names["cols"] = JOB_COLUMNS
        names["claim_cols"] = CLAIM_COLUMNS
        names["tcols"] = TRIGGER_COLUMNS
        self._names = names
        raw = {
            k: v for f in ("queries.sql", "triggers.sql") for k, v in _sql.load_queries("duly.store.sqlite", f).items()
        }
        # executemany takes no statement that returns rows: the batch form of finish is the
        # same update without its RETURNING clause
        raw["finish_many"] = raw["finish"].rsplit("RETURNING", 1)[0]
        raw["finish_succeeded_quiet"] = raw["finish_succeeded"].rsplit("RETURNING", 1)[0]
        self._q: dict[str, str] = {k: qmark(v.format(**names)) for k, v in raw.items()}
        self.doorbell = Doorbell(path)
        self._rows_sql = {}
        if auto_migrate:  # SQLite migrates itself on first use
            self.migrate()

    # -- plumbing ------------------------------------------------------------------------

    def _now(self) -> int:
        return _us(self.clock.now())

    def now(self) -> datetime:
        return self.clock.now()

    # -- schema --------------------------------------------------------------------------

    def migrate(self, stepwise: bool = False) -> list[int]:
        """Bring the schema up to date: a fresh database gets ``schema.sql`` at once (unless
        ``stepwise``), an older one its missing migrations, in one transaction."""
        applied = []
        migrations = _sql.load_migrations("duly.store.sqlite")
        with self._write() as cur:
            cur.execute(self._q["create_migrations"])
            current = cur.execute(self._q["schema_version"]).fetchone()[0]
            if current == 0 and not stepwise:
                for statement in _split_statements(_sql.load_schema("duly.store.sqlite").format(**self._names)):
                    cur.execute(statement)
                todo = [(version, "") for version, _ in migrations]
            else:
                todo = [(v, text) for v, text in migrations if v > current]
            for version, text in todo:
                for statement in _split_statements(text.format(**self._names)):
                    cur.execute(statement)
                cur.execute(self._q["record_migration"], (version, _us(datetime.now(UTC))))
                applied.append(version)
        return applied

    def schema_version(self) -> int:
        return int(self._read(self._q["schema_version"])[0][0])

    # -- consuming -----------------------------------------------------------------------

    def claim(self, params: ClaimParams) -> list[Job]:
        if params.limit <= 0:
            return []
        now = self._now()
        with self._write() as cur:
            rows = self._claim_rows(cur, params, now)
        return self._claimed_jobs(rows, params, now)

    def finish_and_claim(self, items: Sequence[Finish], params: ClaimParams) -> tuple[list[Finish], list[Job]]:
        """One write transaction for both: one commit, and the pages both touch (the jobs'
        rows, their index entries) written to the WAL once instead of twice."""
        now = self._now()
        with self._write() as cur:
            stale, ring = self._finish_in(cur, items, now) if items else ([], False)
            rows = self._claim_rows(cur, params, now) if params.limit > 0 else []
        if ring:
            self.doorbell.ring()
        return stale, self._claimed_jobs(rows, params, now)

    def _claim_rows(self, cur: Any, params: ClaimParams, now: int) -> list[Any]:
        """Read the jobs to claim and mark them claimed (two statements: queries.sql, at
        claimable_any), in the caller's write transaction; their rows in the claim order."""
        tasks, queues = json.dumps(list(params.exclude_tasks)), json.dumps(list(params.exclude_queues))
        args: tuple[Any, ...]
        if params.queues is None:
            query, args = self._q["claimable_any"], (now, now, tasks, queues, params.limit)
        else:
            query, args = self._q["claimable_queues"], (now, now, json.dumps(list(params.queues)), tasks, queues, params.limit)
        rows: list[Any] = cur.execute(query, args).fetchall()
        if rows:
            ids = json.dumps([r[0] for r in rows])
            marked = cur.execute(self._q["mark_claimed"], (params.worker_id, now, now, now, ids)).rowcount
            if marked != len(rows):  # cannot happen under the write lock; never hand out an unmarked job
                raise RuntimeError(f"claim marked {marked} of the {len(rows)} jobs it read")
        return rows

    def _claimed_jobs(self, rows: list[Any], params: ClaimParams, now: int) -> list[Job]:
        times: dict[int, datetime] = {}
        started = EPOCH + timedelta(microseconds=now)
        return [self._claimed(r, params.worker_id, now, started, times) for r in rows]

    def heartbeat(self, worker_id: str, held: Sequence[Held]) -> HeartbeatResult:
        now = self._now()
        stale, cancel = set(), set()
        with self._write() as cur:
            for h in held:
                row = cur.execute(self._q["heartbeat"], (now, now, h.job_id, h.attempt)).fetchone()
                if row is None:
                    stale.add(h.job_id)
                elif row[0]:
                    cancel.add(h.job_id)
        return HeartbeatResult(frozenset(stale), frozenset(cancel))

    def set_progress(self, held: Held, done: int, total: int | None) -> None:
        with self._write() as cur:
            cur.execute(self._q["progress"], (done, total, self._now(), held.job_id, held.attempt))
            if cur.rowcount == 0:
                raise StaleAttempt(held.job_id, held.attempt)

    def finish(self, items: Sequence[Finish]) -> list[Finish]:
        now = self._now()
        with self._write() as cur:
            stale, ring = self._finish_in(cur, items, now)
        if ring:
            self.doorbell.ring()
        return stale

    def _finish_in(self, cur: Any, items: Sequence[Finish], now: int) -> tuple[list[Finish], bool]:
        """Write outcomes in the caller's transaction: the stale items, and whether a job
        waits again (a ring for idle workers once committed)."""
        # Plain successes (the bulk of any batch) go in one set-based statement; the rest
        # item by item in one executemany.
        ok: list[Finish] = []
        rest: list[Finish] = []
        for i in items:
            (ok if i.outcome is Outcome.SUCCEEDED else rest).append(i)
        stale = self._finish_succeeded(cur, ok, now) if ok else []
        if rest:  # (an exact repeat of an earlier item fails its fence: stale)
            stale += self._finish_others(cur, rest, now)
        crash_point("finish.in_transaction", items)
        return stale, bool(rest) and any(plan_finish(i).state is JobState.QUEUED for i in rest)

    def _finish_succeeded(self, cur: Any, items: Sequence[Finish], now: int) -> list[Finish]:
        rows = [(i.job_id, i.attempt, i.result_json, i.progress_done, i.progress_total) for i in items]
        # The usual case, every item still holding its job: two statements that return no
        # rows. (Each row a statement returns is one more step of the VM, and sqlite3 lets
        # go of the GIL around every step; while the event loop runs jobs, taking it back
        # costs up to a switch interval a row.) Otherwise, undone and redone with the rows
        # returned, to learn which items were stale.
        def every_job_held() -> bool:
            if self._count_rows(cur, "finish_succeeded_quiet", rows, (now, now)) != len(items):
                return False
            self._count_rows(cur, "insert_attempts_succeeded", [(i.job_id, i.attempt, i.log) for i in items], (now,))
            return True

        if _kept_if(cur, every_job_held):
            return []
        done = self._execute_rows(cur, "finish_succeeded", rows, (now, now))
        logs = {(i.job_id, i.attempt): i.log for i in items}
        self._execute_rows(cur, "insert_attempt_succeeded", [(r[0], r[1], r[2], r[3], now, logs[r[0], r[1]]) for r in done])
        if len(done) == len(items):
            return []
        written = {(r[0], r[1]) for r in done}
        stale = []
        for i in items:
            key = (i.job_id, i.attempt)
            if key in written:
                written.discard(key)  # its first item ended it: an exact repeat is stale
            else:
                stale.append(i)
        return stale

    def _finish_others(self, cur: Any, items: Sequence[Finish], now: int) -> list[Finish]:
        rows = [self._finish_params(item, now) for item in items]
        # One executemany; when every item still held its job (the usual case) the attempts
        # follow in one more. Otherwise redo item by item to learn which were stale.
        def every_job_held() -> bool:
            if cur.executemany(self._q["finish_many"], rows).rowcount != len(items):
                return False
            cur.executemany(self._q["insert_attempt_from_job"], [self._attempt_params(i, now) for i in items])
            return True

        if _kept_if(cur, every_job_held):
            return []
        return self._finish_one_by_one(cur, items, rows, now)

    def _finish_params(self, item: Finish, now: int) -> tuple[Any, ...]:
        plan = plan_finish(item)
        if plan.run_at is not None:
            run_at: int | None = _us(plan.run_at)
        elif plan.delay is not None:
            run_at = now + _delay(plan.delay)
        else:
            run_at = None
        err = item.error
        return (
            plan.state.value, run_at, plan.errors_delta, item.result_json, err.summary() if err else None,
            now, item.job_id, item.attempt, 1 if plan.final else 0, item.progress_done, item.progress_total,
        )  # fmt: skip

    @staticmethod
    def _attempt_params(item: Finish, now: int) -> tuple[Any, ...]:
        err = item.error
        return (
            now, item.outcome.value, err.type if err else None, err.message if err else None,
            err.traceback if err else None, item.log, item.job_id, item.attempt,
        )  # fmt: skip

    def _finish_one_by_one(self, cur: Any, items: Sequence[Finish], rows: list[tuple[Any, ...]], now: int) -> list[Finish]:
        stale: list[Finish] = []
        for item, params in zip(items, rows, strict=True):
            if cur.execute(self._q["finish"], params).fetchone() is None:
                stale.append(item)
                continue
            cur.execute(self._q["insert_attempt_from_job"], self._attempt_params(item, now))
        return stale

    def rescue(self) -> list[Held]:
        now = self._now()
        with self._write() as cur:
            rows = cur.execute(self._q["rescue"], (now,)).fetchall()
            cur.executemany(
                self._q["insert_attempt"],
                [
                    (r[0], r[1], r[2], r[3], now, Outcome.LOST.value, "LeaseExpired", r[4], None, None)
                    for r in rows
                ],
            )
            cur.execute(self._q["expire"], (now,))
        return [Held(r[0], r[1]) for r in rows]

    # -- steering ------------------------------------------------------------------------

    def cancel(self, job_id: int) -> Job:
        now = self._now()
        with self._write() as cur:
            row = cur.execute(self._q["cancel_waiting"], (now, now, job_id)).fetchone()
            if row is None:
                row = cur.execute(self._q["cancel_running"], (now, job_id)).fetchone()
            if row is None:
                current = cur.execute(self._q["get_job"], (job_id,)).fetchone()
                if current is None:
                    raise JobNotFound(job_id)
                raise InvalidTransition(f"job {job_id} is {current[6]}; only waiting or running jobs can be cancelled")
        return self._job(row, now)

    def retry(self, job_id: int) -> Job:
        now = self._now()
        try:
            with self._write() as cur:
                row = cur.execute(self._q["retry"], (now, job_id)).fetchone()
                if row is None:
                    current = cur.execute(self._q["get_job"], (job_id,)).fetchone()
                    if current is None:
                        raise JobNotFound(job_id)
                    raise InvalidTransition(
                        f"job {job_id} is {self._job(current, now).state}; only failed, cancelled "
                        "or expired jobs can be retried"
                    )
        except sqlite3.IntegrityError:
            holder = self._read(self._q["live_by_key"], (self._key_of(job_id),))
            raise DuplicateKey(self._key_of(job_id) or "", holder[0][0] if holder else -1) from None
        self.doorbell.ring()
        return self._job(row, now)

    def run_at_least_within(self, key: str, seconds: float) -> Job | None:
        """Move the live job holding ``key`` to run no later than now + ``seconds`` (a running
        one keeps the bound for the run its attempt leads to)."""
        now = self._now()
        with self._write() as cur:
            row = cur.execute(self._q["run_at_least_within"], (key, now + _delay(seconds), now)).fetchone()
            if row is None:
                row = cur.execute(self._q["live_by_key"], (key,)).fetchone()
        return self._job(row, now) if row else None

    def _key_of(self, job_id: int) -> str | None:
        rows = self._read(self._q["get_job"], (job_id,))
        return rows[0][9] if rows else None

    def delete(self, job_id: int) -> bool:
        with self._write() as cur:
            cur.execute(self._q["delete_job"], (job_id,))
            found: bool = cur.rowcount > 0
            cur.execute(self._q["delete_attempts"], (job_id,))
        return found

    # -- reading -------------------------------------------------------------------------

    def get_job(self, job_id: int) -> Job | None:
        rows = self._read(self._q["get_job"], (job_id,))
        return self._job(rows[0], self._now()) if rows else None

    def list_jobs(self, flt: JobFilter) -> list[Job]:
        walked = self.list_jobs_by_index(flt)  # queue/state filters: admin.py
        if walked is not None:
            return walked
        now = self._now()
        where, params = [], []  # type: list[str], list[Any]
        if flt.queue is not None:
            where.append("queue = ?")
            params.append(flt.queue)
        if flt.state is not None:
            if flt.state is JobState.SCHEDULED:
                where.append("state = 'queued' AND run_at > ?")
                params.append(now)
            elif flt.state is JobState.QUEUED:
                where.append("state = 'queued' AND run_at <= ?")
                params.append(now)
            else:
                where.append("state = ?")
                params.append(flt.state.value)
        if flt.task is not None:
            where.append("task = ?")
            params.append(flt.task)
        if flt.text:
            like = "%" + flt.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            where.append(
                "(task LIKE ? ESCAPE '\\' OR key LIKE ? ESCAPE '\\' OR args LIKE ? ESCAPE '\\' "
                "OR kwargs LIKE ? ESCAPE '\\' OR last_error LIKE ? ESCAPE '\\')"
            )
            params.extend([like] * 5)
        if flt.before_id is not None:
            where.append("id < ?")
            params.append(flt.before_id)
        if flt.after_id is not None:
            where.append("id > ?")
            params.append(flt.after_id)
        if flt.ids:
            where.append("id IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(list(flt.ids)))
        # constant columns and a quoted table name; every value is a bound parameter
        sql = f"SELECT {JOB_COLUMNS} FROM {self._names['jobs']}"  # nosec B608
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(max(1, min(flt.limit, 1000)))
        return [self._job(r, now) for r in self._read(sql, params)]

    def attempts(self, job_id: int) -> list[Attempt]:
        out = [to_attempt(r) for r in self._read(self._q["attempts"], (job_id,))]
        job = self.get_job(job_id)
        if job is not None and job.state is JobState.RUNNING:
            out.append(Attempt(job.id, job.attempt, job.worker_id, job.started_at, None, Outcome.RUNNING))
        return out

    def lease_expired(self) -> dict[str, int]:
        return {q: n for q, n in self._read(self._q["lease_expired"], (self._now(),))}

    def stats(self) -> list[QueueStats]:
        now = self._now()
        counts: dict[str, dict[JobState, int]] = {}
        lapsed: dict[str, int] = {}
        for queue, state, due, expired, n in self._read(self._q["stats_live"], (now,)):
            if state == "queued":
                st = JobState.QUEUED if due else JobState.SCHEDULED
            else:
                st = JobState(state)
            q = counts.setdefault(queue, {})
            q[st] = q.get(st, 0) + n
            if expired:
                lapsed[queue] = lapsed.get(queue, 0) + n
        for queue, state, n in self._read(self._q["stats_final"]):
            counts.setdefault(queue, {})[JobState(state)] = n
        return [
            QueueStats(q, {s: c.get(s, 0) for s in JobState}, lapsed.get(q, 0))
            for q, c in sorted(counts.items())
        ]

    def next_run_at(self, queues: Sequence[str] | None = None) -> datetime | None:
        rows = self._read(self._q["next_run_at"])
        return _dt(rows[0][0]) if rows and rows[0][0] is not None else None

    # -- wake-ups ------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[str], None]) -> Callable[[], None]:
        return self.doorbell.listen(callback)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.doorbell.close()
            self._shared.release()


def _kept_if(cur: Any, write: Callable[[], bool]) -> bool:
    """Run ``write`` under a savepoint: keep what it wrote if it returns True, undo it if
    it returns False (a batch written whole in the usual case, redone in detail otherwise)."""
    cur.execute("SAVEPOINT duly_batch")
    kept = write()
    cur.execute("RELEASE duly_batch" if kept else "ROLLBACK TO duly_batch")
    if not kept:
        cur.execute("RELEASE duly_batch")
    return kept


def _split_statements(text: str) -> list[str]:
    lines = [ln for ln in text.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
