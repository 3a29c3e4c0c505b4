"""RQ's benchmark functions (the worker imports them by dotted path)."""

from __future__ import annotations

import probe


def noop() -> None:
    probe.hit()


def latency(seq: int) -> None:
    probe.mark(seq)
    probe.hit()
