"""The worker's housekeeping: registry row, paused queues, retention pruning."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import duly
from duly.core.states import JobState
from duly.testing import drain
from tests.conftest import Backend
from tests.helpers import wait_until


def test_paused_queue_waits_until_resumed(app: duly.App) -> None:
    ran: list[str] = []

    @app.task(name="note")
    def note(q: str) -> None:
        ran.append(q)

    note.options(queue="a").enqueue("a")
    note.options(queue="b").enqueue("b")
    app.store.pause_queue("a")
    drain(app)
    assert ran == ["b"]
    app.store.resume_queue("a")
    drain(app)
    assert ran == ["b", "a"]


def test_worker_prunes_old_finished_jobs(app: duly.App, clock: duly.VirtualClock) -> None:
    @app.task(name="noop")
    def noop() -> None:
        return None

    old = noop.enqueue()
    drain(app)
    clock.advance(timedelta(days=8))
    fresh = noop.enqueue()
    drain(app)
    worker = app.worker(prune_after=7 * 86400)

    async def go() -> int:
        await worker._setup()
        return await worker.prune_once()

    try:
        assert asyncio.run(go()) == 1
    finally:
        worker.close()
    assert app.store.get_job(old.id) is None
    assert app.get_job(fresh.id).state is JobState.SUCCEEDED


def test_prune_after_none_keeps_everything(app: duly.App, clock: duly.VirtualClock) -> None:
    app.enqueue("t")
    worker = app.worker(prune_after=None)
    try:
        assert asyncio.run(worker.prune_once(force=True)) == 0
    finally:
        worker.close()


def test_live_worker_registers_and_leaves_the_registry(backend: Backend) -> None:
    app = backend.app()
    worker = app.worker(concurrency=2, poll_interval=0.05, heartbeat_interval=0.05, worker_id="reg-1")
    thread = threading.Thread(target=lambda: asyncio.run(worker.run_async()), daemon=True)
    thread.start()
    try:
        seen = wait_until(lambda: [w for w in app.store.list_workers(60) if w.id == "reg-1"], what="registration")
        assert seen[0].alive and seen[0].concurrency == 2
        first = seen[0].last_seen_at
        wait_until(lambda: app.store.list_workers(60)[0].last_seen_at > first, what="a touch")
    finally:
        worker.stop()
        thread.join(10)
    assert app.store.list_workers(60) == []
