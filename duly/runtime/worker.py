"""The worker: claims jobs into free slots, runs them, persists outcomes in batches.

Services inside one worker (each a small loop with a ``*_once`` step that tests can call):
fetcher (claims a batch sized to the free slots; sleeps on a wake-up, a freed slot or the
poll interval; never polls while every slot is busy), completer (writes outcomes in one
fenced statement per flush), heartbeater (extends leases, delivers cancel requests, flushes
progress, interrupts stalled jobs), maintenance (rescues expired leases, expires jobs).
The fetcher and the heartbeater are mixins of their own modules (``fetcher``,
``heartbeater``), as the registry, paused queues and pruning are (``housekeeping``).
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from duly._faults import crash_point
from duly.core import defaults
from duly.core.clock import Clock
from duly.core.model import ClaimParams, Finish, Held, Job
from duly.core.states import Outcome
from duly.runtime import events
from duly.runtime.context import JobContext, install_capture, uninstall_capture
from duly.runtime.executor import SHUTDOWN, Executor, TaskLike
from duly.runtime.fetcher import Fetcher
from duly.runtime.heartbeater import RECONNECT_BACKOFF_START, Heartbeater, _outcome_for
from duly.runtime.hooks import Hooks
from duly.runtime.housekeeping import Housekeeping
from duly.runtime.pidfile import PidFile
from duly.store.base import Store

T = TypeVar("T")

#: After a shutdown's grace, how long interrupted handlers get to return before their jobs
#: are handed back without them (async ones are cancelled at once; sync ones see
#: ``ctx.cancelled``): short, so the process exits within ``grace`` + 1 s.
CANCEL_WAIT_SECONDS = 0.25
#: The thread switch interval ``run()`` sets on SQLite (see ``WorkerConfig.switch_interval``).
OVERLAP_SWITCH_INTERVAL = 0.0005
#: The youngest generation's threshold ``run()`` gives the garbage collector (see
#: ``WorkerConfig.gc_threshold``); Python's is 700.
GC_THRESHOLD = 10_000


class AppLike(Protocol):
    @property
    def store(self) -> Store: ...

    @property
    def tasks(self) -> Mapping[str, TaskLike]: ...

    @property
    def hooks(self) -> Hooks: ...

    @property
    def clock(self) -> Clock: ...


@dataclass
class WorkerConfig:
    queues: Sequence[str] | None = None
    concurrency: int = 10
    poll_interval: float = 1.0
    grace: float = 30.0
    burst: bool = False
    heartbeat_interval: float = 5.0
    rescue_interval: float = 5.0
    schedule_interval: float = 1.0  # how often this worker's scheduler fires due triggers
    scheduler: bool = True  # run a scheduler in this worker (any number may run: slots fire once)
    dynamic_concurrency: Callable[[], int] | None = None
    pid_file: str | None = None
    worker_id: str | None = None
    #: Jobs claimed beyond ``concurrency`` and held ready, so the next claim overlaps the
    #: running batch (short jobs run faster; long ones are better left unclaimed: keep 0).
    prefetch: int = 0
    isolation: str = "thread"  # or "process": one child process per job (needs app_path)
    app_path: str | None = None  # module:attribute of the App, for process isolation
    #: Finished jobs older than this many seconds are deleted (None: keep them forever).
    prune_after: float | None = defaults.PRUNE_AFTER_SECONDS
    prune_interval: float = defaults.PRUNE_INTERVAL_SECONDS  # seconds between pruning rounds
    #: Longest pause between retries of a failing claim or heartbeat (the backoff doubles
    #: from 0.1 s up to this).
    reconnect_backoff_max: float = 5.0
    #: ``run()`` (the worker owning its process, as ``duly worker`` does) sets Python's
    #: thread switch interval to this many seconds while it runs. None: 0.5 ms on SQLite,
    #: where the next claim overlaps the jobs of the last one (Python's 5 ms lets the event
    #: loop, busy starting those jobs, keep the database thread waiting that long), and
    #: Python's own elsewhere (docs/configuration.md, "Worker options").
    switch_interval: float | None = None
    #: ``run()`` sets the cyclic garbage collector's threshold for its youngest generation to
    #: this many (tracked allocations less deallocations) while it runs; None leaves Python's
    #: 700. The objects of the jobs in flight (job, context, task, outcome...) are alive, so
    #: with hundreds in flight their count alone keeps crossing 700: the collector ran every
    #: 85 jobs of a SQLite drain, holding the GIL for 13-16 % of it, and found nothing to free
    #: (docs/configuration.md, "Worker options").
    gc_threshold: int | None = GC_THRESHOLD


class Worker(Housekeeping, Heartbeater, Fetcher):
    def __init__(self, app: AppLike, config: WorkerConfig | None = None, **kw: Any) -> None:
        self.app = app
        self.config = config or WorkerConfig(**kw)
        c = self.config
        if c.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {c.concurrency}")
        if c.switch_interval is not None and not c.switch_interval > 0:
            raise ValueError(f"switch_interval must be > 0 seconds (or None), got {c.switch_interval}")
        if c.gc_threshold is not None and (isinstance(c.gc_threshold, bool) or not isinstance(c.gc_threshold, int)
                                           or c.gc_threshold < 1):  # fmt: skip
            raise ValueError(f"gc_threshold must be a whole number >= 1 (or None), got {c.gc_threshold!r}")
        self.worker_id = c.worker_id or f"{socket.gethostname()}:{os.getpid()}:{os.urandom(2).hex()}"
        self.store = app.store
        self.pool = ThreadPoolExecutor(max_workers=c.concurrency + 16, thread_name_prefix="duly-job")
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="duly-db")
        # Outcomes are written from their own thread (and pooled connection on PostgreSQL), so
        # a flush and the next claim overlap instead of queueing behind each other.
        self._db_finish = ThreadPoolExecutor(max_workers=1, thread_name_prefix="duly-db-finish")
        # Heartbeats and progress have a thread of their own too: a slow claim or prune never
        # delays a lease's renewal, and a heartbeat that hangs blocks nothing but itself.
        self._db_beat = ThreadPoolExecutor(max_workers=1, thread_name_prefix="duly-db-beat")
        self.executor = Executor(app.tasks, app.hooks, app.clock, self.worker_id, self.pool, self._isolated())
        self.held: dict[int, tuple[Job, JobContext]] = {}
        self.per_task: dict[str, int] = {}  # running attempts per task (no zero entries)
        self.waiting: dict[str, deque[Job]] = {}
        self.ready: deque[Job] = deque()  # prefetched, waiting for a free slot
        self._unstarted: list[tuple[Job, float]] = []  # an overlapped claim's, started next turn
        self._run_cap = self.config.concurrency
        self.pending: list[Finish] = []
        self._requeued = False  # ``pending`` holds an outcome that may leave its job waiting
        self.inflight = 0  # attempts started and not yet ended
        self._idle: asyncio.Event | None = None  # set whenever inflight drops to zero
        self.stopping = False
        self.processed = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._slot: asyncio.Event | None = None
        self._flushed: asyncio.Event | None = None
        #: Done when the claim in flight returns (None: no claim in flight); see _completer.
        self._claiming: asyncio.Future[None] | None = None
        self._flush_lock = asyncio.Lock()
        #: A claim left ready for the store's listening thread while the fetcher idles.
        self._armed: tuple[ClaimParams, asyncio.Future[None]] | None = None
        self._armed_done: asyncio.Future[None] | None = None
        self._idling = False
        self._arm_lock = threading.Lock()
        self._beat_backoff: float | None = None  # pause before retrying a failed heartbeat
        self._signals = 0
        #: Jobs whose sync handlers ignored the shutdown request and still run in their
        #: threads after ``run`` returned (their jobs were handed back as interrupted).
        self.abandoned = 0
        #: Paused queues, re-read by the maintenance loop and excluded from claims.
        self.paused: list[str] = []
        self._touched = 0.0
        self._pruned_at: float | None = None

    def _isolated(self) -> Any:
        if self.config.isolation == "thread":
            return None
        if self.config.isolation != "process":
            raise ValueError(f"isolation must be 'thread' or 'process', got {self.config.isolation!r}")
        if not self.config.app_path:
            raise ValueError("isolation='process' needs app_path='module:app' so children can load the tasks")
        from duly.runtime.isolation import ProcessRunner

        return ProcessRunner(self.config.app_path)

    # -- helpers ------------------------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db, fn, *args)

    def _backoff(self, previous: float | None) -> float:
        """The next pause of a retried database call: 0.1 s, doubling, capped."""
        cap = self.config.reconnect_backoff_max
        return min(cap, RECONNECT_BACKOFF_START if previous is None else previous * 2)

    def wake(self) -> None:
        """Thread-safe: make an idle fetcher claim now."""
        loop, ev = self._loop, self._wake
        if loop is not None and ev is not None and not loop.is_closed():
            loop.call_soon_threadsafe(ev.set)

    def stop(self) -> None:
        """Thread-safe: stop claiming and shut down gracefully."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._begin_stop)
        else:
            self.stopping = True

    def _begin_stop(self) -> None:
        if not self.stopping:
            events.emit("worker.stopping", worker=self.worker_id, inflight=self.inflight, grace=self.config.grace)
        self.stopping = True
        for ev in (self._wake, self._slot):
            if ev is not None:
                ev.set()

    # -- one job ------------------------------------------------------------------------

    def _launch(self, job: Job, leased_at: float | None = None) -> None:
        """Start ``job`` in a free slot (or hold it until one frees); ``leased_at``: when
        the claim that took it was sent (its lease runs from about then)."""
        name = job.task
        task = self.app.tasks.get(name)
        limit = task.defaults.concurrency if task is not None else None
        per_task = self.per_task
        if limit is not None and per_task.get(name, 0) >= limit:
            self.waiting.setdefault(job.task, deque()).append(job)
            self.held[job.id] = (job, JobContext(job, self.worker_id, self.app.clock, leased_at))
            return
        entry = self.held.get(job.id)
        ctx = entry[1] if entry is not None else JobContext(job, self.worker_id, self.app.clock, leased_at)
        self.held[job.id] = (job, ctx)
        if self.inflight >= self._run_cap:  # prefetched: every slot is busy
            self.ready.append(job)
            return
        per_task[name] = per_task.get(name, 0) + 1
        self.inflight += 1
        if self._idle is not None:
            self._idle.clear()
        self.executor.start(job, ctx, self._job_done)

    def _job_done(self, job: Job, ctx: JobContext, finish: Finish | None) -> None:
        """On the loop, once per attempt: free its slot, queue its outcome for the completer."""
        per_task = self.per_task
        n = per_task.get(job.task, 0)
        if n > 1:
            per_task[job.task] = n - 1
        else:
            per_task.pop(job.task, None)
        entry = self.held.get(job.id)
        if entry is not None and entry[0].attempt == job.attempt:  # not a later attempt's entry
            del self.held[job.id]
        self.inflight -= 1
        self.processed += 1
        if finish is not None:
            finish.started_at = job.started_at  # fenced with the attempt (see Held)
            self.pending.append(finish)
            if finish.outcome is not _SUCCEEDED:
                self._requeued = True  # may wait to run again: see _flush_locked
            if self._flushed is not None:
                self._flushed.set()
        queue = self.waiting.get(job.task)
        if queue:
            self._launch(queue.popleft())
        while self.ready and self.inflight < self._run_cap:
            self._launch(self.ready.popleft())
        if self._slot is not None:
            self._slot.set()
        if self.inflight == 0 and self._idle is not None:
            self._idle.set()

    async def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no attempt is running; False if ``timeout`` passed first."""
        assert self._idle is not None
        if self.inflight == 0:
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # -- completer ----------------------------------------------------------------------

    async def flush(self) -> None:
        """Persist every pending outcome in one fenced batch.

        One flush at a time: a caller waits for a batch another flush (the completer) has
        taken and is writing, so when ``await flush()`` returns every outcome pending at the
        call is in the database. A batch handed to the database thread is written even if
        the flush awaiting it is cancelled (shutdown cancels the completer; ``close`` waits
        for the database thread)."""
        async with self._flush_lock:
            await self._flush_locked()

    async def _flush_locked(self) -> None:
        failing_since: float | None = None
        while self.pending:
            batch, requeued = self._take_pending()
            submitted = asyncio.wrap_future(self._db_finish.submit(self.store.finish, batch))
            try:
                stale = await asyncio.shield(submitted)
            except Exception as exc:  # noqa: BLE001 - keep outcomes and retry
                events.emit("worker.db_error", where="finish", error=repr(exc))
                self._give_back(batch, requeued)
                now = time.monotonic()
                failing_since = failing_since or now
                if self.stopping and now - failing_since > self.config.grace + 5:
                    # Shutting down without a database: give up; the leases run out and the
                    # jobs are rescued elsewhere (their attempts recorded as lost).
                    events.emit("worker.db_error", where="finish", error="giving up at shutdown", dropped=len(self.pending))
                    self.pending.clear()
                    return
                await asyncio.sleep(0.5)
                continue
            failing_since = None
            self._flush_done(stale, requeued)

    def _take_pending(self) -> tuple[list[Finish], bool]:
        """The pending outcomes, as one batch to write (under the flush lock), and whether
        one of them may leave its job waiting again."""
        batch, self.pending = self.pending, []
        requeued, self._requeued = self._requeued, False
        crash_point("finish.before", batch)
        return batch, requeued

    def _give_back(self, batch: list[Finish], requeued: bool) -> None:
        """A batch that was not written goes back to the front of ``pending``."""
        self.pending[:0] = batch
        self._requeued = self._requeued or requeued

    def _flush_done(self, stale: list[Finish], requeued: bool) -> None:
        """After a batch of outcomes is written (by the completer, or with a claim)."""
        for item in stale:
            events.emit("job.stale", job=item.job_id, attempt=item.attempt, outcome=item.outcome.value)
        if requeued and self._wake is not None:
            # jobs back in the queue (a retry, a snooze...), perhaps due before the idle
            # fetcher's next poll: let it look at the next due time again
            self._wake.set()

    async def _completer(self) -> None:
        assert self._flushed is not None
        while True:
            await self._flushed.wait()
            self._flushed.clear()
            if self.store.combines_finish_with_claim:
                # One turn of the loop first: a fetcher woken by the same ends (slots freed)
                # takes the outcomes into its claim's transaction (see _finish_and_claim).
                # While a claim is in flight the fetcher claims again as soon as it has
                # launched its jobs, and takes what is pending then: leave it to that claim
                # (queueing on the flush lock would make the fetcher's claim wait behind a
                # flush of its own: two transactions where one does).
                await asyncio.sleep(0)
                while self.pending and self._claiming is not None:
                    await asyncio.wait([self._claiming])  # (not awaited: a cancel stays ours)
                    await asyncio.sleep(0)
                if not self.pending:
                    continue
            await self.flush()

    # -- maintenance --------------------------------------------------------------------

    async def rescue_once(self) -> list[Held]:
        try:
            rescued = await self._call(self.store.rescue)
        except Exception as exc:  # noqa: BLE001
            events.emit("worker.db_error", where="rescue", error=repr(exc))
            return []
        for h in rescued:
            events.emit("job.rescue", job=h.job_id, attempt=h.attempt)
        if rescued:
            self.wake()
        return rescued

    async def schedule_once(self) -> int:
        tick = getattr(self.app, "scheduler_tick", None)
        if tick is None:
            return 0
        try:
            made: int = await self._call(tick)
        except Exception as exc:  # noqa: BLE001
            events.emit("worker.db_error", where="scheduler", error=repr(exc))
            return 0
        return made

    async def _scheduler(self) -> None:
        while True:
            await self.schedule_once()
            await asyncio.sleep(self.config.schedule_interval)

    async def _maintenance(self) -> None:
        while True:
            await self.rescue_once()
            await self.refresh_paused()
            await self.prune_once()
            await asyncio.sleep(self.config.rescue_interval)

    # -- one round (the fetcher's loop: fetcher.py) -----------------------------------

    async def run_once(self) -> int:
        """Rescue, claim one batch, run it to the end and persist the outcomes."""
        await self._setup()
        await self.rescue_once()
        await self.refresh_paused()
        jobs = await self.claim_once()
        await self.wait_idle()
        await self.flush()
        return len(jobs)


    # -- lifecycle ----------------------------------------------------------------------

    async def _setup(self) -> None:
        if self._loop is None:
            install_capture()
            self._captured = True
            self._loop = asyncio.get_running_loop()
            self._wake = asyncio.Event()
            self._slot = asyncio.Event()
            self._flushed = asyncio.Event()
            self._idle = asyncio.Event()
            self._idle.set()

    async def run_async(self) -> None:
        """Run until ``stop()`` (or, with ``burst``, until no job is due), then shut down."""
        await self._setup()
        pid = PidFile(self.config.pid_file) if self.config.pid_file else None
        if pid is not None:
            pid.acquire()
        unsubscribe = self.store.subscribe(self._ring)
        subscribe_clock = getattr(self.app.clock, "subscribe", None)
        if subscribe_clock is not None:
            subscribe_clock(self.wake)
        events.emit("worker.start", worker=self.worker_id, queues=self.config.queues or "*", concurrency=self.config.concurrency)
        await self.register()
        await self.refresh_paused()
        loops = [self._completer, self._heartbeater, self._maintenance]
        if self.config.scheduler:
            loops.append(self._scheduler)
        services = [asyncio.ensure_future(s()) for s in loops]
        try:
            try:
                await self._fetcher()
            finally:
                self._start_unstarted()
            await self._shutdown()
        finally:
            for s in services:
                s.cancel()
            await asyncio.gather(*services, return_exceptions=True)
            await self.flush()
            unsubscribe()
            await self.deregister()
            if pid is not None:
                pid.release()
            self.abandoned = max(self.abandoned, self.executor.in_threads)  # e.g. timed out, never returned
            self.close()
            events.emit("worker.stop", worker=self.worker_id, processed=self.processed)

    async def _shutdown(self) -> None:
        """Give in-flight jobs ``grace`` seconds, then interrupt them and hand them back."""
        if self.inflight and not await self.wait_idle(self.config.grace):
            for job_id in list(self.held):
                self._stop_job(job_id, SHUTDOWN)
            if not await self.wait_idle(CANCEL_WAIT_SECONDS):
                # Sync handlers that ignore ctx.cancelled: hand their jobs back without them.
                self.abandoned = self.inflight
                for job_id in list(self.executor.running):
                    self.executor.abandon(job_id, SHUTDOWN)
                # Their ends are announced (events, hooks) before they are delivered.
                await self.wait_idle(CANCEL_WAIT_SECONDS)
        for job, _ctx in list(self.held.values()):  # claimed but waiting for a task slot
            self.pending.append(Finish(job.id, job.attempt, _outcome_for(SHUTDOWN)))
        self.held.clear()
        await self.flush()

    def close(self) -> None:
        """Release the worker's threads (``run_async`` does this itself when it ends)."""
        if getattr(self, "_captured", False):
            self._captured = False
            uninstall_capture()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self._db.shutdown(wait=True)
        self._db_finish.shutdown(wait=True)
        # Not waited for: a heartbeat that hangs must not hold the worker (or its exit) up.
        self._db_beat.shutdown(wait=False, cancel_futures=True)

    def run(self) -> None:
        """Blocking entry point with signal handling: the first SIGTERM/SIGINT stops
        gracefully, a second one exits at once. Sets the switch interval and the garbage
        collector's threshold while it runs (``WorkerConfig.switch_interval``,
        ``WorkerConfig.gc_threshold``), and restores both when it returns."""
        async def main() -> None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._on_signal)
            await self.run_async()

        previous = sys.getswitchinterval()
        thresholds = gc.get_threshold()
        interval = self.config.switch_interval
        if interval is None and self.store.combines_finish_with_claim:
            interval = OVERLAP_SWITCH_INTERVAL
        if interval is not None:
            sys.setswitchinterval(interval)
        if self.config.gc_threshold is not None:
            gc.set_threshold(self.config.gc_threshold, *thresholds[1:])
        try:
            asyncio.run(main())
        finally:
            sys.setswitchinterval(previous)
            gc.set_threshold(*thresholds)

    def _on_signal(self) -> None:
        self._signals += 1
        if self._signals > 1:
            events.emit("worker.stop", worker=self.worker_id, reason="second signal: exiting now")
            os._exit(130)
        self._begin_stop()


_SUCCEEDED = Outcome.SUCCEEDED
