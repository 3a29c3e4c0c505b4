"""Lifecycle hooks. A hook that raises is logged and never changes the job's outcome.

Events: ``before_enqueue(params) -> bool`` (False skips the job), ``start(job)``,
``success(job, result)``, ``failure(job, error)`` (will retry), ``permanent_failure(job, error)``,
``timeout(job)``, ``after(job, outcome)`` (always, last).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from duly.runtime import events

EVENTS = ("before_enqueue", "start", "success", "failure", "permanent_failure", "timeout", "after")


class Hooks:
    def __init__(self) -> None:
        self._hooks: dict[str, list[Callable[..., Any]]] = {e: [] for e in EVENTS}

    def add(self, event: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        if event not in self._hooks:
            raise ValueError(f"unknown hook {event!r}; expected one of {', '.join(EVENTS)}")
        if event == "before_enqueue" and inspect.iscoroutinefunction(fn):
            raise ValueError("before_enqueue hooks must be plain functions (enqueue is synchronous)")
        self._hooks[event].append(fn)
        return fn

    def has(self, event: str) -> bool:
        return bool(self._hooks[event])

    def fire(self, event: str, *args: Any) -> None:
        """Run sync hooks of ``event`` (async ones are skipped here; see ``afire``)."""
        for fn in self._hooks[event]:
            try:
                result = fn(*args)
                if inspect.isawaitable(result):
                    close = getattr(result, "close", None)
                    if close:
                        close()
                    raise TypeError("async hook called from a sync handler's thread")
            except Exception as exc:  # noqa: BLE001 - a hook never changes an outcome
                events.emit("hook.error", hook=event, error=f"{type(exc).__name__}: {exc}")

    def fire_blocking(self, event: str, args: tuple[Any, ...], loop: Any) -> None:
        """From a handler's thread: sync hooks run here, async ones on the worker's loop
        (this thread waits for them)."""
        for fn in self._hooks[event]:
            try:
                result = fn(*args)
                if inspect.isawaitable(result):
                    if loop is None:
                        raise RuntimeError("no event loop to run an async hook on")
                    asyncio.run_coroutine_threadsafe(result, loop).result(timeout=60)  # type: ignore[arg-type]
            except Exception as exc:  # noqa: BLE001
                events.emit("hook.error", hook=event, error=f"{type(exc).__name__}: {exc}")

    async def afire(self, event: str, *args: Any) -> None:
        for fn in self._hooks[event]:
            try:
                result = fn(*args)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:  # noqa: BLE001
                events.emit("hook.error", hook=event, error=f"{type(exc).__name__}: {exc}")

    def allow_enqueue(self, params: Any) -> bool:
        """Ask every before_enqueue hook; any False skips the job. A raising hook is logged
        and counts as allowing the job (a hook never loses a job by accident)."""
        for fn in self._hooks["before_enqueue"]:
            try:
                if fn(params) is False:
                    return False
            except Exception as exc:  # noqa: BLE001
                events.emit("hook.error", hook="before_enqueue", error=f"{type(exc).__name__}: {exc}")
        return True
