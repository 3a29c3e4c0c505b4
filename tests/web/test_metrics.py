"""Prometheus metrics on both backends: the cumulative counters and histogram never go
back, the queue latency is the real wait, and ``instrument_worker`` counts a real worker's
attempts. The store runs under a virtual clock, so the settle delay and the old 5-minute
window are crossed without waiting."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import duly
from duly.web.metrics import BUCKETS, SETTLE_SECONDS, DulyCollector, instrument_worker, registry_for
from tests.conftest import T0, Backend
from tests.helpers import claim_one, fail, succeed

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(registry: CollectorRegistry) -> tuple[Samples, dict[str, str]]:
    """Every sample by (name, labels), and every family's declared type."""
    samples: Samples = {}
    types = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples, types


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def bucket(samples: Samples, queue: str, le: str) -> float | None:
    return value(samples, "duly_attempt_duration_seconds_bucket", le=le, queue=queue)


def run_attempt(app: duly.App, clock: duly.VirtualClock, seconds: float, ok: bool = True, retry: bool = False) -> None:
    job = claim_one(app)
    clock.advance(seconds)
    if ok:
        succeed(app, job)
    else:
        fail(app, job, retry_in=0 if retry else None)


def test_counters_and_histogram_are_cumulative(backend: Backend) -> None:
    clock = duly.VirtualClock(T0)
    app = backend.app(clock)
    registry = registry_for(app)  # the totals start now (T0)
    samples, types = scrape(registry)
    assert types["duly_attempt_duration_seconds"] == "histogram"  # not a gauge histogram
    assert types["duly_jobs_finished"] == "counter" and types["duly_attempts"] == "counter"
    assert value(samples, "duly_attempt_duration_seconds_count", queue="mail") is None

    for _ in range(2):
        app.enqueue("mail.send", queue="mail")
        run_attempt(app, clock, 0.02)
    app.enqueue("reports.build", queue="reports")
    run_attempt(app, clock, 3.0, ok=False, retry=True)  # attempt 1 fails; the job waits
    run_attempt(app, clock, 1.0)  # attempt 2 succeeds: the job ends with both
    clock.advance(SETTLE_SECONDS + 1)
    first, _ = scrape(registry)
    assert value(first, "duly_jobs_finished_total", queue="mail", state="succeeded") == 2
    assert value(first, "duly_jobs_finished_total", queue="reports", state="succeeded") == 1
    assert value(first, "duly_attempts_total", queue="reports", outcome="failed") == 1
    assert value(first, "duly_attempts_total", queue="reports", outcome="succeeded") == 1
    assert value(first, "duly_attempt_duration_seconds_count", queue="mail") == 2
    assert abs((value(first, "duly_attempt_duration_seconds_sum", queue="mail") or 0) - 0.04) < 1e-9
    assert bucket(first, "mail", "0.01") == 0 and bucket(first, "mail", "0.025") == 2
    assert bucket(first, "reports", "0.5") == 0 and bucket(first, "reports", "1.0") == 1
    assert bucket(first, "reports", "2.5") == 1 and bucket(first, "reports", "5.0") == 2
    assert bucket(first, "reports", "+Inf") == 2
    assert value(first, "duly_attempt_duration_seconds_sum", queue="reports") == 4.0
    assert scrape(registry)[0] == first  # a scrape with nothing new counts nothing again

    # Ten minutes on (the old histogram forgot what ended over 5 minutes ago), one more mail
    # job; and one that ends within the settle delay: counted at the next scrape, not lost.
    clock.advance(timedelta(minutes=10))
    app.enqueue("mail.send", queue="mail")
    run_attempt(app, clock, 0.2)
    clock.advance(SETTLE_SECONDS + 1)
    app.enqueue("mail.send", queue="mail")
    run_attempt(app, clock, 0.2, ok=False)
    second, _ = scrape(registry)
    assert value(second, "duly_attempt_duration_seconds_count", queue="mail") == 3
    assert value(second, "duly_jobs_finished_total", queue="mail", state="failed") is None
    clock.advance(SETTLE_SECONDS + 1)
    third, _ = scrape(registry)
    assert value(third, "duly_attempt_duration_seconds_count", queue="mail") == 4
    assert value(third, "duly_jobs_finished_total", queue="mail", state="failed") == 1
    assert value(third, "duly_attempts_total", queue="mail", outcome="failed") == 1
    for earlier, later in ((first, second), (second, third)):
        for key, v in earlier.items():
            if key[0].endswith(("_bucket", "_count", "_sum", "_total")):
                assert later[key] >= v, key  # nothing cumulative ever goes down
    assert [bucket(third, "reports", le) for le in ("1.0", "5.0")] == [1, 2]  # kept past any window
    assert [bucket(third, "mail", le) for le in ("0.025", "0.25", "+Inf")] == [2, 4, 4]
    assert len([k for k in third if k[0] == "duly_attempt_duration_seconds_bucket"]) == 2 * (len(BUCKETS) + 1)


def test_jobs_that_ended_before_the_dashboard_started_are_not_counted(backend: Backend) -> None:
    clock = duly.VirtualClock(T0)
    app = backend.app(clock)
    app.enqueue("t", queue="mail")
    run_attempt(app, clock, 0.1)
    clock.advance(60)
    registry = registry_for(app)
    app.enqueue("t", queue="mail")
    run_attempt(app, clock, 0.1)
    clock.advance(SETTLE_SECONDS + 1)
    samples, _ = scrape(registry)
    assert value(samples, "duly_jobs_finished_total", queue="mail", state="succeeded") == 1
    assert value(samples, "duly_jobs", queue="mail", state="succeeded") == 2  # the gauge sees both


def test_queue_latency_is_the_oldest_due_jobs_wait(backend: Backend) -> None:
    clock = duly.VirtualClock(T0)
    app = backend.app(clock)
    registry = registry_for(app)
    app.enqueue("t", queue="mail")
    clock.advance(30)
    app.enqueue("t", queue="mail")  # younger: the oldest decides
    app.enqueue("t", queue="images", run_in=3600)  # scheduled, not due: no wait
    clock.advance(12.5)
    samples, _ = scrape(registry)
    assert value(samples, "duly_queue_latency_seconds", queue="mail") == 42.5
    assert value(samples, "duly_queue_latency_seconds", queue="images") is None
    claim_one(app)  # the oldest leaves the queue
    assert value(scrape(registry)[0], "duly_queue_latency_seconds", queue="mail") == 12.5


def test_instrument_worker_counts_a_real_workers_attempts(backend: Backend) -> None:
    app = backend.app()

    @app.task
    def ok(n: int) -> int:
        return n

    @app.task(max_attempts=1)
    def broken() -> None:
        raise ValueError("no")

    for n in range(3):
        ok.enqueue(n)
    broken.enqueue()
    registry = CollectorRegistry()
    handler: Any = instrument_worker(registry)
    try:
        asyncio.run(app.worker(burst=True, poll_interval=0.05).run_async())
    finally:
        logging.getLogger("duly.worker").removeHandler(handler)
    assert {j.state.value for j in app.jobs()} == {"succeeded", "failed"}
    ok_name, broken_name = ok.name, broken.name

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert sample("duly_worker_attempts_total", task=ok_name, outcome="succeeded") == 3
    assert sample("duly_worker_attempts_total", task=broken_name, outcome="failed") == 1
    assert sample("duly_worker_attempts_total", task=ok_name, outcome="failed") is None
    assert sample("duly_worker_attempt_duration_seconds_count", task=ok_name) == 3
    assert sample("duly_worker_attempt_duration_seconds_count", task=broken_name) == 1
    assert sample("duly_worker_attempt_duration_seconds_bucket", task=ok_name, le="+Inf") == 3
    assert (sample("duly_worker_attempt_duration_seconds_sum", task=ok_name) or 0) >= 0


def test_a_scrape_reads_only_the_jobs_that_ended_since_the_last(backend: Backend) -> None:
    """A big table of jobs that ended before the dashboard started costs a scrape nothing:
    the cursor is a range of the index on finished_at (measured as in test_job_list_index)."""
    from tests.contract.test_job_list_index import bulk_finished, pg_pages, pg_reads, sqlite_steps

    bulk_finished(backend, 20_000 if backend.name == "sqlite" else 300_000)
    if backend.name == "sqlite":
        app = backend.app()
        collector = DulyCollector(app)
        work = sqlite_steps(app, lambda: list(collector.cumulative()))
        assert work < 20, work  # reading the 20,000 index entries would cost 200 at least
        return
    whole = pg_pages(backend)

    def scrape_twice(app: duly.App) -> None:
        collector = DulyCollector(app)
        for _ in range(2):
            list(collector.cumulative())
        app.store.queue_names()  # an index scan: the counters' flush is seen by it

    reads = pg_reads(backend, scrape_twice)
    assert reads["seq_read"] == 0, reads
    # the finished_at index holds 300,000 entries: reading them would visit hundreds of pages
    assert reads["heap_pages"] + reads["index_pages"] < whole["queue_state"] // 2, (reads, whole)
