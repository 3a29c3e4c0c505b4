"""Procrastinate's benchmark tasks: `procrastinate --app proc_app.app worker`."""

from __future__ import annotations

import os

import probe
from procrastinate import App, PsycopgConnector

app = App(connector=PsycopgConnector(conninfo=os.environ.get("BENCH_PG_DSN", "")))


@app.task(name="noop")
async def noop() -> None:
    probe.hit()


@app.task(name="latency")
async def latency(seq: int) -> None:
    probe.mark(seq)
    probe.hit()
