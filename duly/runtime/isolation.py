"""``--isolation process``: each job runs in a child process, killed for real on timeout,
cancellation or shutdown, so a hung, leaking or crashing handler cannot hurt the worker.

Children come from a ``forkserver`` that has already imported the application, so starting
one costs a fork, not an import. The child gets a ``ctx`` whose log lines are sent back with
the outcome; progress reports are not carried across (use thread isolation for those).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import multiprocessing
import sys
import traceback
from multiprocessing.connection import Connection
from typing import Any

from duly.core.model import Job
from duly.runtime.context import JobContext, _current


class ChildDied(RuntimeError):
    """The job's child process ended without reporting (crash, ``os._exit``, killed)."""


class HandlerError(Exception):
    """An exception raised by a handler in its child process, re-raised in the worker."""

    def __init__(self, type_name: str, message: str, tb: str) -> None:
        super().__init__(message)
        self.type_name = type_name
        self.tb = tb


def load_app(path: str) -> Any:
    """``module:attribute`` → the object (an App)."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ValueError(f"invalid app path {path!r}; write module:attribute, e.g. myproj.jobs:app")
    if "" not in sys.path:
        sys.path.insert(0, "")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"module {module_name!r} has no attribute {attr!r}") from None


def _child(app_path: str, job: Job, conn: Connection) -> None:
    from duly.runtime.executor import wants_context

    try:
        app = load_app(app_path)
        task = app.tasks[job.task]
        ctx = JobContext(job, f"child:{multiprocessing.current_process().pid}", app.clock)
        _current.set(ctx)
        args = [ctx, *job.args] if wants_context(task.fn) else job.args
        value = task.fn(*args, **job.kwargs)
        if inspect.isawaitable(value):
            value = asyncio.run(value)  # type: ignore[arg-type]
        conn.send(("ok", value, ctx.log_text()))
    except BaseException as exc:  # noqa: BLE001
        try:
            conn.send(("error", type(exc).__qualname__, str(exc), "".join(traceback.format_exception(exc))))
        except Exception:  # noqa: BLE001 - e.g. the exception itself does not pickle
            conn.send(("error", type(exc).__qualname__, repr(exc), ""))
    finally:
        conn.close()


class ProcessRunner:
    """Runs one job per child process; used by the executor from a worker thread."""

    def __init__(self, app_path: str) -> None:
        self.app_path = app_path
        self.mp = multiprocessing.get_context("forkserver")
        module = app_path.partition(":")[0]
        self.mp.set_forkserver_preload([module])

    def __call__(self, task: Any, job: Job, ctx: JobContext, timeout: float | None) -> Any:
        parent, child = self.mp.Pipe(duplex=False)
        proc = self.mp.Process(target=_child, args=(self.app_path, job, child), daemon=True)
        proc.start()
        child.close()
        try:
            waited = 0.0
            while not parent.poll(0.05):
                waited += 0.05
                if ctx.cancelled or (timeout is not None and waited >= timeout):
                    proc.kill()
                    proc.join()
                    if not ctx.cancelled:
                        ctx.request_cancel("timeout")
                    raise TimeoutError(f"child process of job {job.id} killed ({ctx.cancel_reason})")
                if not proc.is_alive() and not parent.poll(0):
                    proc.join()
                    raise ChildDied(f"the job's child process exited with code {proc.exitcode} without a result")
            try:
                message = parent.recv()
            except EOFError:
                proc.join()
                raise ChildDied(f"the job's child process exited with code {proc.exitcode} without a result") from None
        finally:
            parent.close()
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
        if message[0] == "ok":
            _, value, log = message
            if log:
                for line in log.splitlines():
                    ctx._append(line)
            return value
        _, type_name, text, tb = message
        raise HandlerError(type_name, text, tb)
