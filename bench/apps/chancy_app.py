"""Chancy's benchmark jobs: `chancy --app chancy_app.chancy worker start`."""

from __future__ import annotations

import logging
import os

import probe
from chancy import Chancy, job

_log = logging.getLogger("bench.chancy")
_log.setLevel(logging.WARNING)  # its default logger writes a line per job
_log.addHandler(logging.StreamHandler())
chancy = Chancy(os.environ.get("BENCH_PG_DSN", ""), log=_log)


@job()
async def noop() -> None:
    probe.hit()


@job()
async def latency(seq: int) -> None:
    probe.mark(seq)
    probe.hit()
