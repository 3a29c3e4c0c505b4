"""The options that choose an App, and opening it; light on purpose (click only, duly on
first use), so ``duly worker --processes N`` starts its children without importing duly's
runtime, the database driver or rich first."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from duly.app import App

F = TypeVar("F", bound=Callable[..., Any])


def app_options(fn: F) -> F:
    fn = click.option("--url", envvar="DULY_DATABASE_URL", help="Database URL (default sqlite:///duly.db).")(fn)
    fn = click.option("--app", "app_path", envvar="DULY_APP", help="module:attribute of your App (tasks, hooks).")(fn)
    fn = click.option("--prefix", default="duly_", show_default=True, help="Table name prefix.")(fn)
    return fn


def open_app(app_path: str | None, url: str | None, prefix: str = "duly_") -> App:
    from duly.app import App
    from duly.runtime.isolation import load_app

    try:
        if app_path:
            app = load_app(app_path)
            if not isinstance(app, App):
                raise click.UsageError(f"{app_path} is a {type(app).__name__}, not a duly.App")
            return app
        return App(url, prefix=prefix)
    except (ValueError, ImportError) as exc:
        raise click.UsageError(str(exc)) from None
