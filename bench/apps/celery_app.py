"""Celery on Redis ($BENCH_CELERY_BROKER), no result backend: `celery -A celery_app worker`."""

from __future__ import annotations

import os
import time

import probe
from celery import Celery

app = Celery("bench", broker=os.environ.get("BENCH_CELERY_BROKER", "redis://127.0.0.1:6379/9"))
app.conf.update(
    task_ignore_result=True,
    worker_prefetch_multiplier=int(os.environ.get("BENCH_CELERY_PREFETCH", "100")),
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    task_queues=None,
    task_default_queue="celery",
    broker_transport_options={"queue_order_strategy": "priority"},
)


@app.task(name="noop")
def noop() -> None:
    probe.hit()


@app.task(name="latency")
def latency(seq: int) -> None:
    probe.mark(seq)
    probe.hit()


@app.task(name="mixed", bind=True, max_retries=4, default_retry_delay=0.2)
def mixed(self, ms: int, fail: bool) -> None:  # noqa: ANN001
    time.sleep(ms / 1000)
    if fail and self.request.retries == 0:
        raise self.retry(exc=RuntimeError("fails on its first attempt"), countdown=0.2)
    probe.hit()
