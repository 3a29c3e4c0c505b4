"""The store verbs of the operating surfaces (CLI, dashboard, JSON API, metrics) and of
the worker's housekeeping: the worker registry, paused queues, retention pruning,
throughput and counts that stay cheap on tables of many millions of jobs.

Both backends implement them in a mixin (``duly.store.sqlite.admin``,
``duly.store.postgres.admin``) and pass ``tests/contract/test_admin.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

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

#: A job list filtered by queue and/or state (no task, text or ids) first collects the ids
#: of its matches from the ``(queue, state, run_at)`` index, one range per known queue and
#: stored state, up to this many: then the page is the newest of them, however few match
#: and wherever they are. Above it, matches are many and the list walks the primary key
#: newest first instead (its cost is the number of jobs newer than the page's last match).
INDEX_WALK_CAP = 10_000

_STORED = ("queued", "running", "retrying", "succeeded", "failed", "cancelled", "expired")


@dataclass(frozen=True, slots=True)
class Probe:
    """One range of the ``(queue, state, run_at)`` index: ``due`` True keeps run_at <= now
    (queued), False run_at > now (scheduled), None any run time."""

    queue: str
    state: str
    due: bool | None = None


def index_walk(flt: JobFilter, queues: list[str]) -> list[Probe] | None:
    """The index ranges that hold every match of ``flt``, or None when the filter is not
    one the ``(queue, state, run_at)`` index serves (a task, a search text or ids)."""
    if flt.queue is None and flt.state is None:
        return None
    if flt.task is not None or flt.text or flt.ids or flt.after_id is not None:
        return None
    names = [flt.queue] if flt.queue is not None else queues
    if flt.state is None:
        states: list[tuple[str, bool | None]] = [(s, None) for s in _STORED]
    elif flt.state is JobState.SCHEDULED:
        states = [("queued", False)]
    elif flt.state is JobState.QUEUED:
        states = [("queued", True)]
    else:
        states = [(flt.state.value, None)]
    return [Probe(q, s, due) for q in names for s, due in states]


class AdminStore(Protocol):
    # -- worker registry ----------------------------------------------------------------
    def register_worker(self, reg: WorkerRegistration) -> None:
        """Insert (or refresh) the worker's row; called when a worker starts."""

    def touch_worker(self, worker_id: str) -> bool:
        """Mark the worker seen now; False when its row is gone (it should register again)."""

    def remove_worker(self, worker_id: str) -> None:
        """Delete the worker's row; called when a worker stops gracefully."""

    def forget_workers(self, before: datetime) -> int:
        """Delete rows of workers last seen before ``before`` (dead for long); return how many."""

    def list_workers(self, dead_after: float) -> list[WorkerInfo]:
        """Every registered worker, alive when seen within ``dead_after`` seconds."""

    # -- queues -------------------------------------------------------------------------
    def pause_queue(self, queue: str) -> bool:
        """Stop workers claiming from ``queue``; False when it was already paused."""

    def resume_queue(self, queue: str) -> bool:
        """Let workers claim from ``queue`` again; False when it was not paused."""

    def paused_queues(self) -> list[PausedQueue]: ...

    def queue_names(self) -> list[str]:
        """Every queue that has jobs or settings, sorted (one index probe per queue)."""

    def queue_counts(self, final_cap: int | None = None) -> list[QueueCounts]:
        """Jobs per queue and state; exact up to the store's limit (finished states: up to
        ``final_cap``, default ``COUNT_EXACT_FINAL``), estimated above it where the backend
        can estimate (the state is then listed in ``estimated``)."""

    def oldest_due(self) -> dict[str, datetime]:
        """Per queue, the run time of the job that has waited longest while due."""

    def throughput(self, since: datetime) -> list[ThroughputPoint]:
        """Jobs that ended since ``since``, per minute, queue and final state."""

    def list_jobs_by_index(self, flt: JobFilter) -> list[Job] | None:
        """A page of jobs filtered by queue and/or state, through the ``(queue, state,
        run_at)`` index (see ``INDEX_WALK_CAP``); None when ``flt`` is not such a filter
        (``list_jobs`` calls this first and plans the others itself)."""

    def recent_attempt_durations(self, since: datetime, limit: int) -> list[tuple[str, str, float]]:
        """(queue, outcome, seconds) of attempts of the jobs that ended since ``since``."""

    def ended_jobs(self, after: datetime, after_id: int, until: datetime, limit: int) -> list[EndedJob]:
        """Up to ``limit`` jobs that ended after (``after``, ``after_id``) and before
        ``until``, in (finished_at, id) order (a cursor: pass the last one's to go on), with
        their attempts' durations; read through the index on finished_at."""

    # -- retention ----------------------------------------------------------------------
    def prune(self, before: datetime, batch: int) -> int:
        """Delete up to ``batch`` jobs that ended before ``before``, with their attempts,
        in one short transaction; return how many. Call again until it returns 0."""

    def count_prunable(self, before: datetime) -> int: ...

    # -- steering -----------------------------------------------------------------------
    def run_now(self, job_id: int) -> Job | None:
        """Make a waiting (scheduled or retrying) job due now; None when it is not waiting."""
