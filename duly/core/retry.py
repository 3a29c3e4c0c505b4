"""Retry policies: pure functions from (failures so far, error) to a delay in seconds.

``delay(failures, error)`` is asked after an attempt failed and attempts are left;
``failures`` counts that failure (1 after the first). Returning ``None`` means "do not retry".
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from duly.core.durations import Duration, to_seconds


@runtime_checkable
class RetryPolicy(Protocol):
    def delay(self, failures: int, error: BaseException | None) -> float | None: ...


@dataclass(frozen=True)
class Fixed:
    """The same delay every time (the OCaml seed's one hour: ``Fixed("1h")``)."""

    seconds: float

    def __init__(self, delay: Duration) -> None:
        object.__setattr__(self, "seconds", _non_negative(to_seconds(delay), "delay"))

    def delay(self, failures: int, error: BaseException | None) -> float:
        return self.seconds


@dataclass(frozen=True)
class Exponential:
    """``base * factor**(failures-1)``, capped at ``cap``, with ±``jitter`` (a fraction).

    The default policy: 2 s, 4 s, 8 s ... up to one hour, each ±10 %.
    """

    base: float = 2.0
    factor: float = 2.0
    cap: float = 3600.0
    jitter: float = 0.1
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        _non_negative(self.base, "base")
        _non_negative(self.cap, "cap")
        if self.factor < 1:
            raise ValueError(f"factor must be >= 1, got {self.factor}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {self.jitter}")

    def delay(self, failures: int, error: BaseException | None) -> float:
        exp = min(max(failures - 1, 0), 64)
        d = min(self.base * self.factor**exp, self.cap)
        if self.jitter:
            d *= 1 + self.rng.uniform(-self.jitter, self.jitter)
        return d


@dataclass(frozen=True)
class Delays:
    """An explicit list: the n-th failure waits ``delays[n-1]``; the last one repeats."""

    seconds: tuple[float, ...]

    def __init__(self, delays: Sequence[Duration]) -> None:
        if not delays:
            raise ValueError("Delays needs at least one delay")
        secs = tuple(_non_negative(to_seconds(d), "delay") for d in delays)
        object.__setattr__(self, "seconds", secs)

    def delay(self, failures: int, error: BaseException | None) -> float:
        return self.seconds[min(max(failures, 1), len(self.seconds)) - 1]


@dataclass(frozen=True)
class Custom:
    """Wraps ``fn(failures, error) -> seconds | None``."""

    fn: Callable[[int, BaseException | None], float | None]

    def delay(self, failures: int, error: BaseException | None) -> float | None:
        d = self.fn(failures, error)
        return None if d is None else _non_negative(float(d), "delay")


def as_policy(value: RetryPolicy | Duration | Sequence[Duration] | Callable[..., float | None] | None) -> RetryPolicy:
    """Accept a policy, a duration (fixed), a list of durations, or a callable."""
    if value is None:
        return Exponential()
    if isinstance(value, RetryPolicy):
        return value
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        return Fixed(value)
    if isinstance(value, (list, tuple)):
        return Delays(value)
    if callable(value):
        return Custom(value)
    raise ValueError(f"invalid retry policy {value!r}")


def _non_negative(v: float, name: str) -> float:
    if v < 0:
        raise ValueError(f"{name} must not be negative, got {v}")
    return v
