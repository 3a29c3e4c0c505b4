"""Enqueueing on PostgreSQL: one job under its key mode, and many at once (COPY when keyless)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from duly.core.errors import DuplicateKey, InvalidTransition
from duly.core.model import EnqueueParams, EnqueueResult, Job, KeyMode
from duly.core.states import JobState
from duly.store.postgres._conn import fetch
from duly.store.postgres._rows import to_job, to_new_job

#: How often enqueue retries when the live holder of a key vanishes between conflict and read.
KEY_RACE_RETRIES = 50


class Producer:
    """Writes jobs on a given connection (the store's own, or the caller's: never committed
    here). A job due at once sends ``pg_notify`` in the same transaction (delivered on commit)."""

    def __init__(
        self,
        queries: dict[str, str],
        jobs: sql.Identifier,
        channel: str,
        now: Callable[[], datetime | None],
    ) -> None:
        self._q = queries
        self._jobs = jobs
        self._channel = channel
        self._now = now
        self._sequence: str | None = None

    def _values(
        self, p: EnqueueParams, now: datetime | None, channel: str | None
    ) -> dict[str, Any]:
        return {
            "task": p.task, "queue": p.queue, "args": p.args_json, "kwargs": p.kwargs_json,
            "priority": p.priority, "run_at": p.run_at, "delay": float(p.delay or 0.0),
            "expires_at": p.expires_at, "expires_in": p.expires_in, "key": p.key, "max_attempts": p.max_attempts,
            "lease_seconds": float(p.lease_seconds), "trigger_id": p.trigger_id, "now": now,
            "channel": channel,
        }  # fmt: skip

    def enqueue(self, conn: psycopg.Connection[Any], p: EnqueueParams) -> EnqueueResult:
        values = self._values(p, self._now(), self._channel)
        if p.key is None:
            rows = fetch(conn, self._q["insert_keyless"], values)
            return EnqueueResult(to_new_job(rows[0], p), True)
        return self._resolve(conn, p, values)

    def _resolve(
        self, conn: psycopg.Connection[Any], p: EnqueueParams, values: dict[str, Any]
    ) -> EnqueueResult:
        """Insert, or settle a key conflict by the key mode. The unique index decides who
        holds a key; should the holder end between our conflict and our read, insert again."""
        for _ in range(KEY_RACE_RETRIES):
            rows = fetch(conn, self._q["insert"], values)
            if rows:
                return EnqueueResult(to_job(rows[0]), True)
            found = fetch(conn, self._q["live_by_key"], values)
            if not found:
                continue
            holder = to_job(found[0])
            if p.key_mode is KeyMode.IGNORE:
                return EnqueueResult(holder, False)
            if p.key_mode is KeyMode.NEW:
                raise DuplicateKey(p.key or "", holder.id)
            if holder.state is JobState.RUNNING:
                raise InvalidTransition(
                    f"job {holder.id} holding key {p.key!r} is running and cannot be replaced; "
                    "wait for it to finish or cancel it"
                )
            rows = fetch(conn, self._q["replace"], {**values, "id": holder.id})
            if rows:
                return EnqueueResult(to_job(rows[0]), True)
        raise RuntimeError(f"key {p.key!r}: its live job kept changing; enqueue gave up")

    def enqueue_many(
        self, conn: psycopg.Connection[Any], params: Sequence[EnqueueParams]
    ) -> list[int]:
        """All in the connection's transaction; ids in input order; one notify per due queue."""
        if any(p.key is not None for p in params):
            ids, due = self._insert_keyed(conn, params)
        else:
            ids, due = self._copy(conn, params)
        if due:
            fetch(conn, self._q["notify_queues"], {"channel": self._channel, "queues": sorted(due)})
        return ids

    def _copy(
        self, conn: psycopg.Connection[Any], params: Sequence[EnqueueParams]
    ) -> tuple[list[int], set[str]]:
        """COPY keyless jobs, with ids reserved from the identity sequence first (COPY writes
        the given ids even into a GENERATED ALWAYS column)."""
        if self._sequence is None:
            table = self._jobs.as_string(conn)
            self._sequence = fetch(conn, self._q["sequence_name"], {"table": table})[0][0]
        now, ids = fetch(
            conn, self._q["reserve_ids"],
            {"now": self._now(), "sequence": self._sequence, "n": len(params)},
        )[0]  # fmt: skip
        ids.sort()
        due: set[str] = set()
        # Timestamps go as ISO text (the column parses it): much cheaper than dumping a
        # datetime per row, and the common "due now" case reuses one string.
        now_text = now.isoformat()
        with conn.cursor() as cur, cur.copy(self._q["copy_jobs"]) as copy:
            for job_id, p in zip(ids, params, strict=True):
                if p.run_at is None and not p.delay:
                    run_at, run_text = now, now_text
                else:
                    run_at = p.run_at or now + timedelta(seconds=p.delay or 0)
                    run_text = run_at.isoformat()
                if run_at <= now:
                    due.add(p.queue)
                if p.expires_in is not None:  # from the same now as the run time
                    expires = (now + timedelta(seconds=p.expires_in)).isoformat()
                else:
                    expires = None if p.expires_at is None else p.expires_at.isoformat()
                copy.write_row((
                    job_id, p.task, p.queue, p.args_json, p.kwargs_json, p.priority, "queued",
                    run_text, expires, None, p.max_attempts, p.lease_seconds, p.trigger_id,
                    now_text, now_text,
                ))  # fmt: skip
        return ids, due

    def _insert_keyed(
        self, conn: psycopg.Connection[Any], params: Sequence[EnqueueParams]
    ) -> tuple[list[int], set[str]]:
        """Pipelined inserts; the key conflicts are then settled one by one, in input order
        (the same outcome as inserting one by one: each conflict meets the key's holder)."""
        now = self._now()
        values = [self._values(p, now, None) for p in params]
        first: list[tuple[Any, ...] | None] = []
        with conn.cursor(row_factory=tuple_row) as cur:
            cur.executemany(self._q["insert"], values, returning=True)
            while True:
                first.append(cur.fetchone())
                if not cur.nextset():
                    break
        ids: list[int] = []
        due: set[str] = set()
        for p, v, row in zip(params, values, first, strict=True):
            job: Job
            if row is not None:
                job, created = to_job(row), True
            else:
                result = self._resolve(conn, p, v)
                job, created = result.job, result.created
            ids.append(job.id)
            if created and job.state is JobState.QUEUED:
                due.add(job.queue)
        return ids, due
