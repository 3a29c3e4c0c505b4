"""duly's benchmark tasks. The database comes from $DULY_DATABASE_URL."""

from __future__ import annotations

import asyncio
import os

import probe
from duly import App

app = App()
SYNC = os.environ.get("BENCH_DULY_SYNC") == "1"

if SYNC:

    @app.task(name="noop")
    def noop() -> None:
        probe.hit()

else:

    @app.task(name="noop")
    async def noop() -> None:
        probe.hit()


@app.task(name="latency")
async def latency(seq: int) -> None:
    probe.mark(seq)
    probe.hit()


class Flaky(Exception):
    pass


@app.task(name="mixed", retry=0.2, max_attempts=5)
async def mixed(ctx, ms: int, fail: bool) -> None:  # noqa: ANN001
    await asyncio.sleep(ms / 1000)
    if fail and ctx.job.attempt == 1:
        raise Flaky("fails on its first attempt")
    probe.hit()
