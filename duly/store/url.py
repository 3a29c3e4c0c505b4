"""Database URLs: parse, redact, and open the matching store."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from duly.core.clock import Clock
from duly.core.errors import ConfigurationError

if TYPE_CHECKING:
    from duly.store.base import Store

ENV_VAR = "DULY_DATABASE_URL"
DEFAULT_URL = "sqlite:///duly.db"


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (safe to print)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[-1]}"))


def resolve_url(url: str | None) -> str:
    return url or os.environ.get(ENV_VAR) or DEFAULT_URL


def open_store(url: str | None, clock: Clock, prefix: str = "duly_", auto_migrate: bool = False) -> Store:
    url = resolve_url(url)
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        from duly.store.sqlite import SQLiteStore

        return SQLiteStore(url, clock=clock, prefix=prefix)
    if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
        import importlib.util

        if importlib.util.find_spec("psycopg") is None or importlib.util.find_spec("psycopg_pool") is None:
            raise ConfigurationError(
                f"database URL {redact_url(url)} needs PostgreSQL support: "
                "pip install 'duly[postgres]'"
            )
        from duly.store.postgres import PostgresStore

        return PostgresStore(url, clock=clock, prefix=prefix, auto_migrate=auto_migrate)
    raise ConfigurationError(
        f"unsupported database URL {redact_url(url)!r}: expected sqlite:///path.db "
        "or postgresql://user@host/dbname"
    )
