"""The PostgreSQL store's operating verbs (``duly.store.admin.AdminStore``), as a mixin of
``PostgresStore``: worker registry, paused queues, pruning, throughput and counts.

Counts stay cheap on tables of many millions of rows. Queues are found by a loose index
scan; per queue, waiting and running jobs are counted over the ``(queue, state, run_at)``
index up to ``COUNT_EXACT_LIVE`` rows; for finished jobs the planner's estimate (EXPLAIN,
backed by extended statistics on ``(queue, state)``) comes first, and only a state it
expects to hold at most ``COUNT_EXACT_FINAL`` jobs is counted exactly. Estimated states are
reported in ``QueueCounts.estimated``. These statements run with JIT off.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import psycopg

from duly.core import defaults
from duly.core.admin import (
    EndedJob,
    PausedQueue,
    QueueCounts,
    ThroughputPoint,
    WorkerInfo,
    WorkerRegistration,
)
from duly.core.model import Job, JobFilter
from duly.core.states import JobState
from duly.store import _sql
from duly.store import admin as _admin
from duly.store.postgres._conn import fetch
from duly.store.postgres._rows import to_job

LIVE = ("queued", "running", "retrying")
#: A job list filtered by queue and/or state whose matches the planner estimates above this
#: walks the primary key newest first at once (list_jobs): it finds a page within a few
#: thousand rows, sooner than collecting the matches' ids (each a heap visit here). At or
#: below it, the ids come from the (queue, state, run_at) index (``list_jobs_by_index``).
MANY_MATCHES = 2_000
FINAL = ("succeeded", "failed", "cancelled", "expired")


class PostgresAdmin:
    """Mixed into ``PostgresStore``; relies on its plumbing (declared for type checkers)."""

    channel: str
    _render: Callable[[str], str]
    _now_param: Callable[[], datetime | None]
    _connection: Callable[[], AbstractContextManager[psycopg.Connection[Any]]]
    _admin_queries: dict[str, str] | None = None

    @property
    def _aq(self) -> dict[str, str]:
        if self._admin_queries is None:
            raw = _sql.load_queries("duly.store.postgres", "admin.sql")
            self._admin_queries = {k: self._render(v) for k, v in raw.items()}
        return self._admin_queries

    def _arun(self, name: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        with self._connection() as conn:
            return fetch(conn, self._aq[name], params)

    # -- worker registry ----------------------------------------------------------------

    def register_worker(self, reg: WorkerRegistration) -> None:
        self._arun("register_worker", {
            "now": self._now_param(), "id": reg.id, "hostname": reg.hostname, "pid": reg.pid,
            "queues": None if reg.queues is None else json.dumps(list(reg.queues)),
            "concurrency": reg.concurrency,
        })  # fmt: skip

    def touch_worker(self, worker_id: str) -> bool:
        return bool(self._arun("touch_worker", {"now": self._now_param(), "id": worker_id}))

    def remove_worker(self, worker_id: str) -> None:
        self._arun("remove_worker", {"id": worker_id})

    def forget_workers(self, before: datetime) -> int:
        return int(self._arun("forget_workers", {"before": before})[0][0])

    def list_workers(self, dead_after: float) -> list[WorkerInfo]:
        rows = self._arun("list_workers", {"now": self._now_param(), "dead_after": dead_after})
        return [
            WorkerInfo(
                id=r[0],
                hostname=r[1],
                pid=r[2],
                queues=None if r[3] is None else json.loads(r[3]),
                concurrency=r[4],
                started_at=r[5].astimezone(UTC),
                last_seen_at=r[6].astimezone(UTC),
                alive=bool(r[7]),
                running=int(r[8]),
                job_ids=tuple(r[9] or ()),
            )
            for r in rows
        ]

    # -- queues -------------------------------------------------------------------------

    def pause_queue(self, queue: str) -> bool:
        return bool(self._arun("pause_queue", {"now": self._now_param(), "name": queue}))

    def resume_queue(self, queue: str) -> bool:
        return bool(self._arun("resume_queue", {"now": self._now_param(), "name": queue}))

    def paused_queues(self) -> list[PausedQueue]:
        return [PausedQueue(r[0], r[1].astimezone(UTC)) for r in self._arun("paused_queues", {})]

    def queue_names(self) -> list[str]:
        with self._connection() as conn:
            return self._queue_names(conn)

    def _queue_names(self, conn: psycopg.Connection[Any]) -> list[str]:
        return sorted(r[0] for r in fetch(conn, self._aq["queue_names"], {}))

    def queue_counts(self, final_cap: int | None = None) -> list[QueueCounts]:
        now = self._now_param()
        out = []
        with self._connection() as conn, conn.transaction():
            conn.execute(self._aq["no_jit"])
            queues = self._queue_names(conn)
            paused = {r[0] for r in fetch(conn, self._aq["paused_queues"], {})}
            for queue in queues:
                counts = dict.fromkeys(JobState, 0)
                estimated: set[JobState] = set()
                for state in LIVE:
                    self._count_live(conn, queue, state, now, counts, estimated)
                for state in FINAL:
                    # Finished jobs are the big part of a big table: ask the planner first,
                    # count exactly only what it expects to be small (at most the cap).
                    cap = defaults.COUNT_EXACT_FINAL if final_cap is None else final_cap
                    guess = self._estimate(conn, "estimate_state", queue, state, now)
                    n = guess
                    if guess <= cap:
                        n = self._capped(conn, queue, state, cap, now)[0]
                    if n >= cap:
                        n = max(n, guess)
                        estimated.add(JobState(state))
                    counts[JobState(state)] = n
                out.append(QueueCounts(queue, counts, frozenset(estimated), queue in paused))
        return out

    def _capped(
        self, conn: psycopg.Connection[Any], queue: str, state: str, cap: int, now: datetime | None
    ) -> tuple[int, int]:
        row = fetch(conn, self._aq["capped_count"],
                    {"queue": queue, "state": state, "cap": cap, "now": now}, prepare=False)[0]  # fmt: skip
        return int(row[0]), int(row[1])

    def _count_live(
        self, conn: psycopg.Connection[Any], queue: str, state: str, now: datetime | None,
        counts: dict[JobState, int], estimated: set[JobState],
    ) -> None:  # fmt: skip
        """Waiting and running jobs: exact up to COUNT_EXACT_LIVE, estimated above."""
        cap = defaults.COUNT_EXACT_LIVE
        n, due = self._capped(conn, queue, state, cap, now)
        if n >= cap:
            n = max(n, self._estimate(conn, "estimate_state", queue, state, now))
            if state != "queued":
                estimated.add(JobState(state))
            elif due < cap:  # every due row was seen: only "scheduled" is estimated
                estimated.add(JobState.SCHEDULED)
            else:
                due = min(n, max(due, self._estimate(conn, "estimate_due", queue, state, now)))
                estimated.update((JobState.QUEUED, JobState.SCHEDULED))
        if state == "queued":
            counts[JobState.QUEUED] = due
            counts[JobState.SCHEDULED] = n - due
        else:
            counts[JobState(state)] = n

    def _estimate(
        self,
        conn: psycopg.Connection[Any],
        query: str,
        queue: str,
        state: str,
        now: datetime | None,
    ) -> int:
        plan = fetch(conn, self._aq[query], {"queue": queue, "state": state, "now": now}, prepare=False)[0][0]
        return _plan_rows(plan)

    def oldest_due(self) -> dict[str, datetime]:
        with self._connection() as conn:
            queues = self._queue_names(conn)
            rows = fetch(conn, self._aq["oldest_due"], {"now": self._now_param(), "queues": queues})
        return {r[0]: r[1].astimezone(UTC) for r in rows if r[1] is not None}

    def throughput(self, since: datetime) -> list[ThroughputPoint]:
        return [
            ThroughputPoint(r[0], r[2].astimezone(UTC), JobState(r[1]), int(r[3]))
            for r in self._arun("throughput", {"since": since})
        ]

    def list_jobs_by_index(self, flt: JobFilter) -> list[Job] | None:
        now = self._now_param()
        cap = _admin.INDEX_WALK_CAP
        ids: list[int] = []
        with self._connection() as conn:
            probes = _admin.index_walk(flt, self._queue_names(conn) if flt.queue is None else [])
            if probes is None:
                return None
            stored = probes[0].state if flt.state is not None else None
            plan = fetch(conn, self._aq["estimate_filter"], {"queue": flt.queue, "state": stored}, prepare=False)
            if _plan_rows(plan[0][0]) > MANY_MATCHES:
                return None  # many matches (the statistics say): the primary key finds a page soon
            before = 2**63 - 1 if flt.before_id is None else flt.before_id
            for p in probes:
                params = {"queue": p.queue, "state": p.state, "due": p.due, "now": now, "before": before,
                          "limit": cap + 1 - len(ids)}  # fmt: skip
                ids += [r[0] for r in fetch(conn, self._aq["index_ids"], params, prepare=False)]
                if len(ids) > cap:
                    return None  # many matches: the primary key newest first (list_jobs)
            page = sorted(ids, reverse=True)[: max(1, min(flt.limit, 1000))]
            if not page:
                return []
            rows = fetch(conn, self._aq["jobs_by_ids"], {"ids": page, "now": now})
        jobs = [to_job(r) for r in rows]
        # a job may have moved on between the two reads: keep the page to the filter
        return [j for j in jobs if (flt.state is None or j.state is flt.state) and flt.queue in (None, j.queue)]

    def recent_attempt_durations(self, since: datetime, limit: int) -> list[tuple[str, str, float]]:
        rows = self._arun("recent_attempts", {"since": since, "limit": limit})
        return [(r[0], r[1], max(float(r[2]), 0.0)) for r in rows]

    def ended_jobs(self, after: datetime, after_id: int, until: datetime, limit: int) -> list[EndedJob]:
        rows = self._arun("ended_jobs", {"after": after, "after_id": after_id, "until": until, "limit": limit})
        return [
            EndedJob(int(r[0]), r[1], JobState(r[2]), r[3].astimezone(UTC),
                     tuple((str(o), max(float(s), 0.0)) for o, s in json.loads(r[4])))
            for r in rows
        ]  # fmt: skip

    # -- retention ----------------------------------------------------------------------

    def prune(self, before: datetime, batch: int) -> int:
        return int(self._arun("prune_batch", {"before": before, "batch": batch})[0][0])

    def count_prunable(self, before: datetime) -> int:
        return int(self._arun("count_prunable", {"before": before})[0][0])

    # -- steering -----------------------------------------------------------------------

    def run_now(self, job_id: int) -> Job | None:
        rows = self._arun(
            "run_now", {"now": self._now_param(), "id": job_id, "channel": self.channel}
        )
        return to_job(rows[0]) if rows else None


def _plan_rows(plan: Any) -> int:
    """The row estimate of an ``EXPLAIN (FORMAT JSON)`` result."""
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])
