"""Durations as users write them: ``90``, ``"90s"``, ``"1h30m"``, ``"1.5h"``, ``"250ms"``."""

from __future__ import annotations

import math
import re
from datetime import timedelta

Duration = float | int | str | timedelta

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(text: str) -> float:
    """Seconds in ``text``; raises ValueError naming the text when it is not a duration."""
    s = text.strip().replace(" ", "")
    if not s:
        raise ValueError("empty duration")
    try:
        return _finite(float(s), text)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for m in _PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s):
        raise ValueError(
            f"invalid duration {text!r}; write e.g. '90s', '1h30m', '1.5h', '250ms' or seconds"
        )
    return _finite(total, text)


def _finite(value: float, original: object) -> float:
    if not math.isfinite(value):
        raise ValueError(f"invalid duration {original!r}: not a finite number")
    return value


def to_seconds(value: Duration) -> float:
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (int, float)):
        return _finite(float(value), value)
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError(f"invalid duration {value!r}: expected seconds, a string like '1h30m' or a timedelta")


def to_timedelta(value: Duration) -> timedelta:
    return timedelta(seconds=to_seconds(value))


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    parts = []
    rest = int(round(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts) or "0s"
