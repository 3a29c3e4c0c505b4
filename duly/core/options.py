"""Validation of task and enqueue options: errors name the option and the bad value."""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from dataclasses import dataclass, field

from duly.core import defaults
from duly.core.durations import Duration, to_seconds
from duly.core.errors import InvalidOption
from duly.core.model import KeyMode
from duly.core.retry import RetryPolicy, as_policy

PRIORITY_RANGE = (-1_000_000, 1_000_000)
MAX_ATTEMPTS_LIMIT = 1_000_000
MAX_DELAY_SECONDS = 100 * 365 * 86400  # a century
MAX_NAME = 200
MAX_KEY = 1000


_good_names: set[str] = set()


@contextmanager
def about(field: str) -> Iterator[None]:
    """An InvalidOption raised inside names ``field`` as its ``field`` (unless it names one)."""
    try:
        yield
    except InvalidOption as exc:
        if exc.field is None:
            exc.field = field
        raise


def check_name(value: Any, what: str) -> str:
    """Queue and task names: non-empty text without control characters, at most 200 chars."""
    if isinstance(value, str) and value in _good_names:  # names repeat: check each once
        return value
    if not isinstance(value, str) or not value.strip():
        raise InvalidOption(f"{what} must be a non-empty string, got {value!r}")
    if len(value) > MAX_NAME:
        raise InvalidOption(f"{what} is {len(value)} characters long; the limit is {MAX_NAME}")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
        raise InvalidOption(f"{what} {value!r} contains control characters")
    if len(_good_names) < 10_000:
        _good_names.add(value)
    return value


def check_priority(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidOption(f"priority must be an integer, got {value!r}")
    lo, hi = PRIORITY_RANGE
    if not lo <= value <= hi:
        raise InvalidOption(f"priority {value} is outside [{lo}, {hi}]")
    return value


def check_max_attempts(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidOption(f"max_attempts must be an integer >= 1, got {value!r}")
    if value > MAX_ATTEMPTS_LIMIT:
        raise InvalidOption(f"max_attempts {value} is over the limit of {MAX_ATTEMPTS_LIMIT}")
    return value


def check_seconds(value: Duration | None, what: str, *, positive: bool = False) -> float | None:
    if value is None:
        return None
    try:
        secs = to_seconds(value)
    except ValueError as exc:
        raise InvalidOption(f"{what}: {exc}") from None
    if not math.isfinite(secs) or secs < 0 or (positive and secs == 0):
        raise InvalidOption(f"{what} must be {'positive' if positive else 'zero or more'}, got {value!r}")
    if secs > MAX_DELAY_SECONDS:
        raise InvalidOption(f"{what} of {secs:.0f} s is more than a century")
    return secs


def check_datetime(value: Any, what: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidOption(f"{what} {value!r} is not an ISO 8601 date-time") from None
    if not isinstance(value, datetime):
        raise InvalidOption(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None:
        raise InvalidOption(f"{what} {value.isoformat()} has no time zone; give an aware datetime")
    return value.astimezone(UTC)


def check_key(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidOption(f"key must be a non-empty string, got {value!r}")
    if len(value) > MAX_KEY:
        raise InvalidOption(f"key is {len(value)} characters long; the limit is {MAX_KEY}")
    if "\x00" in value:
        raise InvalidOption("key contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidOption("key is not valid UTF-8 text") from None
    return value


_MODES: dict[Any, KeyMode] = {**{m: m for m in KeyMode}, **{m.value: m for m in KeyMode}}


def check_mode(value: Any) -> KeyMode:
    try:
        return _MODES[value]
    except (KeyError, TypeError):
        raise InvalidOption(f"mode must be one of new, ignore, replace; got {value!r}") from None


@dataclass(frozen=True, slots=True)
class Times:
    """When a job runs and expires: absolute times, or seconds from the store's now.

    Relative times (``delay``, ``expires_in``) go to the store as seconds so that the
    database's clock decides them under the real clock on PostgreSQL (the process clock may
    be off); under a virtual clock the store adds them to the clock's time."""

    run_at: datetime | None = None
    delay: float | None = None
    expires_at: datetime | None = None
    expires_in: float | None = None


_NO_TIMES = Times()


def resolve_times(
    now: Callable[[], datetime],
    run_at: Any,
    run_in: Duration | None,
    expires_at: Any,
    expires_in: Duration | None,
) -> Times:
    """Check the run and expiry options, and that expiry comes after the run time.

    Both relative (``run_in``, ``expires_in``) or both absolute are compared as given; a mix
    of the two is compared against ``now()`` (the process clock: the only one at hand here)."""
    if run_at is None and run_in is None and expires_at is None and expires_in is None:
        return _NO_TIMES
    if run_at is not None and run_in is not None:
        raise InvalidOption("give run_at or run_in, not both")
    if expires_at is not None and expires_in is not None:
        raise InvalidOption("give expires_at or expires_in, not both")
    at = check_datetime(run_at, "run_at")
    delay = check_seconds(run_in, "run_in")
    exp = check_datetime(expires_at, "expires_at")
    exp_in = check_seconds(expires_in, "expires_in", positive=True)
    if exp_in is not None and at is None:
        if timedelta(seconds=exp_in) <= timedelta(seconds=delay or 0.0):  # in microseconds, as stored
            raise InvalidOption(
                f"expires_in of {exp_in:g} s is not after the run time ({delay or 0:g} s from now); "
                "the job could never start"
            )
    elif exp is not None or exp_in is not None:
        moment = now()
        end = exp if exp is not None else moment + timedelta(seconds=exp_in or 0.0)
        start = at if at is not None else moment + timedelta(seconds=delay or 0.0)
        if end <= start:
            raise InvalidOption(
                f"expires_at {end.isoformat()} is not after the run time {start.isoformat()}; "
                "the job could never start"
            )
    return Times(at, delay, exp, exp_in)


@dataclass(frozen=True)
class TaskOptions:
    """A task's defaults; every job of the task starts from these."""

    queue: str = defaults.QUEUE
    priority: int = defaults.PRIORITY
    max_attempts: int = defaults.MAX_ATTEMPTS
    retry: RetryPolicy = field(default_factory=lambda: as_policy(None))
    timeout: float | None = None
    lease: float = defaults.LEASE_SECONDS
    concurrency: int | None = None
    stall_after: float | None = None
    no_retry: tuple[type[BaseException], ...] = ()
