"""Structured log events of the worker: one per start, success, failure, timeout, rescue, poll.

Every event is a ``logging`` record on logger ``duly.worker`` whose ``duly`` attribute holds
the fields. ``HumanFormatter`` (the default) renders ``event key=value ...``; ``JsonFormatter``
renders one JSON object per line.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("duly.worker")
logging.getLogger("duly").addHandler(logging.NullHandler())

LEVELS = {
    "job.start": logging.DEBUG,
    "job.success": logging.INFO,
    "job.failure": logging.WARNING,
    "job.permanent_failure": logging.ERROR,
    "job.timeout": logging.WARNING,
    "job.cancelled": logging.INFO,
    "job.interrupted": logging.WARNING,
    "job.rescheduled": logging.INFO,
    "job.stale": logging.WARNING,
    "job.rescue": logging.WARNING,
    "worker.poll": logging.DEBUG,
    "worker.idle": logging.DEBUG,  # waiting, a claim of `free` slots ready for a wake-up
    "worker.start": logging.INFO,
    "worker.stopping": logging.INFO,
    "worker.stop": logging.INFO,
    "worker.db_error": logging.ERROR,
    "hook.error": logging.ERROR,
}


def enabled(event: str) -> bool:
    """Whether ``event`` would be logged: a hot path asks first, before building its fields."""
    return log.isEnabledFor(LEVELS.get(event, logging.INFO))


def emit(event: str, **fields: Any) -> None:
    level = LEVELS.get(event, logging.INFO)
    if log.isEnabledFor(level):
        log.log(level, event, extra={"duly": {"event": event, **fields}})


class HumanFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "duly", None)
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S.%f")[:-3]
        if not fields:
            return f"{stamp} {record.levelname:<7} {record.getMessage()}"
        rest = " ".join(f"{k}={_short(v)}" for k, v in fields.items() if k != "event")
        return f"{stamp} {record.levelname:<7} {fields['event']:<22} {rest}"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = dict(getattr(record, "duly", None) or {"event": "log", "message": record.getMessage()})
        fields["ts"] = datetime.fromtimestamp(record.created, UTC).isoformat()
        fields["level"] = record.levelname.lower()
        if record.exc_info and record.exc_info[0] is not None:
            fields["exc"] = self.formatException(record.exc_info)
        return json.dumps(fields, default=str, ensure_ascii=False)


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    text = str(v)
    return text if len(text) <= 120 else text[:117] + "..."


def configure(fmt: str = "human", level: int | str = logging.INFO) -> None:
    """Send duly's events to stderr as human text or JSON lines."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else HumanFormatter())
    root = logging.getLogger("duly")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
