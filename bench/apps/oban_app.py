"""oban-py's benchmark jobs: `oban start --queues default:N` runs them."""

from __future__ import annotations

import probe
from oban import job


@job(queue="default")
async def noop() -> None:
    probe.hit()


@job(queue="default")
async def latency(seq: int) -> None:
    probe.mark(seq)
    probe.hit()
