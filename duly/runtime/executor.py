"""Run one claimed job and turn what happened into an outcome (a ``Finish``) to persist.

The executor never writes to the database: the worker's completer persists outcomes in
batches, fenced by attempt number.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import inspect
import json
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Executor as PoolExecutor
from typing import Any, Protocol

from duly._faults import crash_point
from duly.core.clock import Clock
from duly.core.errors import Abort, NoRetry, UnknownTask
from duly.core.model import ErrorInfo, Finish, Job
from duly.core.options import TaskOptions
from duly.core.payload import keep_floats
from duly.core.results import Reschedule, Snooze
from duly.core.retry import Exponential
from duly.core.states import Outcome
from duly.runtime import events
from duly.runtime.context import JobContext, _current
from duly.runtime.hooks import Hooks

#: Why a running attempt was asked to stop, and the outcome that follows.
CANCEL = "cancelled"
SHUTDOWN = "shutdown"
LOST = "lease lost"
STALLED = "stalled"
TIMEOUT = "timeout"

_DEFAULT = TaskOptions(retry=Exponential())
_SUCCEEDED = Outcome.SUCCEEDED


#: Python 3.12+ can start a Task eagerly (its first step at once, as that Task).
EAGER_TASKS = sys.version_info >= (3, 12)

#: Called on the loop when an attempt ends: (job, ctx, outcome or None when the lease was lost).
Done = Callable[[Job, JobContext, "Finish | None"], None]


class TaskLike(Protocol):
    name: str
    fn: Callable[..., Any]
    defaults: TaskOptions
    is_async: bool


def wants_context(fn: Callable[..., Any]) -> bool:
    """A handler receives ``ctx`` when its first parameter is named ``ctx``."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    return bool(params) and params[0].name == "ctx"


class Executor:
    def __init__(
        self,
        tasks: Mapping[str, TaskLike],
        hooks: Hooks,
        clock: Clock,
        worker_id: str,
        pool: PoolExecutor,
        run_isolated: Callable[[TaskLike, Job, JobContext, float | None], Any] | None = None,
    ) -> None:
        self.tasks = tasks
        self.hooks = hooks
        self.clock = clock
        self.worker_id = worker_id
        self.pool = pool
        self.run_isolated = run_isolated
        # job id -> (the asyncio task of an async handler or None, its context)
        self.running: dict[int, tuple[asyncio.Task[Any] | None, JobContext]] = {}
        self._ctx_cache: dict[str, bool] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._done: deque[tuple[Job, JobContext, Finish | None, Done | None]] = deque()
        #: Handlers still running in pool threads, counting timed-out ones that never return.
        self.in_threads = 0
        self._in_threads_lock = threading.Lock()
        self._ping = False
        self._eager = False  # inside an async attempt's first step, run at once

    def options(self, job: Job) -> TaskOptions:
        task = self.tasks.get(job.task)
        return task.defaults if task is not None else _DEFAULT

    def cancel(self, job_id: int, reason: str) -> None:
        """Ask a running attempt to stop: async handlers are cancelled, sync ones see
        ``ctx.cancelled``."""
        entry = self.running.get(job_id)
        if entry is None:
            return
        handle, ctx = entry
        ctx.request_cancel(reason)
        if handle is not None and not handle.done():
            handle.cancel()

    def abandon(self, job_id: int, reason: str) -> None:
        """End an attempt now without waiting for its handler (a sync handler that ignores
        ``ctx.cancelled``): the outcome follows ``reason``; whatever the thread returns later
        is dropped. Used at the end of a shutdown's grace. The outcome is delivered soon
        after (its events logged and hooks run first, like every attempt's end)."""
        entry = self.running.get(job_id)
        if entry is None:
            return
        ctx = entry[1]
        ctx.request_cancel(reason)
        job = ctx.job
        opts = self.options(job)
        self._end_from_loop(job, ctx, self._failed_safe(job, ctx, opts, InterruptedError(reason)), None)

    # -- starting an attempt -------------------------------------------------------------

    def start(self, job: Job, ctx: JobContext, done: Done) -> None:
        """Begin running ``job`` (call on the event loop); ``done(job, ctx, finish)`` is called
        on the loop exactly once when the attempt ends (``finish`` None: lease lost)."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        ctx.done = done
        task = self.tasks.get(job.task)
        opts = task.defaults if task is not None else _DEFAULT
        if task is None:
            exc = UnknownTask(
                f"no task named {job.task!r} is registered in this worker; "
                "import the module that defines it (duly worker --app module:app)"
            )
            self.running[job.id] = (None, ctx)
            self._end_from_loop(job, ctx, self._failed_safe(job, ctx, opts, exc), done, started=True)
            return
        if task.is_async and self.run_isolated is None:
            self._start_async(loop, self._async_body(task, job, ctx, opts, done), job.id, ctx)
            return
        self.running[job.id] = (None, ctx)
        if opts.timeout is not None:
            ctx.timer = loop.call_later(opts.timeout, self._time_out, job, ctx, opts, done)
        self.pool.submit(self._sync_body, task, job, ctx, opts, done)

    def _start_async(self, loop: asyncio.AbstractEventLoop, coro: Any, job_id: int, ctx: JobContext) -> None:
        """An async attempt's Task. On Python 3.12+ it starts eagerly: its first step runs
        now, under its own Task (so ``asyncio.timeout`` and ``current_task`` are right), and a
        handler that finishes without waiting never reaches the event loop's queue."""
        self.running[job_id] = (None, ctx)
        if EAGER_TASKS and not self._eager:
            self._eager = True  # one attempt's end may start the next: no nesting of eager steps
            try:
                handle: asyncio.Task[Any] = asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg,unused-ignore]
            finally:
                self._eager = False
        else:
            handle = loop.create_task(coro)
        entry = self.running.get(job_id)
        if entry is not None and entry[1] is ctx and not handle.done():
            self.running[job_id] = (handle, ctx)
            if ctx.cancelled:  # asked to stop during the first step
                handle.cancel()

    def _time_out(self, job: Job, ctx: JobContext, opts: TaskOptions, done: Done) -> None:
        """A sync handler ran over its timeout: end the attempt now and free its slot; the
        thread sees ``ctx.cancelled`` and its eventual return is dropped."""
        if ctx.finished:
            return
        ctx.request_cancel(TIMEOUT)
        exc = TimeoutError(f"task {job.task!r} ran over its timeout of {opts.timeout:g}s")
        self._end_from_loop(job, ctx, self._failed_safe(job, ctx, opts, exc), done)

    def _claim(self, ctx: JobContext) -> bool:
        """Make this the one end of the attempt (False: another end came first). A sync
        handler's thread and the loop (a timeout, a shutdown's abandon) may race for it."""
        with self._in_threads_lock:
            if ctx.finished:
                return False
            ctx.finished = True
            return True

    def _end_from_loop(self, job: Job, ctx: JobContext, finish: Finish | None, done: Done | None,
                       started: bool = False) -> None:  # fmt: skip
        """End an attempt from the loop (a sync timeout, a shutdown's abandon, an unknown
        task): like a handler's own end, log its events and run its hooks (off the loop, in
        the pool: hooks may block), then deliver the outcome. ``started``: the attempt never
        reached a handler, so its start is announced here too."""
        if not self._claim(ctx):
            return
        calls: list[tuple[str, tuple[Any, ...]]] = []
        if started:
            events.emit("job.start", job=job.id, task=job.task, attempt=job.attempt, queue=job.queue)
            if self.hooks.has("start"):
                calls.append(("start", (job,)))
        calls += self._announce(job, finish, time.monotonic() - ctx.started_monotonic)
        loop = self._loop
        assert loop is not None
        if calls:
            try:
                self.pool.submit(self._hooks_then_deliver, job, ctx, finish, done, calls)
                return
            except RuntimeError:  # the pool is shut down: the worker is closing
                pass
        loop.call_soon(self._deliver, job, ctx, finish, done)  # not from inside the caller

    def _hooks_then_deliver(self, job: Job, ctx: JobContext, finish: Finish | None, done: Done | None,
                            calls: list[tuple[str, tuple[Any, ...]]]) -> None:  # fmt: skip
        try:
            for event, args in calls:
                self.hooks.fire_blocking(event, args, self._loop)
        finally:
            self._deliver_threadsafe(job, ctx, finish, done)

    def _args(self, task: TaskLike, job: Job, ctx: JobContext) -> list[Any]:
        with_ctx = self._ctx_cache.get(task.name)
        if with_ctx is None:
            with_ctx = self._ctx_cache[task.name] = wants_context(task.fn)
        return [ctx, *job.args] if with_ctx else job.args

    def _sync_body(self, task: TaskLike, job: Job, ctx: JobContext, opts: TaskOptions, done: Done) -> None:
        """Runs in a pool thread: the handler, its outcome, its hooks; then hands the outcome
        to the loop (batched: one wake-up for many finished jobs)."""
        token = _current.set(ctx)
        started = time.monotonic()
        with self._in_threads_lock:
            self.in_threads += 1
        finish: Finish | None = None
        won = False
        try:
            if events.enabled("job.start"):
                events.emit("job.start", job=job.id, task=job.task, attempt=job.attempt, queue=job.queue)
            if self.hooks.has("start"):
                self.hooks.fire_blocking("start", (job,), self._loop)
            crash_point("handler.before", job)
            try:
                if self.run_isolated is not None:
                    value = self.run_isolated(task, job, ctx, opts.timeout)
                else:
                    value = task.fn(*self._args(task, job, ctx), **job.kwargs)
            except BaseException as exc:  # noqa: BLE001 - every handler failure becomes an outcome
                if isinstance(exc, KeyboardInterrupt):
                    raise
                finish = self._failed_safe(job, ctx, opts, exc)
            else:
                try:
                    finish = self._outcome(job, ctx, opts, value)
                except Exception as exc:  # noqa: BLE001 - e.g. a bad Snooze: a failed attempt, never a lost one
                    finish = self._failed_safe(job, ctx, opts, exc)
        finally:
            with self._in_threads_lock:
                self.in_threads -= 1
                won = not ctx.finished  # a timeout or a shutdown may have ended the attempt
                ctx.finished = True
            if won:
                try:
                    for event, args in self._announce(job, finish, time.monotonic() - started):
                        self.hooks.fire_blocking(event, args, self._loop)
                finally:
                    _current.reset(token)
                    self._deliver_threadsafe(job, ctx, finish, done)
            else:
                _current.reset(token)

    async def _async_body(self, task: TaskLike, job: Job, ctx: JobContext, opts: TaskOptions, done: Done) -> None:
        _current.set(ctx)
        started = time.monotonic()
        if events.enabled("job.start"):
            events.emit("job.start", job=job.id, task=job.task, attempt=job.attempt, queue=job.queue)
        try:
            if self.hooks.has("start"):
                await self.hooks.afire("start", job)
            crash_point("handler.before", job)
            coro = task.fn(*self._args(task, job, ctx), **job.kwargs)
            if opts.timeout is not None:
                try:
                    value = await asyncio.wait_for(coro, opts.timeout)
                except TimeoutError:
                    if ctx.cancel_reason is None:
                        ctx.request_cancel(TIMEOUT)
                    raise TimeoutError(f"task {job.task!r} ran over its timeout of {opts.timeout:g}s") from None
            else:
                value = await coro
        except BaseException as exc:  # noqa: BLE001 - every handler failure becomes an outcome
            if isinstance(exc, KeyboardInterrupt):
                raise
            finish = self._failed_safe(job, ctx, opts, exc)
        else:
            try:
                finish = self._outcome(job, ctx, opts, value)
            except Exception as exc:  # noqa: BLE001 - e.g. a bad Snooze: a failed attempt, never a lost one
                finish = self._failed_safe(job, ctx, opts, exc)
        if ctx.finished:  # a shutdown's abandon ended the attempt first (both on the loop)
            return
        ctx.finished = True
        try:
            for event, args in self._announce(job, finish, time.monotonic() - started):
                await self.hooks.afire(event, *args)
        finally:  # delivered even when cancelled during a hook
            self._deliver(job, ctx, finish, done)

    def _outcome(self, job: Job, ctx: JobContext, opts: TaskOptions, value: Any) -> Finish | None:
        if ctx.cancel_reason in (TIMEOUT, STALLED):  # returned after being told to stop
            return self._failed(job, ctx, opts, TimeoutError(f"task {job.task!r} was stopped: {ctx.cancel_reason}"))
        return self._returned(job, ctx, value)

    # -- handing outcomes back to the loop ----------------------------------------------

    def _deliver_threadsafe(self, job: Job, ctx: JobContext, finish: Finish | None, done: Done | None) -> None:
        self._done.append((job, ctx, finish, done))
        if not self._ping and self._loop is not None:
            self._ping = True
            try:
                self._loop.call_soon_threadsafe(self._drain_done)
            except RuntimeError:  # the loop is closed: the worker is gone
                pass

    def _drain_done(self) -> None:
        self._ping = False
        while self._done:
            job, ctx, finish, done = self._done.popleft()
            self._deliver(job, ctx, finish, done)

    def _deliver(self, job: Job, ctx: JobContext, finish: Finish | None, done: Done | None) -> None:
        """On the loop: the first end of an attempt (a timeout, a shutdown's
        abandon, or the handler's own) claimed the attempt; only it is delivered."""
        if ctx.timer is not None:
            ctx.timer.cancel()
        entry = self.running.get(job.id)
        if entry is not None and entry[1] is ctx:  # a later attempt of the job may own it now
            del self.running[job.id]
        if finish is not None and ctx.progress_done is not None:
            finish = dataclasses.replace(finish, progress_done=ctx.progress_done, progress_total=ctx.progress_total)
        (done or ctx.done)(job, ctx, finish)

    def _returned(self, job: Job, ctx: JobContext, value: Any) -> Finish | None:
        log = ctx.log_text
        reason = ctx.cancel_reason
        if value is None and reason is None:  # the common case first
            return Finish(job.id, job.attempt, _SUCCEEDED, None, None, None, None, log())
        if reason == LOST:
            return None
        if reason == CANCEL:
            return Finish(job.id, job.attempt, Outcome.CANCELLED, log=log())
        if reason == SHUTDOWN:
            return Finish(job.id, job.attempt, Outcome.INTERRUPTED, log=log())
        if isinstance(value, Reschedule):
            return Finish(job.id, job.attempt, Outcome.RESCHEDULED, run_at=value.at, retry_in=value.seconds, log=log())
        if isinstance(value, Snooze):
            return Finish(job.id, job.attempt, Outcome.SNOOZED, retry_in=value.seconds, log=log())
        try:
            result = None if value is None else keep_floats(json.dumps(value, allow_nan=False, ensure_ascii=False))
        except (TypeError, ValueError):
            ctx.log(f"result of type {type(value).__name__} is not JSON and was not stored")
            result = None
        return Finish(job.id, job.attempt, Outcome.SUCCEEDED, result_json=result, log=log())

    def _failed(self, job: Job, ctx: JobContext, opts: TaskOptions, exc: BaseException) -> Finish | None:
        reason = ctx.cancel_reason
        log = ctx.log_text
        if reason == LOST:
            return None
        if reason == CANCEL:
            return Finish(job.id, job.attempt, Outcome.CANCELLED, log=log())
        if reason == SHUTDOWN:
            return Finish(job.id, job.attempt, Outcome.INTERRUPTED, log=log())
        if type(exc).__name__ == "HandlerError":  # raised in a child process (isolation)
            name = getattr(exc, "type_name", "")
            if name == "Abort":
                exc = Abort(str(exc))
            elif name == "NoRetry":
                exc = NoRetry(str(exc))
        if isinstance(exc, Abort):
            ctx.log(f"aborted: {exc}" if str(exc) else "aborted")
            return Finish(job.id, job.attempt, Outcome.SUCCEEDED, log=log())
        outcome = Outcome.FAILED
        if reason in (TIMEOUT, STALLED):
            outcome = Outcome.TIMED_OUT
            if reason == STALLED:
                exc = TimeoutError(f"no progress for {opts.stall_after:g}s (stall_after)")
                info = ErrorInfo("Stalled", str(exc))
            else:
                info = ErrorInfo("TimeoutError", str(exc))
        elif type(exc).__name__ == "HandlerError":
            info = ErrorInfo(getattr(exc, "type_name", "Error"), str(exc), getattr(exc, "tb", None))
        else:
            tb = "".join(traceback.format_exception(exc))
            info = ErrorInfo.from_exception(exc, tb)
        retry_in: float | None = None
        permanent = (
            isinstance(exc, NoRetry)
            or (bool(opts.no_retry) and isinstance(exc, opts.no_retry))
            or job.errors + 1 >= job.max_attempts
        )
        if not permanent:
            try:
                retry_in = opts.retry.delay(job.errors + 1, exc)
            except Exception as policy_exc:  # noqa: BLE001
                ctx.log(f"retry policy raised {policy_exc!r}; retrying with the default policy")
                retry_in = _DEFAULT.retry.delay(job.errors + 1, exc)
        return Finish(job.id, job.attempt, outcome, error=info, retry_in=retry_in, log=log())

    def _failed_safe(self, job: Job, ctx: JobContext, opts: TaskOptions, exc: BaseException) -> Finish | None:
        """``_failed``, and a plain failed outcome if describing ``exc`` itself raises (an
        exception whose ``str`` raises): an attempt always ends with an outcome."""
        try:
            return self._failed(job, ctx, opts, exc)
        except Exception as bug:  # noqa: BLE001
            if ctx.cancel_reason == LOST:
                return None
            name = type(exc).__qualname__
            info = ErrorInfo(name, f"(the {name} could not be described: {type(bug).__name__})")
            retry_in = None if job.errors + 1 >= job.max_attempts else _DEFAULT.retry.delay(job.errors + 1, exc)
            return Finish(job.id, job.attempt, Outcome.FAILED, error=info, retry_in=retry_in, log=ctx.log_text())

    def _announce(self, job: Job, finish: Finish | None, duration: float) -> list[tuple[str, tuple[Any, ...]]]:
        """Log the outcome's event; return the hooks to call, in order. Every end of an
        attempt comes here (``finish`` None: the lease was lost, logged as ``job.stale``
        where it was noticed; only ``after`` runs, with ``Outcome.LOST``)."""
        if finish is None:
            return [("after", (job, Outcome.LOST))] if self.hooks.has("after") else []
        o = finish.outcome
        if o is _SUCCEEDED and not self.hooks.has("success") and not self.hooks.has("after"):
            if events.enabled("job.success"):  # the common case, without building its fields
                events.emit("job.success", job=job.id, task=job.task, attempt=job.attempt, duration=duration)
            return []
        fields: dict[str, Any] = {"job": job.id, "task": job.task, "attempt": job.attempt, "duration": duration}
        calls: list[tuple[str, tuple[Any, ...]]] = []
        if o is Outcome.SUCCEEDED:
            events.emit("job.success", **fields)
            if self.hooks.has("success"):
                calls.append(("success", (job, None if finish.result_json is None else json.loads(finish.result_json))))
        elif o in (Outcome.FAILED, Outcome.TIMED_OUT):
            err = finish.error.summary() if finish.error else ""
            if o is Outcome.TIMED_OUT:
                events.emit("job.timeout", **fields, error=err)
                calls.append(("timeout", (job,)))
            if finish.retry_in is None:
                events.emit("job.permanent_failure", **fields, error=err)
                calls.append(("permanent_failure", (job, finish.error)))
            else:
                events.emit("job.failure", **fields, error=err, retry_in=finish.retry_in)
                calls.append(("failure", (job, finish.error)))
        elif o is Outcome.CANCELLED:
            events.emit("job.cancelled", **fields)
        elif o is Outcome.INTERRUPTED:
            events.emit("job.interrupted", **fields)
        else:
            events.emit("job.rescheduled", **fields, outcome=o.value)
        calls.append(("after", (job, o)))
        return [(e, args) for e, args in calls if self.hooks.has(e)]
