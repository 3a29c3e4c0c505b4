"""The SQLite store's operating verbs (``duly.store.admin.AdminStore``), as a mixin of
``SQLiteStore``: worker registry, paused queues, pruning, throughput and counts.

Counts walk the covering ``(queue, state, run_at)`` index. Waiting and running jobs are
counted exactly; finished ones exactly up to ``COUNT_EXACT_FINAL`` per queue and state, and
above that estimated from the run-time span of the first entries (SQLite keeps no
statistics a planner estimate could come from).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

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
from duly.store.sqlite._conn import qmark

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN, _MAX = -(2**63), 2**63 - 1
_US = timedelta(microseconds=1)
_STORED_STATES = ("queued", "running", "retrying", "succeeded", "failed", "cancelled", "expired")
_FINAL = ("succeeded", "failed", "cancelled", "expired")


def _us(dt: datetime) -> int:
    return (dt - _EPOCH) // _US


def _dt(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _run_at_range(due: bool | None, now: int) -> tuple[int, int]:
    """run_at bounds of a probe: due (queued) up to now, not due (scheduled) after it."""
    if due is None:
        return _MIN, _MAX
    return (_MIN, now) if due else (now + 1, _MAX)


class SQLiteAdmin:
    """Mixed into ``SQLiteStore``; relies on its plumbing (declared here for type checkers)."""

    _names: dict[str, str]
    _write: Callable[[], AbstractContextManager[Any]]
    _read: Callable[..., list[Any]]
    _now: Callable[[], int]
    _job: Callable[[Sequence[Any], int], Job]
    _admin_queries: dict[str, str] | None = None

    @property
    def _aq(self) -> dict[str, str]:
        if self._admin_queries is None:
            raw = _sql.load_queries("duly.store.sqlite", "admin.sql")
            self._admin_queries = {k: qmark(v.format(**self._names)) for k, v in raw.items()}
        return self._admin_queries

    # -- worker registry ----------------------------------------------------------------

    def register_worker(self, reg: WorkerRegistration) -> None:
        queues = None if reg.queues is None else json.dumps(list(reg.queues))
        with self._write() as cur:
            cur.execute(
                self._aq["register_worker"],
                (reg.id, reg.hostname, reg.pid, queues, reg.concurrency, self._now()),
            )

    def touch_worker(self, worker_id: str) -> bool:
        with self._write() as cur:
            cur.execute(self._aq["touch_worker"], (self._now(), worker_id))
            return bool(cur.rowcount > 0)

    def remove_worker(self, worker_id: str) -> None:
        with self._write() as cur:
            cur.execute(self._aq["remove_worker"], (worker_id,))

    def forget_workers(self, before: datetime) -> int:
        with self._write() as cur:
            cur.execute(self._aq["forget_workers"], (_us(before),))
            return int(cur.rowcount)

    def list_workers(self, dead_after: float) -> list[WorkerInfo]:
        now = self._now()
        limit = now - int(dead_after * 1_000_000)
        return [
            WorkerInfo(
                id=r[0], hostname=r[1], pid=r[2], queues=None if r[3] is None else json.loads(r[3]),
                concurrency=r[4], started_at=_dt(r[5]), last_seen_at=_dt(r[6]),
                alive=r[6] >= limit, running=r[7], job_ids=tuple(sorted(json.loads(r[8] or "[]"))),
            )
            for r in self._read(self._aq["list_workers"])
        ]

    # -- queues -------------------------------------------------------------------------

    def pause_queue(self, queue: str) -> bool:
        with self._write() as cur:
            row = cur.execute(self._aq["queue_paused_at"], (queue,)).fetchone()
            if row is not None and row[0] is not None:
                return False
            cur.execute(self._aq["pause_queue"], (queue, self._now()))
            return True

    def resume_queue(self, queue: str) -> bool:
        with self._write() as cur:
            cur.execute(self._aq["resume_queue"], (self._now(), queue))
            return bool(cur.rowcount > 0)

    def paused_queues(self) -> list[PausedQueue]:
        return [PausedQueue(r[0], _dt(r[1])) for r in self._read(self._aq["paused_queues"])]

    def queue_names(self) -> list[str]:
        return sorted(r[0] for r in self._read(self._aq["queue_names"]))

    def queue_counts(self, final_cap: int | None = None) -> list[QueueCounts]:
        now = self._now()
        paused = {p.name for p in self.paused_queues()}
        out = []
        for queue in self.queue_names():
            counts = dict.fromkeys(JobState, 0)
            estimated: set[JobState] = set()
            for stored in _STORED_STATES:
                if stored in _FINAL:
                    n, exact = self._count_final(queue, stored, final_cap)
                    counts[JobState(stored)] = n
                    if not exact:
                        estimated.add(JobState(stored))
                    continue
                count = "count_running" if stored == "running" else "count_queue_state"
                n, due = self._read(self._aq[count], (queue, stored, now))[0]
                if stored == "queued":
                    counts[JobState.QUEUED] = due
                    counts[JobState.SCHEDULED] = n - due
                else:
                    counts[JobState(stored)] = n
            out.append(QueueCounts(queue, counts, frozenset(estimated), queue in paused))
        return out

    def _count_final(self, queue: str, state: str, final_cap: int | None = None) -> tuple[int, bool]:
        """Finished jobs of one queue in one state: exact up to ``COUNT_EXACT_FINAL``; above
        it, the first that many index entries give the run_at span they cover, and the count
        is extrapolated over the whole span (finished jobs accrue steadily). Returns (count,
        exact)."""
        cap = defaults.COUNT_EXACT_FINAL if final_cap is None else final_cap
        n, first, upto = self._read(self._aq["sample_queue_state"], (queue, state, cap))[0]
        if n < cap:
            return int(n), True
        last = self._read(self._aq["last_run_at"], (queue, state))[0][0]
        if last is None or upto <= first:  # one instant: nothing to extrapolate from
            return int(self._read(self._aq["count_queue_state"], (queue, state, 0))[0][0]), True
        return max(cap, round(cap * (last - first) / (upto - first))), False

    def oldest_due(self) -> dict[str, datetime]:
        now = self._now()
        out = {}
        for queue in self.queue_names():
            found = [
                r[0]
                for state in ("queued", "retrying")
                for r in self._read(self._aq["oldest_due"], (queue, state, now))
                if r[0] is not None
            ]
            if found:
                out[queue] = _dt(min(found))
        return out

    def throughput(self, since: datetime) -> list[ThroughputPoint]:
        return [
            ThroughputPoint(r[0], _dt(r[2]), JobState(r[1]), r[3])
            for r in self._read(self._aq["throughput"], (_us(since),))
        ]

    def list_jobs_by_index(self, flt: JobFilter) -> list[Job] | None:
        probes = _admin.index_walk(flt, self.queue_names() if flt.queue is None else [])
        if probes is None:
            return None
        now = self._now()
        before = _MAX if flt.before_id is None else flt.before_id
        limit = max(1, min(flt.limit, 1000))
        cap = _admin.INDEX_WALK_CAP
        ids: list[int] = []
        for p in probes:
            lo, hi = _run_at_range(p.due, now)
            query = "index_ids_running" if p.state == "running" else "index_ids"
            ids += [r[0] for r in self._read(self._aq[query], (p.queue, p.state, lo, hi, before, cap + 1 - len(ids)))]
            if len(ids) > cap:  # many matches: newest first by the primary key
                lo, hi = _run_at_range(probes[0].due, now)
                state = probes[0].state if flt.state is not None else None
                rows = self._read(self._aq["newest_matching"], (flt.queue, state, lo, hi, before, limit))
                return [self._job(r, now) for r in rows]
        page = sorted(ids, reverse=True)[:limit]
        if not page:
            return []
        jobs = [self._job(r, now) for r in self._read(self._aq["jobs_by_ids"], (json.dumps(page),))]
        # a job may have moved on between the two reads: keep the page to the filter
        return [j for j in jobs if (flt.state is None or j.state is flt.state) and flt.queue in (None, j.queue)]

    def recent_attempt_durations(self, since: datetime, limit: int) -> list[tuple[str, str, float]]:
        rows = self._read(self._aq["recent_attempts"], (_us(since), limit))
        return [(r[0], r[1], max(r[2], 0) / 1_000_000) for r in rows]

    def ended_jobs(self, after: datetime, after_id: int, until: datetime, limit: int) -> list[EndedJob]:
        jobs = self._read(self._aq["ended_jobs"], (_us(after), after_id, _us(until), limit))
        found: dict[int, list[tuple[str, float]]] = {r[0]: [] for r in jobs}
        if found:
            for job_id, outcome, us in self._read(self._aq["attempt_durations"], (json.dumps(list(found)),)):
                found[job_id].append((outcome, max(us, 0) / 1_000_000))
        return [EndedJob(r[0], r[1], JobState(r[2]), _dt(r[3]), tuple(found[r[0]])) for r in jobs]

    # -- retention ----------------------------------------------------------------------

    def prune(self, before: datetime, batch: int) -> int:
        with self._write() as cur:
            ids = [r[0] for r in cur.execute(self._aq["prune_batch"], (_us(before), batch)).fetchall()]
            if ids:
                cur.execute(self._aq["prune_attempts"], (json.dumps(ids),))
        return len(ids)

    def count_prunable(self, before: datetime) -> int:
        return int(self._read(self._aq["count_prunable"], (_us(before),))[0][0])

    # -- steering -----------------------------------------------------------------------

    def run_now(self, job_id: int) -> Job | None:
        now = self._now()
        with self._write() as cur:
            row = cur.execute(self._aq["run_now"], (now, job_id)).fetchone()
        return None if row is None else self._job(row, now)

