"""Job arguments are JSON, checked at enqueue so nothing unreadable is ever stored."""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any

from duly.core.errors import InvalidArguments

#: Default limit on a job's serialised arguments (args and kwargs together).
DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024

_encoder = json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":"))


def _locate(value: Any, path: str) -> str | None:
    """Describe the first part of ``value`` that is not JSON, or None if all of it is."""
    if value is None or isinstance(value, (bool, int)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path} is {value!r}, which JSON cannot hold"
    if isinstance(value, str):
        if "\x00" in value:
            return f"{path} contains a NUL character"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"{path} is not valid UTF-8 text (it contains a lone surrogate)"
        return None
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = _locate(item, f"{path}[{i}]")
            if found:
                return found
        return None
    if isinstance(value, dict):
        for k, item in value.items():
            if not isinstance(k, str):
                return f"{path} has a key {k!r} of type {type(k).__name__}; JSON keys are strings"
            found = _locate(k, f"{path} key {k!r}") or _locate(item, f"{path}[{k!r}]")
            if found:
                return found
        return None
    return f"{path} is a {type(value).__name__}, which is not JSON"


#: A JSON string, or a number written with a positive exponent (``1e+16``).
_EXPONENT = re.compile(r'"(?:[^"\\]|\\.)*"|(-?\d+(?:\.\d+)?e\+\d+)')


def _exact_float(match: re.Match[str]) -> str:
    number = match.group(1)
    return match.group(0) if number is None else format(Decimal(number), "f") + ".0"


def keep_floats(text: str) -> str:
    """``text`` with floats like ``1e+16`` written ``10000000000000000.0``.

    PostgreSQL's jsonb keeps a number's digits after the point but not its exponent: stored as
    ``1e+16`` it reads back as the integer ``10000000000000000``, so a float argument would
    come back an int. Written in full with ``.0`` it reads back as the same float."""
    return _EXPONENT.sub(_exact_float, text) if "e+" in text else text


def _has_non_string_key(value: Any) -> bool:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            if not all(isinstance(k, str) for k in v):
                return True
            stack.extend(v.values())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
    return False


def dump_value(value: Any, what: str) -> str:
    """JSON text of ``value``; InvalidArguments naming ``what`` (and the part) otherwise."""
    problem = _locate(value, what)
    if problem:
        raise InvalidArguments(problem)
    return _encoder.encode(value)


_SEQUENCES = (list, tuple)


def dump_arguments(
    task: str,
    args: Any,
    kwargs: Any,
    max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
) -> tuple[str, str]:
    """Validate and serialise a job's arguments; the error names the task and the argument.

    ``args`` must be a list or tuple and ``kwargs`` a dict with string keys: anything else
    (a string, a set, a dict for args...) is refused, never converted."""
    # (types first: the truth value of an array-like object may itself raise)
    if type(args) in _SEQUENCES and type(kwargs) is dict and not args and not kwargs:
        return "[]", "{}"  # most jobs take no arguments: nothing to encode or check
    if not isinstance(args, (list, tuple)):
        raise InvalidArguments(f"args of task {task!r} must be a list or tuple, got {type(args).__name__}")
    if not isinstance(kwargs, dict):
        raise InvalidArguments(f"kwargs of task {task!r} must be a dict, got {type(kwargs).__name__}")
    if kwargs and not all(isinstance(name, str) for name in kwargs):
        bad = next(name for name in kwargs if not isinstance(name, str))
        raise InvalidArguments(f"kwargs of task {task!r}: keyword {bad!r} is not a string")
    try:
        a = _encoder.encode(args)
        k = _encoder.encode(kwargs)
        a.encode("utf-8")
        k.encode("utf-8")
        suspicious = "\\u0000" in a or "\\u0000" in k
        # the encoder turns int, float, bool and None dict keys into strings without a word
        suspicious = suspicious or (("{" in a or "{" in k[1:]) and _has_non_string_key([args, kwargs]))
    except (TypeError, ValueError, UnicodeEncodeError):
        suspicious = True
        a = k = ""
    if suspicious:
        # Slow path only when something may be wrong: find the argument to name.
        for i, v in enumerate(args):
            problem = _locate(v, f"argument {i}")
            if problem:
                raise InvalidArguments(f"task {task!r}: {problem}")
        for name, v in kwargs.items():
            if not isinstance(name, str):
                raise InvalidArguments(f"task {task!r}: keyword {name!r} is not a string")
            # the name too: a NUL in it is refused by PostgreSQL's jsonb (a raw DataError, a 500
            # through the API) and was stored as given on SQLite
            problem = _locate(name, f"keyword {name!r}") or _locate(v, f"argument {name!r}")
            if problem:
                raise InvalidArguments(f"task {task!r}: {problem}")
        if not a and not k:
            raise InvalidArguments(f"task {task!r}: arguments are not JSON")
    a, k = keep_floats(a), keep_floats(k)
    size = len(a) + len(k)
    if size > max_bytes // 4 and len(a.encode()) + len(k.encode()) > max_bytes:
        raise InvalidArguments(
            f"task {task!r}: arguments take {len(a.encode()) + len(k.encode())} bytes as JSON, "
            f"over the limit of {max_bytes} bytes (App(max_payload_bytes=...))"
        )
    return a, k


def load_args(text: str) -> list[Any]:
    """Stored positional arguments (most jobs have none: no parser for those)."""
    return [] if text == "[]" else json.loads(text)


def load_kwargs(text: str) -> dict[str, Any]:
    """Stored keyword arguments (most jobs have none: no parser for those)."""
    return {} if text == "{}" else json.loads(text)


def load(text: str | bytes | None) -> Any:
    if text is None:
        return None
    return json.loads(text)
