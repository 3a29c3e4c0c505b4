"""Enqueueing on SQLite: one job under its key mode, and many at once (one executemany
when keyless), in the store's write transaction or on the caller's connection."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from duly.core.errors import DuplicateKey, InvalidTransition
from duly.core.model import EnqueueParams, EnqueueResult, KeyMode
from duly.store.sqlite._conn import ROWS_PER_STATEMENT, Cursor, SQLiteConnection, _caller_connection
from duly.store.sqlite._rows import SQLiteRows, _delay, _ts
from duly.store.sqlite.wake import Doorbell



class SQLiteProducer(SQLiteConnection, SQLiteRows):
    """Mixed into ``SQLiteStore`` (which provides the attributes declared here)."""

    _q: dict[str, str]
    _now: Callable[[], int]
    doorbell: Doorbell

    def _row_params(self, p: EnqueueParams, now: int) -> tuple[Any, ...]:
        run_at: int | None = now  # the common case: run now, no expiry
        if p.run_at is not None:
            run_at = _ts(p.run_at)
        elif p.delay is not None:
            run_at = now + _delay(p.delay)
        expires: int | None = None
        if p.expires_in is not None:
            expires = now + _delay(p.expires_in)
        elif p.expires_at is not None:
            expires = _ts(p.expires_at)
        return (
            p.task, p.queue, p.args_json, p.kwargs_json, p.priority, run_at,
            expires, p.key, p.max_attempts, p.lease_seconds, p.trigger_id, now, now,
        )  # fmt: skip

    def _insert_plain(self, cur: Any, params: Sequence[EnqueueParams], now: int) -> None:
        """Insert keyless jobs, many per statement (``_execute_rows``). Their rows are built
        one statement's worth at a time: built all at once, 100,000 of them stayed alive
        together and the garbage collector walked them again and again (its youngest
        generation runs every 700 objects that outlive their creation): a sixth of a bulk
        enqueue's time."""
        for start in range(0, len(params), ROWS_PER_STATEMENT):
            rows = [self._row_params(p, now) for p in params[start : start + ROWS_PER_STATEMENT]]
            self._execute_rows(cur, "insert_plain", rows)

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
                self._insert_plain(cur, params, now)
                # One transaction under the write lock, AUTOINCREMENT ids: consecutive.
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
