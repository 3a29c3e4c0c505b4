"""Values a handler may return to keep its job for a later run instead of ending it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from duly.core.durations import Duration, to_seconds


@dataclass(frozen=True)
class Reschedule:
    """Keep the job and run it again at ``at`` or in ``in_`` (a fresh run: the failure count
    resets). The OCaml seed's "keep", the recurring jobs' "next run in"."""

    at: datetime | None = None
    in_: Duration | None = None

    def __post_init__(self) -> None:
        if (self.at is None) == (self.in_ is None):
            raise ValueError("Reschedule needs exactly one of at= or in_=")
        if self.at is not None and self.at.tzinfo is None:
            raise ValueError("Reschedule(at=...) needs an aware datetime")
        if self.in_ is not None and to_seconds(self.in_) < 0:
            raise ValueError("Reschedule(in_=...) must not be negative")

    @property
    def seconds(self) -> float | None:
        return None if self.in_ is None else to_seconds(self.in_)


@dataclass(frozen=True)
class Snooze:
    """Put the job back for ``seconds`` without using up an attempt."""

    seconds: float

    def __post_init__(self) -> None:
        if to_seconds(self.seconds) < 0:
            raise ValueError("Snooze seconds must not be negative")
