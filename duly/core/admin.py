"""Plain data of the operating surfaces: workers, queue counts, throughput, pruning.

These cross the layers like ``duly.core.model``: the store returns them, the CLI, the
dashboard, the JSON API and the metrics endpoint present them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from duly.core.states import JobState


@dataclass(frozen=True, slots=True)
class WorkerRegistration:
    """What a worker writes about itself when it starts (``Store.register_worker``)."""

    id: str
    hostname: str
    pid: int
    queues: Sequence[str] | None  # None: every queue
    concurrency: int


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A worker as the registry sees it. ``alive``: it touched its row within the
    ``dead_after`` window given to ``list_workers``; ``running``: how many jobs it holds a
    lease on, ``job_ids``: which (ascending)."""

    id: str
    hostname: str
    pid: int
    queues: list[str] | None
    concurrency: int
    started_at: datetime
    last_seen_at: datetime
    alive: bool
    running: int
    job_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class QueueCounts:
    """Jobs of one queue by state, as the dashboard shows them.

    A count is exact while it stays at or under the store's exact limit; above it the
    store may give an estimate (PostgreSQL: the planner's statistics) and names the
    state in ``estimated``. ``paused``: workers do not claim from this queue."""

    queue: str
    counts: dict[JobState, int]
    estimated: frozenset[JobState] = field(default_factory=frozenset)
    paused: bool = False

    def __getitem__(self, state: JobState | str) -> int:
        return self.counts.get(JobState(state), 0)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True, slots=True)
class ThroughputPoint:
    """Jobs of ``queue`` that ended in ``state`` during the minute starting at ``minute``."""

    queue: str
    minute: datetime
    state: JobState
    count: int


@dataclass(frozen=True, slots=True)
class PausedQueue:
    name: str
    paused_at: datetime


__all__ = ["PausedQueue", "QueueCounts", "ThroughputPoint", "WorkerInfo", "WorkerRegistration"]


@dataclass(frozen=True, slots=True)
class EndedJob:
    """A job that ended (``Store.ended_jobs``), with the (outcome, seconds) of each of its
    attempts that ran: what the metrics' cumulative counters and histogram accumulate."""

    id: int
    queue: str
    state: JobState
    finished_at: datetime
    attempts: tuple[tuple[str, float], ...] = ()
