"""Crash points: places inside duly where a fault-injection test can end the process at once.

Armed only by environment variables, read once when this module is imported; unset (the
normal case) ``crash_point`` is a function that returns at once::

    DULY_CRASH_AT      comma-separated point names (below), or "*" for every point
    DULY_CRASH_RATE    probability of crashing at each pass of an armed point (default 1)
    DULY_CRASH_AFTER   passes of armed points to let through before crashing (default 0)
    DULY_CRASH_LOG     a file to which one line "point pid detail" is appended before exiting

A crash is ``os._exit(137)``: no ``finally``, no atexit, no flush, like SIGKILL. A point
reached with nothing in hand (an empty claim, an empty batch) is not counted as a pass.
See docs/reliability.md for what each point proves.
"""

from __future__ import annotations

import os
import random
from typing import Any

#: Every crash point, in the order a job meets them.
POINTS = (
    "claim.committed",  # worker: right after store.claim returned (its transaction committed)
    "handler.before",  # executor: the job is about to call its handler
    "finish.before",  # worker completer: handlers returned, outcomes not yet sent to the store
    "finish.in_transaction",  # store.finish: rows updated, transaction not yet committed
    "fire.between_slot_and_job",  # store.fire: slot row inserted, its job not yet
)
EXIT_CODE = 137

_AT = frozenset(p.strip() for p in os.environ.get("DULY_CRASH_AT", "").split(",") if p.strip())
ARMED = bool(_AT)


def _armed_crash_point(name: str, detail: Any = None) -> None:
    global _passes
    if name not in _AT and "*" not in _AT:
        return
    if detail is not None and not detail:
        return
    _passes += 1
    if _passes <= _AFTER or (_RATE < 1.0 and random.random() >= _RATE):
        return
    log = os.environ.get("DULY_CRASH_LOG")
    if log:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{name} {os.getpid()} {_describe(detail)}\n".encode())
        finally:
            os.close(fd)
    os._exit(EXIT_CODE)


def _describe(detail: Any) -> str:
    """``job_id:attempt`` pairs of what was in hand (jobs, outcomes), else ``repr``."""
    items = detail if isinstance(detail, (list, tuple)) else [detail]
    out = []
    for item in items:
        job_id = getattr(item, "job_id", getattr(item, "id", None))
        attempt = getattr(item, "attempt", None)
        out.append(f"{job_id}:{attempt}" if job_id is not None else repr(item).replace(" ", ""))
    return ",".join(out)


def _unarmed(name: str, detail: Any = None) -> None:
    return None


if ARMED:
    _RATE = float(os.environ.get("DULY_CRASH_RATE", "1"))
    _AFTER = int(os.environ.get("DULY_CRASH_AFTER", "0"))
    _passes = 0
    unknown = _AT - set(POINTS) - {"*"}
    if unknown:
        raise ValueError(
            f"DULY_CRASH_AT names unknown crash point(s) {sorted(unknown)}; known: {POINTS}"
        )
    crash_point = _armed_crash_point
else:
    crash_point = _unarmed
