"""Domain objects as JSON for the API (and the data the pages' scripts read)."""

from __future__ import annotations

import enum
from dataclasses import fields, is_dataclass
from datetime import datetime
from typing import Any

from duly.core.admin import QueueCounts, WorkerInfo
from duly.core.model import Attempt, Job
from duly.core.states import JobState


def jsonable(value: Any) -> Any:
    """Dataclasses, enums, datetimes, sets and containers as plain JSON values."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {str(jsonable(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(jsonable(v) for v in value)
    return value


def job(j: Job) -> dict[str, Any]:
    out: dict[str, Any] = jsonable(j)
    out["attempts_left"] = j.attempts_left
    return out


def attempt(a: Attempt) -> dict[str, Any]:
    out: dict[str, Any] = jsonable(a)
    out["duration_seconds"] = (
        (a.finished_at - a.started_at).total_seconds() if a.started_at and a.finished_at else None
    )
    return out


def counts(c: QueueCounts, latency: float | None = None) -> dict[str, Any]:
    return {
        "queue": c.queue,
        "paused": c.paused,
        "counts": {s.value: c.counts.get(s, 0) for s in JobState},
        "estimated": sorted(s.value for s in c.estimated),
        "total": c.total,
        "latency_seconds": round(latency or 0.0, 3),
    }


def worker(w: WorkerInfo) -> dict[str, Any]:
    out: dict[str, Any] = jsonable(w)
    return out


def trigger(t: Any) -> dict[str, Any]:
    """A trigger without its webhook secret (never shown or sent)."""
    out: dict[str, Any] = jsonable(t)
    spec = out.get("spec")
    if isinstance(spec, dict):
        spec["secret"] = "***" if spec.get("secret") else None
    out["name"] = getattr(t, "name", None)
    return out
