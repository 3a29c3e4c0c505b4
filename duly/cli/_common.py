"""Shared CLI plumbing: choosing the App, printing tables or JSON, exit codes."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import click
from rich.console import Console

from duly.cli._app import app_options as app_options  # (re-exported for the commands)
from duly.cli._app import open_app as open_app
from duly.core.errors import DulyError

F = TypeVar("F", bound=Callable[..., Any])

#: Exit codes: 0 ok, 1 failure, 2 usage error (click), 3 not found, 4 conflict/invalid state.
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def fail(exc: Exception) -> None:
    from duly.core.errors import DuplicateKey, InvalidTransition, JobNotFound, TriggerNotFound

    err_console.print(f"[red]error:[/red] {exc}", markup=True)
    if isinstance(exc, (JobNotFound, TriggerNotFound)):
        sys.exit(EXIT_NOT_FOUND)
    if isinstance(exc, (InvalidTransition, DuplicateKey)):
        sys.exit(EXIT_CONFLICT)
    sys.exit(1)


def guarded(fn: F) -> F:
    """Turn duly errors into a message and a meaningful exit code."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DulyError as exc:
            fail(exc)

    return wrapper  # type: ignore[return-value]


def to_jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "value") and hasattr(value, "name"):  # enums
        return value.value
    if hasattr(value, "__dataclass_fields__"):
        return {k: to_jsonable(getattr(value, k)) for k in value.__dataclass_fields__}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def print_json(value: Any) -> None:
    click.echo(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False))


def when(dt: datetime | None) -> str:
    return dt.strftime("%Y-%m-%d %H:%M:%S") if dt else "-"


STATE_STYLE = {
    "scheduled": "cyan", "queued": "blue", "running": "yellow", "retrying": "magenta",
    "succeeded": "green", "failed": "red", "cancelled": "bright_black", "expired": "bright_black",
}  # fmt: skip
