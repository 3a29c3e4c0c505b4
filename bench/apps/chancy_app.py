"""Chancy's benchmark jobs: `chancy --app chancy_app.chancy worker start`."""

from __future__ import annotations

import os

import probe
from chancy import Chancy, job

chancy = Chancy(os.environ.get("BENCH_PG_DSN", ""))


@job()
async def noop() -> None:
    probe.hit()


@job()
async def latency(seq: int) -> None:
    probe.mark(seq)
    probe.hit()
