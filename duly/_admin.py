"""The App's operating verbs (mixed into ``duly.App``): workers, pausing queues, counts
and throughput for dashboards, retention pruning, and "run now".

The CLI (``duly workers``, ``duly queues``, ``duly prune``), the dashboard, its JSON API
and the metrics endpoint are thin shells over these.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from duly.core import defaults
from duly.core.admin import QueueCounts, ThroughputPoint, WorkerInfo
from duly.core.clock import Clock
from duly.core.durations import Duration, to_seconds
from duly.core.errors import InvalidOption, InvalidTransition
from duly.core.model import Job
from duly.core.options import check_name
from duly.core.states import RETRYABLE, JobState
from duly.store.base import Store


class AdminVerbs:
    """Mixin of App (which provides the members declared here)."""

    clock: Clock

    @property
    def store(self) -> Store:
        raise NotImplementedError

    def get_job(self, job_id: int) -> Job:
        raise NotImplementedError

    def retry(self, job_id: int) -> Job:
        raise NotImplementedError

    def enqueue(self, task: Any, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None, *,
                conn: Any = None, **options: Any) -> Job:  # fmt: skip
        raise NotImplementedError

    # -- workers and queues -------------------------------------------------------------

    def workers(self, dead_after: float = defaults.WORKER_DEAD_AFTER_SECONDS) -> list[WorkerInfo]:
        """Registered workers; ``alive`` when seen within ``dead_after`` seconds."""
        return self.store.list_workers(dead_after)

    def pause_queue(self, queue: str) -> bool:
        """Stop workers claiming from ``queue`` (running jobs finish). Workers notice within
        their ``rescue_interval`` (5 s by default). False when it was already paused."""
        return self.store.pause_queue(_queue(queue))

    def resume_queue(self, queue: str) -> bool:
        """Let workers claim from ``queue`` again; False when it was not paused."""
        return self.store.resume_queue(_queue(queue))

    def paused_queues(self) -> list[str]:
        return [p.name for p in self.store.paused_queues()]

    def queue_counts(self) -> list[QueueCounts]:
        """Jobs per queue and state, cheap on big tables: exact up to
        ``defaults.COUNT_EXACT_LIVE`` / ``COUNT_EXACT_FINAL`` per queue and state, estimated
        above that on PostgreSQL (listed in ``QueueCounts.estimated``)."""
        return self.store.queue_counts()

    def throughput(self, minutes: int = 15) -> list[ThroughputPoint]:
        """Jobs that ended in each of the last ``minutes`` minutes (this one included), per
        queue and final state."""
        if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= 1440:
            raise InvalidOption(f"minutes must be an integer from 1 to 1440, got {minutes!r}")
        return self.store.throughput(throughput_since(self.store.now(), minutes))

    def queue_latency(self) -> dict[str, float]:
        """Per queue, seconds the longest-waiting due job has waited (0 for none waiting)."""
        now = self.store.now()
        return {q: max((now - t).total_seconds(), 0.0) for q, t in self.store.oldest_due().items()}

    # -- retention ----------------------------------------------------------------------

    def prune(
        self,
        older_than: Duration = defaults.PRUNE_AFTER_SECONDS,
        *,
        batch: int = defaults.PRUNE_BATCH,
        on_progress: Callable[[int], None] | None = None,
    ) -> int:
        """Delete finished jobs (succeeded, failed, cancelled, expired) that ended more than
        ``older_than`` ago, with their attempts, ``batch`` jobs per short transaction.
        ``on_progress(n)`` is called after each batch with the number just deleted."""
        before = self.prune_cutoff(older_than)
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise InvalidOption(f"batch must be an integer >= 1, got {batch!r}")
        total = 0
        while True:
            n = self.store.prune(before, batch)
            total += n
            if on_progress is not None and n:
                on_progress(n)
            if n < batch:
                return total

    def prune_cutoff(self, older_than: Duration) -> datetime:
        try:
            seconds = to_seconds(older_than)
        except ValueError as exc:
            raise InvalidOption(f"older_than: {exc}") from None
        if seconds < 0:
            raise InvalidOption(f"older_than must not be negative, got {older_than!r}")
        return self.store.now() - timedelta(seconds=seconds)

    # -- steering -----------------------------------------------------------------------

    def run_now(self, job_id: int) -> Job:
        """Run a job as soon as a worker is free: a waiting (scheduled or retrying) job
        becomes due now; a failed, cancelled or expired one is retried; a succeeded one is
        enqueued again as a new job (returned). A running job is refused."""
        job = self.get_job(job_id)
        if job.state in RETRYABLE:
            return self.retry(job_id)
        if job.state is JobState.SUCCEEDED:
            return self.enqueue(
                job.task, job.args, job.kwargs, queue=job.queue, priority=job.priority,
                max_attempts=job.max_attempts, key=job.key,
            )  # fmt: skip
        if job.state is JobState.RUNNING:
            raise InvalidTransition(f"job {job_id} is running already")
        moved = self.store.run_now(job_id)
        return moved if moved is not None else self.get_job(job_id)


def throughput_since(now: datetime, minutes: int) -> datetime:
    """The start of the minute ``minutes - 1`` minutes before the current one."""
    return now.replace(second=0, microsecond=0) - timedelta(minutes=minutes - 1)


def _queue(name: str) -> str:
    return check_name(name, "queue")
