"""Prometheus metrics.

``/metrics`` on the dashboard serves ``DulyCollector``: it reads the store at scrape time,
so every worker's work is counted, wherever it ran:

=================================== ========= ======================================
metric                              type      labels / meaning
=================================== ========= ======================================
duly_jobs                           gauge     queue, state: jobs now in that state
duly_jobs_estimated                 gauge     queue, state: 1 when ``duly_jobs`` is an estimate
duly_queue_paused                   gauge     queue: 1 when paused
duly_queue_latency_seconds          gauge     queue: how long the oldest due job has waited
duly_jobs_finished_per_minute       gauge     queue, state: jobs ended per minute, last 5 minutes
duly_jobs_finished_total            counter   queue, state: jobs that ended (*)
duly_attempts_total                 counter   queue, outcome: attempts of those jobs (*)
duly_attempt_duration_seconds       histogram queue: durations of those attempts (*)
duly_workers                        gauge     state (alive | dead): registered workers
duly_workers_alive                  gauge     workers seen within the last 60 s
=================================== ========= ======================================

(*) Cumulative, so ``rate()`` and ``histogram_quantile(rate(...))`` work: the collector
adds up, scrape after scrape, the jobs that ended since this dashboard process started
(read through the index on finished_at with a cursor, ``SETTLE_SECONDS`` behind the clock so
that a finish committed late is not skipped). A job's attempts are counted when the job
ends. Like any process's counters they start again from zero when the dashboard restarts,
and each dashboard counts on its own: scrape one.

Inside a worker process, ``instrument_worker()`` adds classic cumulative metrics fed by the
worker's events (``duly_worker_attempts_total``, ``duly_worker_attempt_duration_seconds``):
expose them with ``prometheus_client.start_http_server(port)``. The same event stream is
the hook for OpenTelemetry (see docs/metrics.md).
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, ClassVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from duly.app import App
from duly.core.admin import EndedJob

#: Upper bounds (seconds) of the attempt duration buckets.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
#: Minutes the throughput gauge looks back.
WINDOW_MINUTES = 5
#: A job's end is counted once it is this many seconds old: a finish stamped earlier may
#: commit a little later (PostgreSQL stamps the transaction's start; a SQLite writer may wait
#: for the lock), and a cumulative count must never skip it.
SETTLE_SECONDS = 10.0
#: Ended jobs read per query, and at most per scrape (the rest waits for the next scrape).
ENDED_BATCH = 5_000
MAX_ENDED_PER_SCRAPE = 100_000


class _Totals:
    """What the collector has added up: ended jobs, their attempts and durations."""

    def __init__(self, start: datetime) -> None:
        self.after, self.after_id = start, 0  # the cursor: (finished_at, id) of the last job read
        self.finished: dict[tuple[str, str], int] = defaultdict(int)
        self.attempts: dict[tuple[str, str], int] = defaultdict(int)
        self.buckets: dict[str, list[int]] = {}  # per queue: observations per bucket, +Inf last
        self.sums: dict[str, float] = defaultdict(float)

    def add(self, job: EndedJob) -> None:
        self.finished[(job.queue, job.state.value)] += 1
        counts = self.buckets.setdefault(job.queue, [0] * (len(BUCKETS) + 1))
        for outcome, seconds in job.attempts:
            self.attempts[(job.queue, outcome)] += 1
            self.sums[job.queue] += seconds
            counts[next((i for i, b in enumerate(BUCKETS) if seconds <= b), len(BUCKETS))] += 1
        self.after, self.after_id = job.finished_at, job.id


class DulyCollector(Collector):
    """Reads jobs, queues and workers from the store at each scrape, and adds up the jobs
    that ended since it was made (the counters and the histogram)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._totals = _Totals(app.clock.now())  # no database access here

    def describe(self) -> list[Metric]:
        return []  # do not touch the database at registration

    def _catch_up(self) -> None:
        """Add the jobs that ended since the last scrape, up to SETTLE_SECONDS ago."""
        until = self.app.store.now() - timedelta(seconds=SETTLE_SECONDS)
        t = self._totals
        read = 0
        while read < MAX_ENDED_PER_SCRAPE:
            batch = self.app.store.ended_jobs(t.after, t.after_id, until, ENDED_BATCH)
            for job in batch:
                t.add(job)
            read += len(batch)
            if len(batch) < ENDED_BATCH:
                return

    def cumulative(self) -> Iterator[Metric]:
        with self._lock:
            self._catch_up()
            t = self._totals
            finished = CounterMetricFamily("duly_jobs_finished", "Jobs that ended, by final state.",
                                           labels=["queue", "state"])  # fmt: skip
            for (queue, state), n in sorted(t.finished.items()):
                finished.add_metric([queue, state], n)
            attempts = CounterMetricFamily("duly_attempts", "Attempts of the jobs that ended, by outcome.",
                                           labels=["queue", "outcome"])  # fmt: skip
            for (queue, outcome), n in sorted(t.attempts.items()):
                attempts.add_metric([queue, outcome], n)
            hist = HistogramMetricFamily("duly_attempt_duration_seconds",
                                         "Durations of the attempts of the jobs that ended.", labels=["queue"])  # fmt: skip
            for queue, counts in sorted(t.buckets.items()):
                running, buckets = 0, []
                for bound, n in zip([*map(_le, BUCKETS), "+Inf"], counts, strict=True):
                    running += n
                    buckets.append((bound, running))
                hist.add_metric([queue], buckets, t.sums[queue])
        yield from (finished, attempts, hist)

    def collect(self) -> Iterator[Metric]:
        app = self.app
        jobs = GaugeMetricFamily("duly_jobs", "Jobs by queue and state.", labels=["queue", "state"])
        est = GaugeMetricFamily("duly_jobs_estimated", "1 when duly_jobs is a planner estimate.",
                                labels=["queue", "state"])  # fmt: skip
        paused = GaugeMetricFamily("duly_queue_paused", "1 when the queue is paused.", labels=["queue"])
        for c in app.queue_counts():
            for state, n in c.counts.items():
                jobs.add_metric([c.queue, state.value], n)
                est.add_metric([c.queue, state.value], 1 if state in c.estimated else 0)
            paused.add_metric([c.queue], 1 if c.paused else 0)
        yield from (jobs, est, paused)

        latency = GaugeMetricFamily("duly_queue_latency_seconds",
                                    "Seconds the oldest due job of the queue has waited.", labels=["queue"])  # fmt: skip
        for queue, seconds in sorted(app.queue_latency().items()):
            latency.add_metric([queue], seconds)
        yield latency

        now = app.store.now()
        since = now - timedelta(minutes=WINDOW_MINUTES)
        rate = GaugeMetricFamily("duly_jobs_finished_per_minute",
                                 f"Jobs ended per minute over the last {WINDOW_MINUTES} minutes.",
                                 labels=["queue", "state"])  # fmt: skip
        per: dict[tuple[str, str], int] = defaultdict(int)
        for p in app.store.throughput(since):
            per[(p.queue, p.state.value)] += p.count
        for (queue, final), n in sorted(per.items()):
            rate.add_metric([queue, final], n / WINDOW_MINUTES)
        yield rate

        yield from self.cumulative()

        workers = app.workers()
        alive = sum(w.alive for w in workers)
        by_state = GaugeMetricFamily("duly_workers", "Registered workers.", labels=["state"])
        by_state.add_metric(["alive"], alive)
        by_state.add_metric(["dead"], len(workers) - alive)
        yield by_state
        yield GaugeMetricFamily("duly_workers_alive", "Workers seen within the last 60 s.", value=alive)


def _le(bound: float) -> str:
    return repr(float(bound))


def registry_for(app: App) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DulyCollector(app))
    return registry


async def metrics_endpoint(request: Request) -> Response:
    registry = request.app.state.metrics_registry  # made with the app: its totals start then
    body = await run_in_threadpool(generate_latest, registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


# -- in the worker process ---------------------------------------------------------------


class _EventMetrics(logging.Handler):
    """Turns the worker's ``job.*`` events into cumulative Prometheus metrics."""

    OUTCOMES: ClassVar[dict[str, str]] = {
        "job.success": "succeeded", "job.failure": "failed", "job.permanent_failure": "failed",
        "job.timeout": "timed_out", "job.cancelled": "cancelled", "job.interrupted": "interrupted",
        "job.rescheduled": "rescheduled",
    }  # fmt: skip

    def __init__(self, registry: CollectorRegistry | None) -> None:
        super().__init__(level=logging.DEBUG)
        kw: dict[str, Any] = {} if registry is None else {"registry": registry}
        self.attempts = Counter("duly_worker_attempts", "Attempts run by this process.",
                                ["task", "outcome"], **kw)  # fmt: skip
        self.duration = Histogram("duly_worker_attempt_duration_seconds",
                                  "Attempt durations in this process.", ["task"], buckets=BUCKETS, **kw)  # fmt: skip

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "duly", None)
        if not fields:
            return
        outcome = self.OUTCOMES.get(fields.get("event", ""))
        if outcome is None or fields["event"] == "job.timeout":  # a timeout also emits failure
            return
        task = str(fields.get("task", "?"))
        self.attempts.labels(task, outcome).inc()
        duration = fields.get("duration")
        if isinstance(duration, (int, float)):
            self.duration.labels(task).observe(duration)


def instrument_worker(registry: CollectorRegistry | None = None) -> logging.Handler:
    """Count this process's attempts and their durations in Prometheus metrics (default
    registry unless given); returns the logging handler attached to ``duly.worker``."""
    handler = _EventMetrics(registry)
    logger = logging.getLogger("duly.worker")
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    return handler
