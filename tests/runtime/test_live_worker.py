"""A real worker loop in a thread, on both backends (seed 004 and the worker issue)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import duly
from duly.core.states import JobState
from duly.runtime import events
from tests.conftest import Backend
from tests.helpers import wait_until


@contextmanager
def running(app: duly.App, **config: Any) -> Iterator[duly.Worker]:
    config.setdefault("poll_interval", 0.2)
    config.setdefault("heartbeat_interval", 0.2)
    worker = app.worker(**config)
    thread = threading.Thread(target=lambda: asyncio.run(worker.run_async()), daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(timeout=15)
        assert not thread.is_alive(), "worker did not stop"


def state(app: duly.App, job_id: int) -> JobState:
    return app.get_job(job_id).state


def test_new_job_is_picked_up_at_once_seed_004_1(backend: Backend) -> None:
    app = backend.app()

    @app.task
    def ping() -> str:
        return "pong"

    with running(app, poll_interval=30):
        time.sleep(0)  # let the worker reach its idle wait
        start = time.monotonic()
        job = ping.enqueue()
        wait_until(lambda: state(app, job.id) is JobState.SUCCEEDED, timeout=10, what="pick-up")
        assert time.monotonic() - start < 5  # far below the 30 s poll interval: a wake-up


def test_future_job_is_found_by_the_poller_seed_004_2(backend: Backend) -> None:
    app = backend.app()

    @app.task
    def later() -> None: ...

    with running(app, poll_interval=0.2):
        job = later.options(run_in=0.5).enqueue()
        wait_until(lambda: state(app, job.id) is JobState.SUCCEEDED, timeout=10, what="scheduled job")


def test_concurrency_limits_hold_seed_004_11(backend: Backend) -> None:
    app = backend.app()
    lock = threading.Lock()
    now_running, peak, per_task_peak = [0], [0], [0]
    slow_running = [0]

    @app.task(concurrency=1)
    def single(ctx: duly.JobContext) -> None:
        with lock:
            slow_running[0] += 1
            per_task_peak[0] = max(per_task_peak[0], slow_running[0])
        ctx.wait_cancelled(0.05)
        with lock:
            slow_running[0] -= 1

    @app.task
    def work(ctx: duly.JobContext) -> None:
        with lock:
            now_running[0] += 1
            peak[0] = max(peak[0], now_running[0])
        ctx.wait_cancelled(0.05)
        with lock:
            now_running[0] -= 1

    ids = [work.enqueue().id for _ in range(10)] + [single.enqueue().id for _ in range(5)]
    with running(app, concurrency=2):
        wait_until(lambda: all(state(app, i) is JobState.SUCCEEDED for i in ids), timeout=20, what="all done")
    assert peak[0] <= 2 and per_task_peak[0] == 1


def test_dynamic_concurrency_zero_takes_nothing_seed_004_12(backend: Backend) -> None:
    app = backend.app()
    allowed = [0]

    @app.task
    def t() -> None: ...

    job = t.enqueue()
    with running(app, dynamic_concurrency=lambda: allowed[0]) as worker:
        wait_until(lambda: worker.processed == 0 and worker._loop is not None, timeout=5)
        assert state(app, job.id) is JobState.QUEUED
        allowed[0] = 3
        worker.wake()
        wait_until(lambda: state(app, job.id) is JobState.SUCCEEDED, timeout=10)


def test_two_workers_run_each_job_once_seed_004_13(backend: Backend) -> None:
    app = backend.app()
    runs: list[int] = []
    lock = threading.Lock()

    @app.task
    def once(n: int) -> None:
        with lock:
            runs.append(n)

    ids = app.enqueue_many(once.spec(i) for i in range(200))
    with running(app, worker_id="a"), running(app, worker_id="b"):
        wait_until(lambda: len(runs) >= 200 and all(state(app, i) is JobState.SUCCEEDED for i in ids[-5:]), timeout=30)
    assert sorted(runs) == list(range(200))


def test_cancel_reaches_async_and_sync_handlers(backend: Backend) -> None:
    app = backend.app()
    started = threading.Event()

    @app.task
    async def waits_async() -> None:
        started.set()
        await asyncio.sleep(60)

    @app.task
    def waits_sync(ctx: duly.JobContext) -> str:
        started.set()
        ctx.wait_cancelled(60)
        return "saw the cancel"

    with running(app, heartbeat_interval=0.2):
        for task in (waits_async, waits_sync):
            started.clear()
            job = task.enqueue()
            assert started.wait(10)
            app.cancel(job.id)
            wait_until(lambda j=job: state(app, j.id) is JobState.CANCELLED, timeout=10, what="cancel delivered")
            assert app.attempts(job.id)[-1].outcome.value == "cancelled"


def test_stall_monitor_interrupts_a_job_without_progress_seed_003_14(backend: Backend) -> None:
    app = backend.app()

    @app.task(stall_after=0.3, max_attempts=1)
    def stuck(ctx: duly.JobContext) -> None:
        ctx.progress(1, 10)
        ctx.wait_cancelled(30)

    job = stuck.enqueue()
    with running(app, heartbeat_interval=0.1):
        wait_until(lambda: state(app, job.id) is JobState.FAILED, timeout=15, what="stall interrupt")
    (a,) = app.attempts(job.id)
    assert a.outcome.value == "timed_out" and a.error_type == "Stalled"


def test_graceful_stop_hands_back_jobs_not_counted_seed_004_9(backend: Backend) -> None:
    app = backend.app()
    started = threading.Event()

    @app.task
    def long(ctx: duly.JobContext) -> None:
        started.set()
        ctx.wait_cancelled(60)

    job = long.enqueue()
    with running(app, grace=0.2):
        assert started.wait(10)
    final = app.get_job(job.id)
    assert final.state is JobState.QUEUED and final.errors == 0
    assert [a.outcome.value for a in app.attempts(job.id)] == ["interrupted"]


def test_json_log_lines(backend: Backend) -> None:
    app = backend.app()

    @app.task
    def ok() -> None: ...

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(events.JsonFormatter())
    log = logging.getLogger("duly")
    log.addHandler(handler)
    old = log.level
    log.setLevel(logging.DEBUG)
    try:
        job = ok.enqueue()
        with running(app):
            wait_until(lambda: state(app, job.id) is JobState.SUCCEEDED, timeout=10)
    finally:
        log.removeHandler(handler)
        log.setLevel(old)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    kinds = {line["event"] for line in lines}
    assert {"worker.start", "job.start", "job.success", "worker.poll", "worker.stop"} <= kinds
    success = next(line for line in lines if line["event"] == "job.success")
    assert success["job"] == job.id and success["duration"] >= 0


def test_prefetched_jobs_wait_for_a_slot_and_all_run(backend: Backend) -> None:
    app = backend.app()
    lock = threading.Lock()
    now_running, peak = [0], [0]

    @app.task
    def work(ctx: duly.JobContext) -> None:
        with lock:
            now_running[0] += 1
            peak[0] = max(peak[0], now_running[0])
        ctx.wait_cancelled(0.01)
        with lock:
            now_running[0] -= 1

    ids = app.enqueue_many(work.spec() for _ in range(60))
    with running(app, concurrency=3, prefetch=10):
        wait_until(lambda: all(state(app, i) is JobState.SUCCEEDED for i in ids), timeout=30, what="all done")
    assert peak[0] <= 3


def test_many_prefetched_async_jobs_that_never_wait(backend: Backend) -> None:
    """Async handlers that finish without awaiting run eagerly; a long line of prefetched ones
    must not nest (each start from inside the previous one's end) nor lose any."""
    app = backend.app()
    done: list[int] = []

    @app.task
    async def quick(n: int) -> int:
        done.append(n)
        return n

    ids = app.enqueue_many(quick.spec(i) for i in range(1500))
    with running(app, concurrency=2, prefetch=1200):
        wait_until(lambda: len(done) >= 1500 and app.get_job(ids[-1]).state is JobState.SUCCEEDED, timeout=60)
    assert sorted(done) == list(range(1500))
    assert {app.get_job(i).state for i in ids[::100]} == {JobState.SUCCEEDED}
