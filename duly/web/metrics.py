"""Prometheus metrics.

``/metrics`` on the dashboard serves ``DulyCollector``: it reads the store at scrape time,
so any number of dashboards (or none) can run, and every worker's work is counted once,
wherever it ran:

=================================== ====== =========================================
metric                              type   labels / meaning
=================================== ====== =========================================
duly_jobs                           gauge  queue, state: jobs now in that state
duly_jobs_estimated                 gauge  queue, state: 1 when ``duly_jobs`` is an estimate
duly_queue_paused                   gauge  queue: 1 when paused
duly_queue_latency_seconds          gauge  queue: how long the oldest due job has waited
duly_jobs_finished_per_minute       gauge  queue, state: jobs ended per minute, last 5 minutes
duly_attempt_duration_seconds       gauge  queue: attempt durations of jobs ended in the last
                                    hist.  5 minutes (a gauge histogram: buckets can fall)
duly_workers                        gauge  state (alive | dead): registered workers
duly_workers_alive                  gauge  workers seen within the last 60 s
=================================== ====== =========================================

Inside a worker process, ``instrument_worker()`` adds classic cumulative metrics fed by the
worker's events (``duly_worker_attempts_total``, ``duly_worker_attempt_duration_seconds``):
expose them with ``prometheus_client.start_http_server(port)``. The same event stream is
the hook for OpenTelemetry (see docs/metrics.md).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, ClassVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from duly.app import App

#: Upper bounds (seconds) of the attempt duration buckets.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
#: Minutes the throughput and duration figures look back.
WINDOW_MINUTES = 5
#: At most this many attempts feed one scrape's duration histogram.
MAX_ATTEMPTS_PER_SCRAPE = 20_000


class DulyCollector(Collector):
    """Reads jobs, queues and workers from the store at each scrape."""

    def __init__(self, app: App) -> None:
        self.app = app

    def describe(self) -> list[Metric]:
        return []  # do not touch the database at registration

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

        durations: dict[str, list[float]] = defaultdict(list)
        for queue, _outcome, seconds in app.store.recent_attempt_durations(since, MAX_ATTEMPTS_PER_SCRAPE):
            durations[queue].append(seconds)
        hist = GaugeHistogramMetricFamily(
            "duly_attempt_duration_seconds",
            f"Durations of the attempts of jobs that ended in the last {WINDOW_MINUTES} minutes.",
            labels=["queue"],
        )
        for queue, values in sorted(durations.items()):
            buckets = [(_le(b), sum(1 for v in values if v <= b)) for b in BUCKETS]
            buckets.append(("+Inf", len(values)))
            hist.add_metric([queue], buckets, sum(values))
        yield hist

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
    registry = getattr(request.app.state, "metrics_registry", None)
    if registry is None:
        registry = request.app.state.metrics_registry = registry_for(request.app.state.duly)
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
