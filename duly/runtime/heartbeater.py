"""The worker's heartbeater, mixed into ``Worker``: it extends the leases of the held jobs,
delivers cancel requests, flushes progress, interrupts stalled jobs, and stops the handlers
of jobs whose lease is about to run out (no heartbeat renewed it).

Each step (``heartbeat_once``, ``progress_once``, ``check_leases``) can be called by tests;
``_heartbeater`` is the loop. Database trouble never ends it: it is reported as a
``worker.db_error`` event and the heartbeat is retried after a capped backoff.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from duly.core.model import Finish, Held, Job
from duly.core.states import Outcome
from duly.runtime import events
from duly.runtime.context import JobContext
from duly.runtime.executor import CANCEL, LOST, SHUTDOWN, STALLED, Executor

if TYPE_CHECKING:
    from duly.runtime.worker import AppLike, WorkerConfig
    from duly.store.base import Store

T = TypeVar("T")

#: First pause before retrying a database call that failed (doubles up to the cap).
RECONNECT_BACKOFF_START = 0.1


class Heartbeater:
    """Mixed into ``Worker`` (which provides the attributes declared here)."""

    app: AppLike
    config: WorkerConfig
    store: Store
    worker_id: str
    executor: Executor
    held: dict[int, tuple[Job, JobContext]]
    waiting: dict[str, deque[Job]]
    ready: deque[Job]
    pending: list[Finish]
    _db_beat: ThreadPoolExecutor
    _beat_backoff: float | None
    touch_once: Callable[[], Awaitable[None]]  # provided by Housekeeping

    def _backoff(self, previous: float | None) -> float:  # provided by Worker
        raise NotImplementedError

    async def _call_beat(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db_beat, fn, *args)

    async def heartbeat_once(self) -> bool:
        """Extend the leases of the held jobs; deliver cancel requests. False: the database
        call failed (the leases run on; ``check_leases`` stops the handlers in time)."""
        held = [(job, ctx) for job, ctx in self.held.values() if ctx.cancel_reason != LOST]
        if not held:
            self._beat_backoff = None
            return True
        sent = time.monotonic()
        try:
            res = await self._call_beat(self.store.heartbeat, self.worker_id, [Held(j.id, j.attempt, j.started_at) for j, _ in held])
        except Exception as exc:  # noqa: BLE001
            self._beat_backoff = self._backoff(self._beat_backoff)
            events.emit("worker.db_error", where="heartbeat", error=repr(exc), retry_in=self.heartbeat_retry_in())
            return False
        self._beat_backoff = None
        stale = set(res.stale)
        for job, ctx in held:
            if job.id not in stale and sent > ctx.lease_from:
                ctx.lease_from = sent  # the database extended the lease from (at least) now
        for job_id in res.stale:
            self._stop_job(job_id, LOST)
        for job_id in res.cancel_requested:
            self._stop_job(job_id, CANCEL)
        return True

    def heartbeat_retry_in(self) -> float:
        """Seconds before a failed heartbeat is tried again: the backoff, at most the
        heartbeat interval."""
        backoff = RECONNECT_BACKOFF_START if self._beat_backoff is None else self._beat_backoff
        return min(backoff, self.heartbeat_every())

    def lease_margin(self) -> float:
        """Handlers are stopped this long before their lease would run out."""
        return self.heartbeat_every()

    def check_leases(self, now: float | None = None) -> list[int]:
        """On the loop, no database: stop the handlers of jobs whose lease is about to run out
        because no heartbeat renewed it (the database is gone, or a call hangs): deadline =
        the send time of the claim or last successful heartbeat + lease - ``lease_margin``.
        Their jobs are rescued elsewhere once the lease has expired. Returns the jobs stopped."""
        if not self.held:
            return []
        now = time.monotonic() if now is None else now
        margin = self.lease_margin()
        lost = [
            job.id
            for job, ctx in self.held.values()
            if ctx.cancel_reason != LOST and now > ctx.lease_from + job.lease_seconds - margin
        ]
        for job_id in lost:
            self._stop_job(job_id, LOST)
        return lost

    def _stop_job(self, job_id: int, reason: str) -> None:
        entry = self.held.get(job_id)
        if entry is None:
            return
        job, ctx = entry
        if reason == LOST:
            if ctx.cancel_reason == LOST:
                return
            events.emit("job.stale", job=job_id, attempt=job.attempt, outcome="lease lost")
            ctx.request_cancel(LOST)
            ctx.cancel_reason = LOST  # over an earlier reason too: without a lease, no outcome is written
        queue = self.waiting.get(job.task)
        if job in self.ready:
            queue = self.ready
        if queue and job in queue:  # never started: nothing to stop
            queue.remove(job)
            self.held.pop(job_id, None)
            if reason in (CANCEL, SHUTDOWN):
                self.pending.append(Finish(job.id, job.attempt, _outcome_for(reason)))
            return
        self.executor.cancel(job_id, reason)

    async def progress_once(self) -> None:
        """Persist the progress reported since the last call; interrupt stalled jobs."""
        now = time.monotonic()
        for job, ctx in list(self.held.values()):
            if ctx.progress_dirty and ctx.progress_done is not None and ctx.cancel_reason != LOST:
                ctx.progress_dirty = False
                try:
                    await self._call_beat(self.store.set_progress, Held(job.id, job.attempt, job.started_at), ctx.progress_done, ctx.progress_total)
                except Exception as exc:  # noqa: BLE001 - StaleAttempt or database trouble
                    events.emit("worker.db_error", where="progress", error=repr(exc))
            task = self.app.tasks.get(job.task)
            stall = task.defaults.stall_after if task is not None else None
            if stall and job.id in self.executor.running and now - ctx.progress_changed_at > stall:
                self._stop_job(job.id, STALLED)

    def heartbeat_every(self) -> float:
        """Seconds between heartbeats: ``heartbeat_interval``, but at most a third of the
        shortest lease held, so a job with a short lease is renewed before it runs out."""
        every = self.config.heartbeat_interval
        if self.held:
            every = min(every, min(job.lease_seconds for job, _ in self.held.values()) / 3)
        return max(every, 0.05)

    async def _beat_once(self, heartbeat: bool) -> bool:
        """One round of writes of the heartbeater: the heartbeat and the registry's touch
        (when due), then progress. False: the heartbeat failed."""
        try:
            if heartbeat:
                if not await self.heartbeat_once():
                    return False
                await self.touch_once()
            await self.progress_once()
        except Exception as exc:  # noqa: BLE001 - never ends the heartbeater
            events.emit("worker.db_error", where="heartbeater", error=repr(exc))
        return True

    async def _heartbeater(self) -> None:
        """Its own timer: checks the lease deadlines at every tick (``check_leases``), whether
        or not the database answers. The writes (progress, heartbeat) run beside it, one
        round at a time, so a call that hangs delays nothing but the next round. A failed
        heartbeat is retried after a capped backoff."""
        last = float("-inf")  # when the last heartbeat round was sent
        retry_at: float | None = None  # after a failed heartbeat: when to try again
        beat: asyncio.Future[bool] | None = None
        heartbeat = False
        try:
            while True:
                every = self.heartbeat_every()  # shrinks when a job with a short lease comes in
                tick = min(every / 2, 1.0)
                due = last + every if retry_at is None else retry_at
                busy = beat is not None and not beat.done()
                await asyncio.sleep(tick if busy else min(tick, max(0.0, due - time.monotonic())))
                self.check_leases()
                if beat is not None:
                    if not beat.done():
                        continue  # a write hangs: keep checking the deadlines, start no other
                    if heartbeat:
                        retry_at = None if beat.result() else last + self.heartbeat_retry_in()
                    beat = None
                now = time.monotonic()
                heartbeat = now >= (last + self.heartbeat_every() if retry_at is None else retry_at)
                if heartbeat:
                    last = now
                beat = asyncio.ensure_future(self._beat_once(heartbeat))
        finally:
            if beat is not None:
                beat.cancel()


def _outcome_for(reason: str) -> Any:
    return {CANCEL: Outcome.CANCELLED, SHUTDOWN: Outcome.INTERRUPTED}.get(reason, Outcome.INTERRUPTED)
