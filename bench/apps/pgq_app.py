"""PgQueuer's benchmark entrypoints: `pgq run pgq_app:main` (asyncpg driver)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import asyncpg
import probe
from pgqueuer import PgQueuer
from pgqueuer.db import AsyncpgDriver
from pgqueuer.executors import DatabaseRetryEntrypointExecutor, EntrypointExecutorParameters
from pgqueuer.models import Job


@asynccontextmanager
async def main() -> AsyncIterator[PgQueuer]:
    conn = await asyncpg.connect(os.environ["BENCH_PG_DSN"])
    pgq = PgQueuer(AsyncpgDriver(conn))

    @pgq.entrypoint("noop")
    async def noop(job: Job) -> None:
        probe.hit()

    @pgq.entrypoint("latency")
    async def latency(job: Job) -> None:
        probe.mark(int(job.payload))
        probe.hit()

    def retrying(params: EntrypointExecutorParameters) -> DatabaseRetryEntrypointExecutor:
        return DatabaseRetryEntrypointExecutor(parameters=params, max_attempts=5, initial_delay=timedelta(seconds=0.2))

    for q in ("q0", "q1", "q2", "q3"):

        @pgq.entrypoint(q, executor_factory=retrying)
        async def mixed(job: Job) -> None:
            ms, fail = job.payload.split(b",")
            await asyncio.sleep(int(ms) / 1000)
            if fail == b"1" and job.attempts == 0:
                raise RuntimeError("fails on its first attempt")
            probe.hit()

    try:
        yield pgq
    finally:
        await conn.close()
