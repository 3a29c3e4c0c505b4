"""Database URLs: parse, redact, and open the matching store."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING
from urllib.parse import unquote, unquote_plus, urlsplit, urlunsplit

from duly.core.clock import Clock
from duly.core.errors import ConfigurationError

if TYPE_CHECKING:
    from duly.store.base import Store

ENV_VAR = "DULY_DATABASE_URL"
DEFAULT_URL = "sqlite:///duly.db"


#: Connection parameters that hold secrets, in a URL's query string or a keyword string.
SECRET_KEYS = frozenset({"password", "sslpassword"})

#: ``password=value`` in a libpq keyword string; a value may be single-quoted with escapes.
_KEYWORD_SECRET = re.compile(r"(?<![\w.])((?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'?|\S*)", re.IGNORECASE)
#: A URL starts with a scheme; anything else is taken for a libpq keyword string.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (safe to print).

    Covers the password of ``user:password@host``, ``password=`` (and ``sslpassword=``) in
    the query string, and ``password=...`` in a libpq keyword string (``host=... password=...``).
    """
    if not _SCHEME.match(url):
        return _KEYWORD_SECRET.sub(r"\1***", url)
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparseable URL>"
    if password is not None:
        host = parts.netloc.rsplit("@", 1)[-1]
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
    if parts.query:
        parts = parts._replace(query="&".join(_redact_pair(p) for p in parts.query.split("&")))
    return urlunsplit(parts)


def _redact_pair(pair: str) -> str:
    key, eq, _ = pair.partition("=")
    return f"{key}=***" if eq and unquote_plus(key).strip().lower() in SECRET_KEYS else pair


def secrets_in(url: str) -> set[str]:
    """Every password the URL carries, as written and decoded (to scrub from driver messages)."""
    found: set[str] = set()
    if not _SCHEME.match(url):
        for m in _KEYWORD_SECRET.finditer(url):
            value = m.group(2)
            if value.startswith("'"):
                value = re.sub(r"\\(.)", r"\1", value.strip("'"))
            found.add(value)
    else:
        try:
            parts = urlsplit(url)
            if parts.password:
                found |= {parts.password, unquote(parts.password)}
        except ValueError:
            return found
        for pair in parts.query.split("&"):
            key, _, value = pair.partition("=")
            if unquote_plus(key).strip().lower() in SECRET_KEYS:
                found |= {value, unquote_plus(value)}
    return {s for s in found if s}


def backend_of(url: str) -> str:
    """``"sqlite"`` or ``"postgres"`` for a database URL; ConfigurationError otherwise.

    PostgreSQL URLs: ``postgresql://``, ``postgres://`` and ``postgresql+driver://`` (the
    SQLAlchemy spelling, e.g. ``postgresql+psycopg://``)."""
    scheme = url.split(":", 1)[0].lower() if _SCHEME.match(url) else ""
    if scheme == "sqlite":
        return "sqlite"
    if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
        return "postgres"
    raise ConfigurationError(
        f"unsupported database URL {redact_url(url)!r}: expected sqlite:///path.db "
        "or postgresql://user@host/dbname"
    )


def resolve_url(url: str | None) -> str:
    return url or os.environ.get(ENV_VAR) or DEFAULT_URL


def open_store(url: str | None, clock: Clock, prefix: str = "duly_", auto_migrate: bool = False) -> Store:
    url = resolve_url(url)
    if backend_of(url) == "sqlite":
        from duly.store.sqlite import SQLiteStore

        return SQLiteStore(url, clock=clock, prefix=prefix)
    import importlib.util

    if importlib.util.find_spec("psycopg") is None or importlib.util.find_spec("psycopg_pool") is None:
        raise ConfigurationError(
            f"database URL {redact_url(url)} needs PostgreSQL support: "
            "pip install 'duly[postgres]'"
        )
    from duly.store.postgres import PostgresStore

    return PostgresStore(url, clock=clock, prefix=prefix, auto_migrate=auto_migrate)
