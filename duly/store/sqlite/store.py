"""The SQLite store: one file, many processes.

Rules it follows (each answers a failure seen in SQLite-backed queues):
WAL journal; ``synchronous=NORMAL`` (a committed transaction survives a crash of the
process; a power loss may lose the last transactions, never corrupt the file; pass
``?synchronous=full`` to survive power loss too); a busy timeout of 10 s plus a bounded
retry of ``BEGIN IMMEDIATE``; every write transaction starts with ``BEGIN IMMEDIATE`` so
no transaction upgrades from reader to writer halfway; one connection per database file
per process, shared by its threads under a lock; network filesystems are refused.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

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
    EnqueueParams,
    EnqueueResult,
    Finish,
    Held,
    HeartbeatResult,
    Job,
    JobFilter,
    KeyMode,
    QueueStats,
)
from duly.core.payload import load_args, load_kwargs
from duly.core.states import JobState, Outcome
from duly.core.transitions import plan_finish
from duly.store import _sql
from duly.store.sqlite.admin import SQLiteAdmin
from duly.store.sqlite.triggers import TRIGGER_COLUMNS, SQLiteTriggers
from duly.store.sqlite.wake import Doorbell

JOB_COLUMNS = (
    "id, task, queue, args, kwargs, priority, state, run_at, expires_at, key, attempt, errors, "
    "max_attempts, lease_seconds, worker_id, lease_expires_at, started_at, cancel_requested, "
    "progress_done, progress_total, result, last_error, created_at, updated_at, finished_at, "
    "trigger_id"
)
#: A claim returns only what it does not know already (state, worker, start, lease and update
#: times are the claim's own): 17 columns instead of 26 cost 1 µs less per job.
CLAIM_COLUMNS = (
    "id, task, queue, args, kwargs, priority, run_at, expires_at, key, attempt, errors, "
    "max_attempts, lease_seconds, result, last_error, created_at, trigger_id"
)
MIN_SQLITE = (3, 35, 0)  # RETURNING
NETWORK_FS = {"nfs", "nfs4", "cifs", "smbfs", "smb3", "afs", "fuse.sshfs", "9p", "glusterfs", "ceph"}
BUSY_RETRIES = 20


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def _us(dt: datetime) -> int:
    """Exact microseconds since the epoch (how SQLite stores every time)."""
    return (dt - EPOCH) // _US


def _ts(dt: datetime | None) -> int | None:
    return None if dt is None else _us(dt)


def _dt(us: int | None) -> datetime | None:
    return None if us is None else EPOCH + timedelta(microseconds=us)


_STATES = {s.value: s for s in JobState}


def _plain_success(item: Finish) -> bool:
    """A success whose result can travel inside the JSON batch of ``finish_succeeded``."""
    return item.outcome is Outcome.SUCCEEDED and (item.result_json is None or item.result_json.isascii())


def _delay(seconds: float) -> int:
    return int(round(seconds * 1_000_000))


_NUMBERED = re.compile(r"\?(\d+)")


class Query(str):
    """A statement with plain ``?`` placeholders; ``order`` maps them to the positions of the
    parameters it was written with (``?1``, ``?2``...: sqlite3 deprecates passing a sequence
    to numbered placeholders since Python 3.12)."""

    order: tuple[int, ...] | None = None


def qmark(text: str) -> Query:
    text = re.sub(r"--[^\n]*", "", text)  # comments may mention ?1 (no string literal holds --)
    numbers = [int(n) - 1 for n in _NUMBERED.findall(text)]
    q = Query(_NUMBERED.sub("?", text))
    q.order = tuple(numbers) if numbers else None
    return q


def _bind(query: Any, params: Any) -> Any:
    order = getattr(query, "order", None)
    return params if order is None else tuple(params[i] for i in order)


class Cursor:
    """A sqlite3 cursor that binds ``Query`` parameters in their placeholders' order."""

    __slots__ = ("_cur",)

    def __init__(self, cur: sqlite3.Cursor) -> None:
        self._cur = cur

    def execute(self, query: str, params: Any = ()) -> sqlite3.Cursor:
        return self._cur.execute(query, _bind(query, params))

    def executemany(self, query: str, rows: Any) -> sqlite3.Cursor:
        order = getattr(query, "order", None)
        if order is not None:
            rows = [tuple(r[i] for i in order) for r in rows]
        return self._cur.executemany(query, rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cur, name)


def quote_ident(name: str) -> str:
    """A double-quoted SQLite identifier (names are also checked by ``check_prefix``)."""
    return '"' + name.replace('"', '""') + '"'


def parse_sqlite_url(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    if parts.scheme.lower() != "sqlite":
        raise ConfigurationError(f"not a SQLite URL: {url!r}")
    path = (parts.netloc + parts.path) if parts.netloc else parts.path
    if path.startswith("/") and not parts.netloc:
        path = path[1:]  # sqlite:///rel.db -> rel.db ; sqlite:////abs.db -> /abs.db
    if not path:
        raise ConfigurationError(f"SQLite URL {url!r} names no file; write sqlite:///path/to/file.db")
    opts = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(opts) - {"synchronous", "busy_timeout"}
    if unknown:
        raise ConfigurationError(f"unknown SQLite URL option(s) {sorted(unknown)} in {url!r}")
    return path, opts


def _filesystem_type(path: str) -> str | None:
    try:
        with open("/proc/mounts", encoding="utf-8") as f:
            mounts = [line.split()[:3] for line in f]
    except OSError:
        return None
    real = os.path.realpath(path)
    best, fstype = "", None
    for _dev, mnt, typ in mounts:
        if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
            best, fstype = mnt, typ
    return fstype


class _Shared:
    """The process-wide connection to one database file (one per file per process)."""

    _registry: dict[tuple[int, str], _Shared] = {}
    _registry_lock = threading.Lock()

    def __init__(self, path: str, opts: dict[str, str]) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.users = 0
        try:
            self.conn = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=10.0
            )
        except sqlite3.Error as exc:
            raise DatabaseUnavailable(f"cannot open SQLite database {path!r}: {exc}") from exc
        sync = opts.get("synchronous", "normal").upper()
        if sync not in ("NORMAL", "FULL", "EXTRA"):
            self.conn.close()
            raise ConfigurationError(f"synchronous must be normal, full or extra, got {sync.lower()!r}")
        busy = int(opts.get("busy_timeout", "10000"))
        c = self.conn
        try:
            mode = c.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            c.close()
            raise DatabaseUnavailable(f"{path!r} is not a usable SQLite database: {exc}") from exc
        if mode.lower() != "wal" and path != ":memory:":
            c.close()
            raise ConfigurationError(f"could not switch {path!r} to WAL mode (got {mode})")
        c.execute(f"PRAGMA synchronous={sync}")
        c.execute(f"PRAGMA busy_timeout={busy}")

    @classmethod
    def get(cls, path: str, opts: dict[str, str]) -> _Shared:
        key = (os.getpid(), path if path == ":memory:" else os.path.abspath(path))
        with cls._registry_lock:
            shared = cls._registry.get(key)
            if shared is None:
                shared = cls(path, opts)
                cls._registry[key] = shared
            shared.users += 1
            return shared

    def release(self) -> None:
        with self._registry_lock:
            self.users -= 1
            if self.users == 0:
                key = next((k for k, v in self._registry.items() if v is self), None)
                if key:
                    del self._registry[key]
                self.conn.close()


class SQLiteStore(SQLiteTriggers, SQLiteAdmin):
    backend = "sqlite"

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
        self._q: dict[str, str] = {k: qmark(v.format(**names)) for k, v in raw.items()}
        self.doorbell = Doorbell(path)
        if auto_migrate:  # SQLite migrates itself on first use
            self.migrate()

    # -- plumbing ------------------------------------------------------------------------

    @property
    def _conn(self) -> sqlite3.Connection:
        return self._shared.conn

    def _now(self) -> int:
        return _us(self.clock.now())

    def now(self) -> datetime:
        return self.clock.now()

    @contextmanager
    def _write(self) -> Iterator[Cursor]:
        """A short ``BEGIN IMMEDIATE`` transaction, retried a bounded number of times on BUSY."""
        with self._shared.lock:
            cur: Cursor = Cursor(self._conn.cursor())
            for attempt in range(BUSY_RETRIES):
                try:
                    cur.execute("BEGIN IMMEDIATE")
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) and "busy" not in str(exc):
                        raise
                    if attempt == BUSY_RETRIES - 1:
                        raise
                    time.sleep(min(0.01 * 2**attempt, 0.5))
            try:
                yield cur
            except BaseException:
                self._conn.rollback()
                raise
            else:
                self._commit()

    def _commit(self) -> None:
        for attempt in range(BUSY_RETRIES):
            try:
                self._conn.commit()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == BUSY_RETRIES - 1:
                    self._conn.rollback()
                    raise
                time.sleep(min(0.01 * 2**attempt, 0.5))

    def _read(self, query: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._shared.lock:
            return self._conn.execute(query, _bind(query, params)).fetchall()

    def _job(self, row: Sequence[Any], now: int, times: dict[int, datetime] | None = None) -> Job:
        """A Job from a ``{cols}`` row. ``times``: a memo of decoded timestamps, shared by the
        rows of one batch (a claim's rows share their start, lease and enqueue times)."""
        state = row[6]
        run_at = row[7]
        if state == "queued" and run_at > now:
            state = "scheduled"
        if times is None:
            times = {}
        dt = times.get
        created, updated, started, lease = row[22], row[23], row[16], row[15]
        result = row[20]
        return Job(
            row[0],
            row[1],
            row[2],
            load_args(row[3]),
            load_kwargs(row[4]),
            row[5],
            _STATES[state],
            dt(run_at) or times.setdefault(run_at, EPOCH + timedelta(microseconds=run_at)),
            _dt(row[8]),
            row[9],
            row[10],
            row[11],
            row[12],
            row[13],
            row[14],
            None if lease is None else dt(lease) or times.setdefault(lease, EPOCH + timedelta(microseconds=lease)),
            None if started is None else dt(started) or times.setdefault(started, EPOCH + timedelta(microseconds=started)),
            bool(row[17]),
            row[18],
            row[19],
            None if result is None else json.loads(result),
            row[21],
            dt(created) or times.setdefault(created, EPOCH + timedelta(microseconds=created)),
            dt(updated) or times.setdefault(updated, EPOCH + timedelta(microseconds=updated)),
            _dt(row[24]),
            row[25],
        )

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

    # -- producing -----------------------------------------------------------------------

    def _row_params(self, p: EnqueueParams, now: int) -> tuple[Any, ...]:
        run_at = _ts(p.run_at) if p.run_at is not None else now + _delay(p.delay or 0.0)
        expires = now + _delay(p.expires_in) if p.expires_in is not None else _ts(p.expires_at)
        return (
            p.task, p.queue, p.args_json, p.kwargs_json, p.priority, run_at,
            expires, p.key, p.max_attempts, p.lease_seconds, p.trigger_id, now, now,
        )  # fmt: skip

    def _enqueue_on(self, cur: Any, p: EnqueueParams, now: int) -> EnqueueResult:
        params = self._row_params(p, now)
        row = cur.execute(self._q["insert"], params).fetchone()
        if row is not None:
            return EnqueueResult(self._job(row, now), True)
        holder = cur.execute(self._q["live_by_key"], (p.key,)).fetchone()
        if holder is None:  # cannot happen under the write lock; keep the error explicit
            raise RuntimeError(f"key {p.key!r} conflicted but no live job holds it")
        if p.key_mode is KeyMode.IGNORE:
            return EnqueueResult(self._job(holder, now), False)
        if p.key_mode is KeyMode.NEW:
            raise DuplicateKey(p.key or "", holder[0])
        row = cur.execute(self._q["replace"], params[:7] + params[8:11] + (now, holder[0])).fetchone()
        if row is None:
            raise InvalidTransition(
                f"job {holder[0]} holding key {p.key!r} is running and cannot be replaced; "
                "wait for it to finish or cancel it"
            )
        return EnqueueResult(self._job(row, now), True)

    def enqueue(self, params: EnqueueParams, conn: Any = None) -> EnqueueResult:
        now = self._now()
        if conn is not None:
            result = self._enqueue_on(Cursor(_caller_connection(conn).cursor()), params, now)
            self.doorbell.ring()  # the caller commits later; pollers also notice
            return result
        with self._write() as cur:
            result = self._enqueue_on(cur, params, now)
        if result.created:
            self.doorbell.ring()
        return result

    def enqueue_many(self, params: Sequence[EnqueueParams], conn: Any = None) -> list[int]:
        now = self._now()

        def run(cur: Any) -> list[int]:
            if not any(p.key for p in params):
                cur.executemany(self._q["insert_plain"], [self._row_params(p, now) for p in params])
                # One statement under the write lock, AUTOINCREMENT ids: consecutive.
                last = cur.execute("SELECT last_insert_rowid()").fetchone()[0]
                return list(range(last - len(params) + 1, last + 1))
            return [self._enqueue_on(cur, p, now).job.id for p in params]

        if conn is not None:
            ids = run(Cursor(_caller_connection(conn).cursor()))
        else:
            with self._write() as cur:
                ids = run(cur)
        self.doorbell.ring()
        return ids

    # -- consuming -----------------------------------------------------------------------

    def claim(self, params: ClaimParams) -> list[Job]:
        if params.limit <= 0:
            return []
        now = self._now()
        with self._write() as cur:
            if params.queues is None:
                rows = cur.execute(
                    self._q["claim_any"],
                    (
                        params.worker_id, now, now, now, now, now, json.dumps(list(params.exclude_tasks)),
                        json.dumps(list(params.exclude_queues)), params.limit,
                    ),  # fmt: skip
                ).fetchall()
            else:
                rows = cur.execute(
                    self._q["claim_queues"],
                    (
                        params.worker_id, now, now, now, now, now, json.dumps(list(params.queues)),
                        json.dumps(list(params.exclude_tasks)), json.dumps(list(params.exclude_queues)),
                        params.limit,
                    ),  # fmt: skip
                ).fetchall()
        rows.sort(key=lambda r: (-r[5], r[6], r[0]))  # RETURNING has no order: the claim order
        times: dict[int, datetime] = {}
        started = EPOCH + timedelta(microseconds=now)
        return [self._claimed(r, params.worker_id, now, started, times) for r in rows]

    @staticmethod
    def _claimed(
        row: Sequence[Any], worker_id: str, now: int, started: datetime, times: dict[int, datetime]
    ) -> Job:
        """A Job from a ``{claim_cols}`` row of a claim made at ``now`` by ``worker_id``."""
        run_at, created, lease_seconds, result = row[6], row[15], row[12], row[13]
        lease = now + int(lease_seconds * 1_000_000)  # as the claim computed it
        dt = times.get
        return Job(
            row[0],
            row[1],
            row[2],
            load_args(row[3]),
            load_kwargs(row[4]),
            row[5],
            JobState.RUNNING,
            dt(run_at) or times.setdefault(run_at, EPOCH + timedelta(microseconds=run_at)),
            _dt(row[7]),
            row[8],
            row[9],
            row[10],
            row[11],
            lease_seconds,
            worker_id,
            dt(lease) or times.setdefault(lease, EPOCH + timedelta(microseconds=lease)),
            started,
            False,
            None,
            None,
            None if result is None else json.loads(result),
            row[14],
            dt(created) or times.setdefault(created, EPOCH + timedelta(microseconds=created)),
            started,
            None,
            row[16],
        )

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
        # Plain successes (the bulk of any batch) go in one set-based statement; the rest
        # item by item in one executemany. One transaction either way.
        ok: list[Finish] = []
        rest: list[Finish] = []
        for i in items:
            (ok if _plain_success(i) else rest).append(i)
        with self._write() as cur:
            stale = self._finish_succeeded(cur, ok, now) if ok else []
            if rest:
                stale += self._finish_others(cur, rest, now)
            crash_point("finish.in_transaction", items)
        if rest and any(plan_finish(i).state is JobState.QUEUED for i in rest):
            self.doorbell.ring()
        return stale

    def _finish_succeeded(self, cur: Any, items: Sequence[Finish], now: int) -> list[Finish]:
        batch = json.dumps([[i.job_id, i.attempt, i.result_json, i.progress_done, i.progress_total] for i in items])
        done = cur.execute(self._q["finish_succeeded"], (now, batch)).fetchall()
        logs = {(i.job_id, i.attempt): i.log for i in items}
        cur.executemany(
            self._q["insert_attempt_succeeded"],
            [(r[0], r[1], r[2], r[3], now, logs[r[0], r[1]]) for r in done],
        )
        if len(done) == len(items):
            return []
        written = {(r[0], r[1]) for r in done}
        return [i for i in items if (i.job_id, i.attempt) not in written]

    def _finish_others(self, cur: Any, items: Sequence[Finish], now: int) -> list[Finish]:
        rows = [self._finish_params(item, now) for item in items]
        # One executemany; when every item still held its job (the usual case) the attempts
        # follow in one more. Otherwise redo item by item to learn which were stale.
        cur.execute("SAVEPOINT duly_finish")
        cur.executemany(self._q["finish_many"], rows)
        if cur.rowcount == len(items):
            cur.executemany(self._q["insert_attempt_from_job"], [self._attempt_params(i, now) for i in items])
            cur.execute("RELEASE duly_finish")
            return []
        cur.execute("ROLLBACK TO duly_finish")
        cur.execute("RELEASE duly_finish")
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
        out = [
            Attempt(
                job_id=r[0], attempt=r[1], worker_id=r[2], started_at=_dt(r[3]),
                finished_at=_dt(r[4]), outcome=Outcome(r[5]), error_type=r[6],
                error_message=r[7], traceback=r[8], log=r[9],
            )  # fmt: skip
            for r in self._read(self._q["attempts"], (job_id,))
        ]
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


def _split_statements(text: str) -> list[str]:
    lines = [ln for ln in text.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _caller_connection(conn: Any) -> sqlite3.Connection:
    """The sqlite3 connection behind a caller's sqlite3 / SQLAlchemy connection or session."""
    if isinstance(conn, sqlite3.Connection):
        return conn
    from duly.store._caller import dbapi_connection

    raw = dbapi_connection(conn)
    if not isinstance(raw, sqlite3.Connection):
        raise ConfigurationError(
            f"conn= must be a sqlite3 connection (or a SQLAlchemy one on SQLite), got {type(conn).__name__}"
        )
    return raw
