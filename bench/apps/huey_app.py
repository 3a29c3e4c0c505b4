"""Huey with its SQLite storage ($BENCH_HUEY_DB): `huey_consumer huey_app.huey`."""

from __future__ import annotations

import os

import probe
from huey import SqliteHuey

huey = SqliteHuey("bench", filename=os.environ.get("BENCH_HUEY_DB", "huey.db"))


@huey.task()
def noop() -> None:
    probe.hit()


@huey.task()
def latency(seq: int) -> None:
    probe.mark(seq)
    probe.hit()
