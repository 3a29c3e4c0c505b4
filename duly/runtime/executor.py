"""Run one claimed job and turn what happened into an outcome (a ``Finish``) to persist.

The executor never writes to the database: the worker's completer persists outcomes in
batches, fenced by attempt number.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import inspect
import json
import time
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import Executor as PoolExecutor
from typing import Any, Protocol

from duly.core.clock import Clock
from duly.core.errors import Abort, NoRetry, UnknownTask
from duly.core.model import ErrorInfo, Finish, Job
from duly.core.options import TaskOptions
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
        self.running: dict[int, tuple[asyncio.Future[Any], JobContext]] = {}
        self._ctx_cache: dict[str, bool] = {}

    def options(self, job: Job) -> TaskOptions:
        task = self.tasks.get(job.task)
        return task.defaults if task is not None else _DEFAULT

    def cancel(self, job_id: int, reason: str) -> None:
        """Ask a running attempt to stop: async handlers are cancelled, sync ones see
        ``ctx.cancelled``."""
        entry = self.running.get(job_id)
        if entry is None:
            return
        fut, ctx = entry
        ctx.request_cancel(reason)
        if not fut.done() and getattr(fut, "_duly_async", False):
            fut.cancel()

    async def run(self, job: Job, ctx: JobContext) -> Finish | None:
        """Run ``job``; return its outcome, or None when the lease was lost (nothing to write)."""
        task = self.tasks.get(job.task)
        opts = task.defaults if task is not None else _DEFAULT
        started = time.monotonic()
        events.emit("job.start", job=job.id, task=job.task, attempt=job.attempt, queue=job.queue)
        if self.hooks.has("start"):
            await self.hooks.afire("start", job)
        fut: asyncio.Future[Any] | None = None
        try:
            if task is None:
                raise UnknownTask(
                    f"no task named {job.task!r} is registered in this worker; "
                    "import the module that defines it (duly worker --app module:app)"
                )
            fut = self._start(task, job, ctx, opts)
            self.running[job.id] = (fut, ctx)
            done, _ = await asyncio.wait({fut}, timeout=opts.timeout)
            if not done:
                ctx.request_cancel(TIMEOUT)
                fut.cancel()
                raise TimeoutError(f"task {job.task!r} ran over its timeout of {opts.timeout:g}s")
            value = fut.result()
        except BaseException as exc:  # noqa: BLE001 - every handler failure becomes an outcome
            if isinstance(exc, KeyboardInterrupt):
                raise
            finish = self._failed(job, ctx, opts, exc)
        else:
            if ctx.cancel_reason in (TIMEOUT, STALLED):  # returned after being told to stop
                finish = self._failed(job, ctx, opts, TimeoutError(f"task {job.task!r} was stopped: {ctx.cancel_reason}"))
            else:
                finish = self._returned(job, ctx, value)
        finally:
            entry = self.running.get(job.id)
            if entry is not None and entry[1] is ctx:  # a later attempt of the job may own it now
                del self.running[job.id]
        if finish is not None and ctx.progress_done is not None:
            finish = dataclasses.replace(
                finish, progress_done=ctx.progress_done, progress_total=ctx.progress_total
            )
        if finish is not None:
            await self._after(job, finish, time.monotonic() - started)
        return finish

    def _start(self, task: TaskLike, job: Job, ctx: JobContext, opts: TaskOptions) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        if self.run_isolated is not None:
            return loop.run_in_executor(self.pool, self.run_isolated, task, job, ctx, opts.timeout)
        with_ctx = self._ctx_cache.get(task.name)
        if with_ctx is None:
            with_ctx = self._ctx_cache[task.name] = wants_context(task.fn)
        args = [ctx, *job.args] if with_ctx else job.args
        if task.is_async:
            fut = asyncio.ensure_future(_run_async(task.fn, args, job.kwargs, ctx))
            fut._duly_async = True  # type: ignore[attr-defined]
            return fut
        cv = contextvars.copy_context()
        return loop.run_in_executor(self.pool, cv.run, _run_sync, task.fn, args, job.kwargs, ctx)

    def _returned(self, job: Job, ctx: JobContext, value: Any) -> Finish | None:
        log = ctx.log_text
        reason = ctx.cancel_reason
        if reason == LOST:
            return None
        if reason == CANCEL:
            return Finish(job.id, job.attempt, Outcome.CANCELLED, log=log())
        if reason == SHUTDOWN:
            return Finish(job.id, job.attempt, Outcome.INTERRUPTED, log=log())
        if isinstance(value, Reschedule):
            return Finish(job.id, job.attempt, Outcome.RESCHEDULED, run_at=value.at, retry_in=value.seconds, log=log())
        if isinstance(value, Snooze):
            return Finish(job.id, job.attempt, Outcome.SNOOZED, retry_in=float(value.seconds), log=log())
        try:
            result = None if value is None else json.dumps(value, allow_nan=False, ensure_ascii=False)
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

    async def _after(self, job: Job, finish: Finish, duration: float) -> None:
        o = finish.outcome
        fields: dict[str, Any] = {"job": job.id, "task": job.task, "attempt": job.attempt, "duration": duration}
        if o is Outcome.SUCCEEDED:
            events.emit("job.success", **fields)
            if self.hooks.has("success"):
                await self.hooks.afire("success", job, None if finish.result_json is None else json.loads(finish.result_json))
        elif o in (Outcome.FAILED, Outcome.TIMED_OUT):
            err = finish.error.summary() if finish.error else ""
            if o is Outcome.TIMED_OUT:
                events.emit("job.timeout", **fields, error=err)
                await self.hooks.afire("timeout", job)
            if finish.retry_in is None:
                events.emit("job.permanent_failure", **fields, error=err)
                await self.hooks.afire("permanent_failure", job, finish.error)
            else:
                events.emit("job.failure", **fields, error=err, retry_in=finish.retry_in)
                await self.hooks.afire("failure", job, finish.error)
        elif o is Outcome.CANCELLED:
            events.emit("job.cancelled", **fields)
        elif o is Outcome.INTERRUPTED:
            events.emit("job.interrupted", **fields)
        else:
            events.emit("job.rescheduled", **fields, outcome=o.value)
        if self.hooks.has("after"):
            await self.hooks.afire("after", job, o)


async def _run_async(fn: Callable[..., Any], args: list[Any], kwargs: dict[str, Any], ctx: JobContext) -> Any:
    _current.set(ctx)
    return await fn(*args, **kwargs)


def _run_sync(fn: Callable[..., Any], args: list[Any], kwargs: dict[str, Any], ctx: JobContext) -> Any:
    _current.set(ctx)
    return fn(*args, **kwargs)
