"""One clock interface for due times, leases, retries, expiry and schedules.

``SystemClock`` is the real one. On PostgreSQL the database's own clock decides under it:
the store sends no time and the SQL uses ``now()``. SQLite has no shared clock, so the
process clock is used. ``VirtualClock`` is pinned and moved by tests; its time reaches every
query, on both backends.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from duly.core.durations import Duration, to_timedelta


@runtime_checkable
class Clock(Protocol):
    @property
    def virtual(self) -> bool: ...

    def now(self) -> datetime: ...


class SystemClock:
    virtual = False

    def now(self) -> datetime:
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


def _aware(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        raise ValueError(f"datetime {dt.isoformat()} has no time zone; give an aware datetime")
    return dt.astimezone(UTC)


class VirtualClock:
    """A clock that moves only when told to: ``advance(hours=3)``, ``set(dt)``.

    Thread-safe; it never moves backwards. ``on_change`` callbacks (used by workers to
    wake up) run after every move.
    """

    virtual = True

    def __init__(self, start: datetime | None = None) -> None:
        self._now = _aware(start) if start else datetime.now(UTC).replace(microsecond=0)
        self._lock = threading.Lock()
        self._listeners: list[object] = []

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, by: Duration | None = None, **parts: float) -> datetime:
        """Move forward by a duration (``"90s"``, seconds, a timedelta) or timedelta parts."""
        delta = to_timedelta(by) if by is not None else timedelta(**parts)
        if delta < timedelta(0):
            raise ValueError("a virtual clock never moves backwards")
        with self._lock:
            self._now += delta
            now = self._now
        self._notify()
        return now

    def set(self, when: datetime) -> datetime:
        """Jump to ``when``; a time before the current one is ignored (time never goes back)."""
        when = _aware(when)
        with self._lock:
            if when > self._now:
                self._now = when
            now = self._now
        self._notify()
        return now

    def subscribe(self, callback: object) -> None:
        self._listeners.append(callback)

    def _notify(self) -> None:
        for cb in list(self._listeners):
            cb()  # type: ignore[operator]

    def __repr__(self) -> str:
        return f"VirtualClock({self._now.isoformat()})"
