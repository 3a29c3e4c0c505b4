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
    #: Any duration (``90``, ``"1h30m"``, a ``timedelta``); stored as seconds (a float).
    in_: Duration | None = None

    def __post_init__(self) -> None:
        if (self.at is None) == (self.in_ is None):
            raise ValueError("Reschedule needs exactly one of at= or in_=")
        if self.at is not None and (not isinstance(self.at, datetime) or self.at.tzinfo is None):
            raise ValueError("Reschedule(at=...) needs an aware datetime")
        if self.in_ is not None:
            seconds = to_seconds(self.in_)  # ValueError naming the text when it is no duration
            if seconds < 0:
                raise ValueError("Reschedule(in_=...) must not be negative")
            object.__setattr__(self, "in_", seconds)

    @property
    def seconds(self) -> float | None:
        return None if self.in_ is None else to_seconds(self.in_)


@dataclass(frozen=True)
class Snooze:
    """Put the job back for ``seconds`` without using up an attempt. Any duration is
    accepted (``30``, ``"30s"``, ``"1h30m"``, a ``timedelta``) and stored as seconds."""

    seconds: float

    def __post_init__(self) -> None:
        seconds = to_seconds(self.seconds)  # ValueError naming the text when it is no duration
        if seconds < 0:
            raise ValueError("Snooze seconds must not be negative")
        object.__setattr__(self, "seconds", seconds)
