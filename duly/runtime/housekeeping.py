"""The worker's housekeeping, mixed into ``Worker``: its row in the worker registry, the
paused queues it must not claim from, and retention pruning of finished jobs.

Each step is an ``async`` method the worker's loops call (``touch_once`` from the
heartbeater; ``refresh_paused`` and ``prune_once`` from the maintenance loop, every
``rescue_interval``), and that tests can call directly. None of them ever stops the worker:
database trouble is reported as a ``worker.db_error`` event and tried again later.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from duly.core import defaults
from duly.core.admin import WorkerRegistration
from duly.runtime import events

if TYPE_CHECKING:
    from duly.runtime.worker import AppLike, WorkerConfig
    from duly.store.base import Store

T = TypeVar("T")


class Housekeeping:
    """Mixed into ``Worker`` (which provides the attributes declared here)."""

    app: AppLike
    config: WorkerConfig
    store: Store
    worker_id: str
    paused: list[str]
    _touched: float
    _pruned_at: float | None

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:  # provided by Worker
        raise NotImplementedError

    async def register(self) -> None:
        """Write this worker's row in the registry (``duly workers``, the dashboard)."""
        reg = WorkerRegistration(
            self.worker_id, socket.gethostname(), os.getpid(), self.config.queues, self.config.concurrency
        )
        self._touched = time.monotonic()
        try:
            await self._call(self.store.register_worker, reg)
        except Exception as exc:  # noqa: BLE001 - the registry is for display only
            events.emit("worker.db_error", where="register", error=repr(exc))

    async def touch_once(self) -> None:
        """Mark this worker seen, at most once per ``heartbeat_interval``."""
        if time.monotonic() - self._touched < self.config.heartbeat_interval:
            return
        self._touched = time.monotonic()
        try:
            if not await self._call(self.store.touch_worker, self.worker_id):
                await self.register()  # the row was forgotten (a long outage): write it again
        except Exception as exc:  # noqa: BLE001
            events.emit("worker.db_error", where="touch", error=repr(exc))

    async def deregister(self) -> None:
        try:
            await self._call(self.store.remove_worker, self.worker_id)
        except Exception as exc:  # noqa: BLE001
            events.emit("worker.db_error", where="deregister", error=repr(exc))

    async def refresh_paused(self) -> None:
        try:
            paused = await self._call(self.store.paused_queues)
        except Exception as exc:  # noqa: BLE001 - keep the last known list
            events.emit("worker.db_error", where="paused_queues", error=repr(exc))
            return
        self.paused = [p.name for p in paused]

    async def prune_once(self, force: bool = False) -> int:
        """Delete finished jobs older than ``prune_after`` in short batches (at most a few
        seconds per round, once per ``prune_interval``); forget long-dead workers."""
        after = self.config.prune_after
        started = time.monotonic()
        if after is None or (
            not force and self._pruned_at is not None and started - self._pruned_at < self.config.prune_interval
        ):
            return 0
        self._pruned_at = started
        now = self.app.clock.now()
        before = now - timedelta(seconds=after)
        total = 0
        try:
            while time.monotonic() - started < 2.0:
                n = await self._call(self.store.prune, before, defaults.PRUNE_BATCH)
                total += n
                if n < defaults.PRUNE_BATCH:
                    break
            forget = now - timedelta(seconds=defaults.WORKER_FORGET_AFTER_SECONDS)
            await self._call(self.store.forget_workers, forget)
        except Exception as exc:  # noqa: BLE001
            events.emit("worker.db_error", where="prune", error=repr(exc))
        if total:
            events.emit("worker.prune", worker=self.worker_id, deleted=total, before=before.isoformat())
        return total
