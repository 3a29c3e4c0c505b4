"""Plain data that crosses the layers: jobs, attempts, stats and the stores' parameter objects."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from duly.core.states import JobState, Outcome


class KeyMode(str, enum.Enum):
    """What enqueue does when a live job already holds the caller's key."""

    NEW = "new"  # refuse: DuplicateKey naming the holder
    IGNORE = "ignore"  # return the holder untouched (attempts not reset)
    REPLACE = "replace"  # reset the holder's spec, run time and attempt count

    def __str__(self) -> str:
        return self.value


# Not frozen: a worker builds one per claimed job, and a frozen 26-field dataclass costs
# five times as much to construct (object.__setattr__ per field). Treat it as read-only.
@dataclass(slots=True, eq=True)
class Job:
    id: int
    task: str
    queue: str
    args: list[Any]
    kwargs: dict[str, Any]
    priority: int
    state: JobState
    run_at: datetime
    expires_at: datetime | None
    key: str | None
    attempt: int  # attempts started so far; the current attempt's number while running
    errors: int  # attempts that used up the budget (failed, lost, timed out)
    max_attempts: int
    lease_seconds: float
    worker_id: str | None
    lease_expires_at: datetime | None
    started_at: datetime | None
    cancel_requested: bool
    progress_done: int | None
    progress_total: int | None
    result: Any
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    trigger_id: int | None = None

    @property
    def attempts_left(self) -> int:
        return max(self.max_attempts - self.errors, 0)


@dataclass(frozen=True, slots=True)
class Attempt:
    job_id: int
    attempt: int
    worker_id: str | None
    started_at: datetime | None
    finished_at: datetime | None
    outcome: Outcome
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    log: str | None = None


@dataclass(frozen=True, slots=True)
class QueueStats:
    queue: str
    counts: dict[JobState, int]
    #: Running jobs whose lease has run out: their worker stopped renewing it. They are still
    #: in ``counts[RUNNING]`` (the stored state) until a rescue records the attempt as lost.
    lease_expired: int = 0
    #: States whose count is an estimate (``App.stats()`` counts finished jobs exactly only up
    #: to a limit; ``App.stats(exact=True)`` counts every row).
    estimated: frozenset[JobState] = frozenset()

    def __getitem__(self, state: JobState | str) -> int:
        return self.counts.get(JobState(state), 0)

    @property
    def claimed(self) -> int:
        """Running jobs under a live lease."""
        return self[JobState.RUNNING] - self.lease_expired

    @property
    def waiting(self) -> int:
        """Jobs waiting for a worker: scheduled, queued, retrying, and running ones whose
        lease has run out (no live worker holds them; the next rescue lets them run again)."""
        waits = (JobState.SCHEDULED, JobState.QUEUED, JobState.RETRYING)
        return sum(self[s] for s in waits) + self.lease_expired


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    type: str
    message: str
    traceback: str | None = None

    @classmethod
    def from_exception(cls, exc: BaseException, tb: str | None = None) -> ErrorInfo:
        return cls(type=type(exc).__qualname__, message=str(exc), traceback=tb)

    def summary(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type


# ---- parameter objects of the store protocol ------------------------------------------


@dataclass(slots=True)
class EnqueueParams:
    """One job to insert. ``args_json``/``kwargs_json`` are already validated JSON text."""

    task: str
    args_json: str
    kwargs_json: str
    queue: str = "default"
    priority: int = 0
    run_at: datetime | None = None  # absolute; else ``delay`` seconds from the store's now
    delay: float | None = None
    expires_at: datetime | None = None  # absolute; else ``expires_in`` seconds from the store's now
    expires_in: float | None = None
    max_attempts: int = 5
    lease_seconds: float = 60.0
    key: str | None = None
    key_mode: KeyMode = KeyMode.NEW
    trigger_id: int | None = None


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    job: Job
    created: bool  # False when mode IGNORE returned an existing job


@dataclass(frozen=True, slots=True)
class ClaimParams:
    worker_id: str
    limit: int
    queues: Sequence[str] | None = None  # None: every queue
    exclude_tasks: Sequence[str] = ()  # tasks at their concurrency limit in this worker
    exclude_queues: Sequence[str] = ()  # paused queues (the worker refreshes them periodically)


@dataclass(frozen=True, slots=True)
class Held:
    """A (job id, attempt) pair that a holder presents to prove it still holds the job, with
    the attempt's start as the claim returned it (None: not checked). PostgreSQL fences on
    the start too, because it commits claims without waiting for the disk: a claim lost in a
    server crash hands the same attempt number out again, but never the same start."""

    job_id: int
    attempt: int
    started_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class HeartbeatResult:
    stale: frozenset[int]  # job ids whose attempt no longer holds the job
    cancel_requested: frozenset[int]  # job ids someone asked to cancel


@dataclass(slots=True)  # one per attempt on the worker's hot path: not frozen (cheaper to build)
class Finish:
    """How an attempt ended, as the completer persists it (fenced by ``attempt``).

    ``outcome`` decides the new state:
    SUCCEEDED → succeeded; FAILED / TIMED_OUT → retrying in ``retry_in`` seconds (expired if
    that reaches ``expires_at``) or failed when ``retry_in`` is None; CANCELLED → cancelled;
    INTERRUPTED → queued again now (not counted); RESCHEDULED → queued at ``run_at`` or in
    ``retry_in`` with the failure count reset; SNOOZED → same, keeping the count. A job whose
    cancel was requested while it ran ends cancelled instead of waiting again.
    """

    job_id: int
    attempt: int
    outcome: Outcome
    result_json: str | None = None
    error: ErrorInfo | None = None
    retry_in: float | None = None
    run_at: datetime | None = None
    log: str | None = None
    progress_done: int | None = None  # last progress reported, persisted with the outcome
    progress_total: int | None = None
    started_at: datetime | None = None  # the attempt's start, from its claim (see Held)


@dataclass(frozen=True, slots=True)
class JobFilter:
    queue: str | None = None
    state: JobState | None = None
    task: str | None = None
    text: str | None = None  # substring of task, key, args, kwargs or last error
    before_id: int | None = None  # keyset pagination: ids below this one
    limit: int = 50
    ids: Sequence[int] = field(default_factory=tuple)
    after_id: int | None = None  # ids above this one (bounds the rows a text search scans)
