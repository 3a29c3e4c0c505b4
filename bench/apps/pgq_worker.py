"""PgQueuer's own worker loop (what `pgq run` starts), called directly: `pgq run` fails on
this typer version while parsing its --log-level option. Arguments:
`python pgq_worker.py MODE BATCH_SIZE [MAX_CONCURRENT_TASKS]` (MODE: drain | continuous)."""

from __future__ import annotations

import sys
from datetime import timedelta

import pgq_app
from pgqueuer import run
from pgqueuer.adapters.cli.cli import asyncio_run  # uvloop when installed, as `pgq run` does
from pgqueuer.types import QueueExecutionMode

if __name__ == "__main__":
    mode, batch = sys.argv[1], int(sys.argv[2])
    limit = int(sys.argv[3]) if len(sys.argv) > 3 else None
    asyncio_run(run(pgq_app.main, batch_size=batch, mode=QueueExecutionMode(mode), max_concurrent_tasks=limit,
                    dequeue_timeout=timedelta(seconds=1)))  # fmt: skip
