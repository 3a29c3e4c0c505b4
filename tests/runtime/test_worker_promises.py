"""A real worker loop in a thread, on both backends: what it promises when its database
misbehaves (leases, backoff), when it is busy (no polling, claims sized to free slots), while a
job runs (progress) and at shutdown (every end announced).

The database is always real. Faults are made by wrapping one method of the worker's own store
instance (``app.store.heartbeat = ...``): the call raises, or hangs until the test lets it go.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import duly
from duly.core.model import ClaimParams
from duly.core.states import JobState, Outcome
from duly.runtime.worker import GC_THRESHOLD, OVERLAP_SWITCH_INTERVAL
from tests.conftest import Backend
from tests.helpers import EventLog, capture_events, wait_until
from tests.runtime.test_live_worker import running, state


@contextmanager
def wrapped(obj: Any, name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]) -> Iterator[None]:
    """Replace ``obj.name`` (a method of the real store) by ``make(original)`` for the block."""
    original = getattr(obj, name)
    setattr(obj, name, make(original))
    try:
        yield
    finally:
        delattr(obj, name)  # the class's method again


class DatabaseDown(Exception):
    pass


# ---- leases without the database ----------------------------------------------------------


@pytest.mark.parametrize("fault", ["raises", "hangs"])
def test_handlers_stop_before_their_lease_runs_out_without_the_database(backend: Backend, fault: str) -> None:
    """Heartbeats fail (an error, or a call that never returns): the worker stops the handler
    before the lease it can no longer renew runs out (its outcome is dropped: the job is
    rescued once the lease has expired, the attempt recorded as lost), then runs it again."""
    app = backend.app()
    lease = 3.0
    stopped: list[tuple[float, str | None]] = []
    afters: list[Outcome] = []

    @app.task(lease=lease, max_attempts=3)
    def long(ctx: duly.JobContext) -> str:
        if ctx.attempt == 1:
            ctx.wait_cancelled(30)
            stopped.append((time.time(), ctx.cancel_reason))
        return "done"

    app.on("after")(lambda job, outcome: afters.append(outcome))
    healthy = threading.Event()
    calls: list[float] = []

    def broken(original: Callable[..., Any]) -> Callable[..., Any]:
        def heartbeat(*args: Any) -> Any:
            calls.append(time.monotonic())
            if not healthy.is_set():
                if fault == "hangs":
                    healthy.wait(30)  # let go at the end of the test: then it fails
                raise DatabaseDown("connection refused")
            return original(*args)

        return heartbeat

    with capture_events() as log, wrapped(app.store, "heartbeat", broken):
        job = long.enqueue()
        with running(app, heartbeat_interval=0.5, rescue_interval=0.2, poll_interval=0.1) as worker:
            wait_until(lambda: stopped, timeout=15, what="the handler to be stopped")
            seen_at, reason = stopped[0]
            expires = app.get_job(job.id).lease_expires_at  # never renewed: as the claim set it
            assert expires is not None
            assert seen_at < expires.timestamp(), f"stopped {seen_at - expires.timestamp():.3f}s after expiry"
            assert reason == "lease lost"
            assert [e["job"] for e in log.of("job.stale")] == [job.id]
            if fault == "hangs":
                assert len(calls) == 1  # one call hangs; none queued behind it
            healthy.set()
            wait_until(lambda: state(app, job.id) is JobState.SUCCEEDED, timeout=20, what="a rescue and a rerun")
            assert worker.processed == 2
    assert [a.outcome for a in app.attempts(job.id)] == [Outcome.LOST, Outcome.SUCCEEDED]
    assert afters == [Outcome.LOST, Outcome.SUCCEEDED]
    assert log.of("job.rescue", job=job.id)
    if fault == "raises":
        retries = [e["retry_in"] for e in log.of("worker.db_error", where="heartbeat")]
        assert retries and retries[0] == 0.1 and max(retries) <= 0.5  # capped by the interval


def test_reconnect_backoff_doubles_up_to_its_cap(backend: Backend) -> None:
    """Claims fail: retried after 0.1 s, 0.2 s, 0.4 s ... never more than the cap; once the
    database answers again, the worker runs jobs without being restarted."""
    app = backend.app()

    @app.task
    def ping() -> str:
        return "pong"

    healthy = threading.Event()

    def broken(original: Callable[..., Any]) -> Callable[..., Any]:
        def claim(params: ClaimParams) -> Any:
            if not healthy.is_set():
                raise DatabaseDown("server closed the connection")
            return original(params)

        return claim

    with capture_events() as log, wrapped(app.store, "claim", broken):
        with running(app, reconnect_backoff_max=0.4, poll_interval=30):
            wait_until(lambda: len(log.of("worker.db_error", where="claim")) >= 6, timeout=15, what="6 failed claims")
            healthy.set()
            job = ping.enqueue()
            wait_until(lambda: state(app, job.id) is JobState.SUCCEEDED, timeout=10, what="a job after the outage")
    retries = [e["retry_in"] for e in log.of("worker.db_error", where="claim")]
    assert retries[:5] == [0.1, 0.2, 0.4, 0.4, 0.4]
    assert max(retries) == 0.4


def test_backoff_cap_is_the_configured_one(backend: Backend) -> None:
    app = backend.app()
    worker = app.worker(reconnect_backoff_max=2.0)
    try:
        steps, b = [], None
        for _ in range(8):
            b = worker._backoff(b)
            steps.append(b)
        assert steps == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0]
        assert app.worker().config.reconnect_backoff_max == 5.0
    finally:
        worker.close()


# ---- a busy worker --------------------------------------------------------------------------


def test_a_busy_worker_does_not_poll_and_claims_only_free_slots_seed_004_11(backend: Backend) -> None:
    app = backend.app()
    gates = [threading.Event() for _ in range(3)]
    started: list[int] = []

    @app.task
    def block(n: int) -> int:
        started.append(n)
        gates[n].wait(30)
        return n

    limits: list[int] = []
    beats: list[float] = []

    def counting_claim(original: Callable[..., Any]) -> Callable[..., Any]:
        def claim(params: ClaimParams) -> Any:
            limits.append(params.limit)
            return original(params)

        return claim

    def counting_heartbeat(original: Callable[..., Any]) -> Callable[..., Any]:
        def heartbeat(*args: Any) -> Any:
            beats.append(time.monotonic())
            return original(*args)

        return heartbeat

    ids = [block.enqueue(n).id for n in range(3)]
    with wrapped(app.store, "claim", counting_claim), wrapped(app.store, "heartbeat", counting_heartbeat):
        with running(app, concurrency=2, poll_interval=0.05, heartbeat_interval=0.05):
            wait_until(lambda: len(started) == 2, timeout=10, what="both slots busy")
            assert limits == [2]  # one claim for both free slots
            # while busy: enqueues (each a wake-up) and many poll intervals pass without a claim
            extra = [block.enqueue(2).id for _ in range(3)]
            n = len(beats)
            wait_until(lambda: len(beats) >= n + 8, timeout=10, what="8 heartbeats (>= 8 poll intervals)")
            assert limits == [2], limits
            gates[started[0]].set()  # one slot frees
            wait_until(lambda: len(limits) >= 2, timeout=10, what="a claim after a slot freed")
            assert limits[1] == 1  # sized to the one free slot
            for gate in gates:
                gate.set()
            wait_until(
                lambda: all(state(app, i) is JobState.SUCCEEDED for i in ids + extra), timeout=20, what="all done"
            )


# ---- outcomes written with the next claim (SQLite) ---------------------------------------------


def test_outcomes_ride_with_the_next_claim_and_survive_its_failure(backend: Backend) -> None:
    """On SQLite (one writer) a worker writes its pending outcomes in its next claim's
    transaction. When that transaction fails, neither the outcomes nor the jobs are lost:
    the outcomes go back to the completer, the jobs stay queued for the next claim."""
    if not backend.app().store.combines_finish_with_claim:
        pytest.skip("PostgreSQL flushes and claims on two connections at once")
    app = backend.app()

    @app.task
    async def quick(n: int) -> int:
        return n

    carried: list[int] = []
    failures = [DatabaseDown("the claim's transaction failed")]

    def counting(original: Callable[..., Any]) -> Callable[..., Any]:
        def finish_and_claim(items: Any, params: ClaimParams) -> Any:
            if items and failures:
                raise failures.pop()
            carried.append(len(items))
            return original(items, params)

        return finish_and_claim

    ids = quick.enqueue_many([(n,) for n in range(300)])
    with wrapped(app.store, "finish_and_claim", counting):
        with running(app, concurrency=20, poll_interval=0.05):
            wait_until(lambda: all(state(app, i) is JobState.SUCCEEDED for i in ids), timeout=30, what="all done")
    assert not failures  # the failing transaction happened
    assert sum(carried) > 0, carried  # and outcomes did travel with claims
    for i in ids[:: 30]:
        assert [a.outcome for a in app.attempts(i)] == [Outcome.SUCCEEDED]


def _recording(calls: list[tuple[str, int, int]], name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Wrap a claiming store method: record (method, outcomes carried, claim limit)."""

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        if name == "finish":
            return lambda items: (calls.append((name, len(items), 0)), original(items))[1]
        if name == "claim":
            return lambda params: (calls.append((name, 0, params.limit)), original(params))[1]
        return lambda items, params: (calls.append((name, len(items), params.limit)), original(items, params))[1]

    return make


def test_a_sqlite_drain_writes_each_batch_of_outcomes_with_a_claim_and_claims_half_the_slots(
    backend: Backend,
) -> None:
    """On SQLite a busy worker's outcomes travel in its claims' transactions: the completer
    does not take them into a transaction of its own while a claim that would carry them is
    in flight. And with 64 slots or more each claim takes at most half of them, so one claim
    is in the database while the jobs of the previous one run. On PostgreSQL (outcomes on
    their own connection) a claim fills every free slot."""
    app = backend.app()

    @app.task
    async def quick(n: int) -> int:
        return n

    calls: list[tuple[str, int, int]] = []
    ids = quick.enqueue_many([(n,) for n in range(1500)])
    with (
        wrapped(app.store, "claim", _recording(calls, "claim")),
        wrapped(app.store, "finish", _recording(calls, "finish")),
        wrapped(app.store, "finish_and_claim", _recording(calls, "finish_and_claim")),
    ):
        worker = app.worker(concurrency=100, burst=True, scheduler=False)
        asyncio.run(worker.run_async())
    assert worker.processed == len(ids)
    [stats] = app.stats(exact=True)
    assert stats[JobState.SUCCEEDED] == len(ids), stats
    limits = [limit for name, _, limit in calls if name != "finish"]
    if not app.store.combines_finish_with_claim:
        assert limits[0] == 100, calls  # every free slot at once
        return
    assert max(limits) == 50, calls  # half the slots
    carried = sum(n for name, n, _ in calls if name == "finish_and_claim")
    flushed = [n for name, n, _ in calls if name == "finish"]
    # Every outcome but those of the last claims (written when the queue ran dry) went with
    # a claim; a completer flushing behind each claim would write about half of them.
    assert carried >= len(ids) - 200, calls
    assert sum(flushed) <= 200, calls


def test_an_overlapped_claim_defers_a_full_batch_and_starts_a_partial_one_at_once(backend: Backend) -> None:
    """The fetcher's overlapped claim (SQLite's): a claim that took all it asked for leaves
    its jobs to the loop's next turn, after the next claim is sent; one that took fewer (the
    queue is drained: a job just enqueued, say) starts them before it returns."""
    app = backend.app()

    @app.task
    async def quick() -> None:
        pass

    worker = app.worker(concurrency=100, scheduler=False)

    async def claims() -> tuple[int, int, int, int]:
        await worker._setup()
        full = await worker.claim_once(overlap=True)  # 50 of 60 queued: half the slots
        deferred, started_full = len(worker._unstarted), worker.inflight + worker.processed
        worker._start_unstarted()
        partial = await worker.claim_once(overlap=True)  # the 10 left
        return len(full), deferred, started_full, len(partial) - len(worker._unstarted)

    quick.enqueue_many([()] * 60)
    try:
        full, deferred, started_full, started_partial = asyncio.run(claims())
    finally:
        worker.close()
    assert (full, deferred, started_full) == (50, 50, 0)
    assert started_partial == 10


def _claims_by_thread(claims: list[tuple[str, int]]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def claim(params: ClaimParams) -> Any:
            jobs = original(params)
            claims.append((threading.current_thread().name, len(jobs)))
            return jobs

        return claim

    return make


def test_an_idle_worker_claims_on_the_stores_listening_thread(backend: Backend) -> None:
    """A job enqueued at an idle worker is claimed by the thread that hears the wake-up
    (PostgreSQL's listener, SQLite's doorbell), not handed to the loop and then to the
    database thread first; a busy worker's claims stay on the database thread."""
    app = backend.app()

    @app.task
    async def quick(n: int) -> int:
        return n

    claims: list[tuple[str, int]] = []
    with wrapped(app.store, "claim", _claims_by_thread(claims)), running(app, poll_interval=30) as worker:
        wait_until(lambda: worker._armed is not None, timeout=10, what="the worker to idle")
        before = len(claims)
        for n in range(3):
            job = quick.enqueue(n)
            wait_until(lambda: state(app, job.id) is JobState.SUCCEEDED, timeout=10, what="the job")
            wait_until(lambda: worker._armed is not None, timeout=10, what="the worker to idle again")
    listening = {"postgres": "duly-pg-listen", "sqlite": "duly-doorbell"}[backend.name]
    # each job one claim, on the listening thread; none that finds nothing after it
    assert claims[before:] == [(listening, 1)] * 3, claims


def test_a_stop_during_a_listening_threads_claim_runs_its_jobs_to_their_end(backend: Backend) -> None:
    """A stop that lands while the listening thread's claim is in the database waits for
    its jobs: they start, run in the grace and succeed; none is left claimed and unstarted."""
    app = backend.app()

    @app.task
    async def quick(n: int) -> int:
        return n

    worker = app.worker(concurrency=10, scheduler=False, poll_interval=30)

    def stopping(original: Callable[..., Any]) -> Callable[..., Any]:
        def claim(params: ClaimParams) -> Any:
            if threading.current_thread().name.startswith("duly-db"):
                return original(params)
            worker.stop()  # lands on the loop before this claim's jobs do
            return original(params)

        return claim

    thread = threading.Thread(target=lambda: asyncio.run(worker.run_async()), daemon=True)
    with wrapped(app.store, "claim", stopping):
        thread.start()
        wait_until(lambda: worker._armed is not None, timeout=10, what="the worker to idle")
        ids = quick.enqueue_many([(n,) for n in range(5)])
        thread.join(timeout=10)
        stopped_by_the_claim = not thread.is_alive()
        worker.stop()
        thread.join(timeout=10)
    assert stopped_by_the_claim, "no claim on the listening thread stopped the worker"
    for i in ids:
        assert [a.outcome for a in app.attempts(i)] == [Outcome.SUCCEEDED], i
    assert worker.processed == 5


def test_jobs_claimed_just_before_a_stop_run_to_their_end(backend: Backend) -> None:
    """A stop that arrives as a claim returns (when, on SQLite, its jobs start on the loop's
    next turn) does not leave them claimed but never started: they run in the grace and
    succeed, and no attempt is recorded as interrupted."""
    app = backend.app()

    @app.task
    async def quick(n: int) -> int:
        return n

    ids = quick.enqueue_many([(n,) for n in range(300)])
    worker = app.worker(concurrency=100, scheduler=False, poll_interval=0.05)

    def stopping(original: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            result = original(*args)
            worker.stop()  # thread-safe: lands on the loop while the claim's result does
            return result

        return call

    with wrapped(app.store, "claim", stopping), wrapped(app.store, "finish_and_claim", stopping):
        asyncio.run(worker.run_async())
    ran = [i for i in ids if app.get_job(i).attempt > 0]
    assert ran, "the first claim took jobs"
    for i in ran:
        assert [a.outcome for a in app.attempts(i)] == [Outcome.SUCCEEDED], i
    assert worker.processed == len(ran)


def test_worker_run_sets_the_switch_interval_while_it_runs_and_restores_it(backend: Backend) -> None:
    """By default 0.5 ms on SQLite (claims overlap running jobs there) and Python's own on
    PostgreSQL; a value given is used on both; restored when ``run()`` returns."""
    app = backend.app()
    seen: list[float] = []

    @app.task
    def look() -> None:
        seen.append(sys.getswitchinterval())

    before = sys.getswitchinterval()
    for interval in (0.0007, None):
        look.enqueue()
        app.worker(burst=True, scheduler=False, switch_interval=interval).run()
        assert sys.getswitchinterval() == before
    sqlite = app.store.combines_finish_with_claim
    assert seen == [0.0007, OVERLAP_SWITCH_INTERVAL if sqlite else before]
    with pytest.raises(ValueError, match="switch_interval must be > 0"):
        app.worker(switch_interval=0)


def test_worker_run_raises_the_collectors_threshold_while_it_runs_and_restores_it(backend: Backend) -> None:
    """``run()`` owns its process: its jobs see the youngest generation's threshold at
    ``gc_threshold`` (by default GC_THRESHOLD, far above Python's 700, which the objects of
    the jobs in flight crossed every few dozen jobs), the older generations' untouched; None
    keeps the process's own; restored when ``run()`` returns."""
    app = backend.app()
    seen: list[tuple[int, ...]] = []

    @app.task
    def look() -> None:
        seen.append(gc.get_threshold())

    before = gc.get_threshold()
    assert before[0] < GC_THRESHOLD
    for threshold in ("default", 12_345, None):
        look.enqueue()
        config = {} if threshold == "default" else {"gc_threshold": threshold}
        app.worker(burst=True, scheduler=False, **config).run()
        assert gc.get_threshold() == before
    assert seen == [(GC_THRESHOLD, *before[1:]), (12_345, *before[1:]), before]
    for bad in (0, -5, 1.5, True, "100"):
        with pytest.raises(ValueError, match="gc_threshold must be a whole number"):
            app.worker(gc_threshold=bad)


# ---- progress -------------------------------------------------------------------------------


def test_progress_is_persisted_while_the_job_runs_seed_003_13(backend: Backend) -> None:
    app = backend.app()
    steps = [threading.Event() for _ in range(3)]
    refused: list[str] = []

    @app.task
    def reports(ctx: duly.JobContext) -> str:
        ctx.progress(0, 10)
        steps[0].wait(30)
        ctx.progress(10, 20)
        steps[1].wait(30)
        try:
            ctx.progress(20, 10)  # more done than the total: refused, not persisted
        except ValueError as exc:
            refused.append(str(exc))
        steps[2].wait(30)
        return "ok"

    def progress(job_id: int) -> tuple[JobState, int | None, int | None]:
        j = app.get_job(job_id)
        return j.state, j.progress_done, j.progress_total

    with running(app, heartbeat_interval=0.1):
        job = reports.enqueue()
        wait_until(lambda: progress(job.id) == (JobState.RUNNING, 0, 10), timeout=10, what="0/10 in the database")
        steps[0].set()
        wait_until(lambda: progress(job.id) == (JobState.RUNNING, 10, 20), timeout=10, what="10/20 in the database")
        steps[1].set()
        wait_until(lambda: refused, timeout=10, what="the bad report refused")
        assert progress(job.id) == (JobState.RUNNING, 10, 20)
        steps[2].set()
        wait_until(lambda: progress(job.id)[0] is JobState.SUCCEEDED, timeout=10, what="the end")
    assert progress(job.id) == (JobState.SUCCEEDED, 10, 20)


# ---- every end announced, in the event log too --------------------------------------------


def test_jobs_abandoned_at_shutdown_are_announced_seed_002_25(backend: Backend) -> None:
    """A sync handler that ignores ctx.cancelled past the grace: its job is handed back
    (interrupted), with its ``job.interrupted`` event and ``after`` hook like any other end."""
    app = backend.app()
    release = threading.Event()
    started = threading.Event()

    @app.task
    def stubborn() -> None:
        started.set()
        release.wait(30)  # never looks at ctx.cancelled

    afters: list[tuple[int, Outcome]] = []
    app.on("after")(lambda job, outcome: afters.append((job.id, outcome)))
    try:
        with capture_events() as log:
            job = stubborn.enqueue()
            t0 = 0.0
            with running(app, grace=0.2) as worker:
                assert started.wait(10)
                t0 = time.monotonic()
            took = time.monotonic() - t0
        assert took < 0.2 + 1.0, f"stop took {took:.2f}s"
        assert worker.abandoned == 1
        final = app.get_job(job.id)
        assert final.state is JobState.QUEUED and final.errors == 0
        assert [a.outcome for a in app.attempts(job.id)] == [Outcome.INTERRUPTED]
        assert afters == [(job.id, Outcome.INTERRUPTED)]
        assert [e["job"] for e in log.of("job.interrupted")] == [job.id]
        assert log.of("worker.stopping")
    finally:
        release.set()


def _events_of_every_kind(app: duly.App) -> tuple[dict[str, int], EventLog]:
    """Run a job of each ending (success, failure, permanent failure, timeout, rescue)."""

    @app.task(name="ok")
    def ok() -> None: ...

    @app.task(name="flaky", max_attempts=2, retry=0)
    def flaky(ctx: duly.JobContext) -> None:
        if ctx.attempt == 1:
            raise ValueError("first try")

    @app.task(name="bad", max_attempts=1)
    def bad() -> None:
        raise ValueError("never")

    @app.task(name="slow", timeout=0.1, max_attempts=1)
    def slow(ctx: duly.JobContext) -> None:
        ctx.wait_cancelled(30)

    @app.task(name="orphan", lease=0.3)
    def orphan() -> None: ...

    with capture_events() as log:
        ids = {name: app.enqueue(name).id for name in ("ok", "flaky", "bad", "slow")}
        # a job claimed by a worker that died at once: its lease runs out, a live worker rescues it
        ids["orphan"] = app.enqueue("orphan").id
        (dead,) = app.store.claim(ClaimParams("dead-worker", 1, None, [n for n in ids if n != "orphan"]))
        assert dead.id == ids["orphan"]
        with running(app, rescue_interval=0.1, poll_interval=0.1):
            wait_until(
                lambda: all(state(app, i) in (JobState.SUCCEEDED, JobState.FAILED) for i in ids.values()),
                timeout=20,
                what="every job to end",
            )
    return ids, log


def test_failure_timeout_and_rescue_events_in_json_logs(backend: Backend) -> None:
    import io
    import json
    import logging

    from duly.runtime import events

    app = backend.app()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(events.JsonFormatter())
    logging.getLogger("duly").addHandler(handler)
    try:
        ids, _ = _events_of_every_kind(app)
    finally:
        logging.getLogger("duly").removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]

    def of(event: str, name: str) -> list[dict[str, Any]]:
        return [x for x in lines if x["event"] == event and x.get("job") == ids[name]]

    (failure,) = of("job.failure", "flaky")
    assert failure["level"] == "warning" and failure["retry_in"] == 0 and "first try" in failure["error"]
    assert failure["duration"] >= 0 and failure["task"] == "flaky" and failure["attempt"] == 1
    (permanent,) = of("job.permanent_failure", "bad")
    assert permanent["level"] == "error" and permanent["error"] == "ValueError: never"
    (timeout,) = of("job.timeout", "slow")
    assert timeout["level"] == "warning" and timeout["duration"] >= 0.1 and "timeout" in timeout["error"]
    assert len(of("job.permanent_failure", "slow")) == 1
    (rescue,) = of("job.rescue", "orphan")
    assert rescue["level"] == "warning" and rescue["attempt"] == 1
    assert len(of("job.success", "orphan")) == 1 and len(of("job.success", "ok")) == 1
    assert all("ts" in x for x in lines)


# ---- wake-ups ---------------------------------------------------------------------------------


def test_a_waiting_worker_gets_a_job_another_holder_failed_seed_001_9(backend: Backend) -> None:
    """A worker waits (idle); another holder claims a job and fails it with a retry due now:
    the waiting worker obtains it, its second attempt (here by its next poll: a failure
    sends no notification)."""
    from tests.helpers import fail

    app = backend.app()
    ran: list[tuple[int, str]] = []

    @app.task(max_attempts=3)
    def work(ctx: duly.JobContext) -> None:
        ran.append((ctx.attempt, ctx.worker_id))

    job = work.enqueue()
    (held_job,) = app.store.claim(ClaimParams("holder", 1, None))
    assert held_job.id == job.id
    with capture_events() as log, running(app, poll_interval=0.3, worker_id="waiter"):
        wait_until(lambda: log.of("worker.poll", claimed=0), timeout=10, what="the waiter to be idle")
        fail(app, held_job, retry_in=0)
        wait_until(lambda: ran, timeout=10, what="the waiter to obtain the failed job")
    assert ran == [(2, "waiter")], ran
    assert [a.outcome for a in app.attempts(job.id)] == [Outcome.FAILED, Outcome.SUCCEEDED]
    assert [a.worker_id for a in app.attempts(job.id)] == ["holder", "waiter"]


def test_a_retry_due_before_the_next_poll_runs_on_time(backend: Backend) -> None:
    """The worker itself fails a job with a retry in 0.2 s while its poll interval is 30 s:
    once the outcome is written, its idle fetcher looks at the next due time again."""
    app = backend.app()
    ran: list[float] = []

    @app.task(retry=0.2, max_attempts=2)
    def flaky(ctx: duly.JobContext) -> None:
        ran.append(time.monotonic())
        if ctx.attempt == 1:
            raise ValueError("first try")

    with running(app, poll_interval=30):
        job = flaky.enqueue()
        wait_until(lambda: state(app, job.id) is JobState.SUCCEEDED, timeout=10, what="the retry")
    assert len(ran) == 2 and 0.2 <= ran[1] - ran[0] < 5, ran


def test_a_worker_whose_claim_was_lost_and_handed_out_again_cannot_end_the_new_attempt(backend: Backend) -> None:
    """PostgreSQL: a claim lost in a server crash gives the job's attempt number to its next
    claim (see test_claim). The worker that still runs the lost claim's attempt presents its
    start with its heartbeats, so they are refused: it stops the handler as a lost lease and
    drops its outcome, and the new holder's attempt stays running."""
    if backend.name == "sqlite":
        pytest.skip("SQLite commits each claim before it returns (its workers share its disk)")
    import psycopg
    from psycopg import sql

    app = backend.app()
    started = threading.Event()
    seen: list[str | None] = []

    @app.task(lease=30)
    def hold(ctx: duly.JobContext) -> str:
        started.set()
        ctx.wait_cancelled(20)
        seen.append(ctx.cancel_reason)
        return "from the lost claim"

    job = app.enqueue(hold)
    with running(app, heartbeat_interval=0.1):
        assert started.wait(20)
        # the claim was lost and the job claimed again by another worker: same attempt, new start
        with psycopg.connect(backend.url, autocommit=True) as conn:
            conn.execute(sql.SQL("UPDATE {} SET worker_id = 'w2', started_at = started_at + interval '1 second' "
                                 "WHERE id = %s").format(sql.Identifier(backend.prefix + "jobs")), (job.id,))  # fmt: skip
        wait_until(lambda: bool(seen), timeout=20, what="the handler's end")
        assert seen == ["lease lost"]
    now = app.get_job(job.id)
    assert now is not None and now.state is JobState.RUNNING and now.worker_id == "w2" and now.result is None
    assert [a.outcome for a in app.store.attempts(job.id)] == [Outcome.RUNNING]  # no row from the lost claim
