"""Connecting to PostgreSQL: URLs, the first connection's errors, and callers' connections."""

from __future__ import annotations

import select
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.pq import ExecStatus
from psycopg.rows import tuple_row

from duly.core.errors import ConfigurationError, DatabaseUnavailable
from duly.store.url import redact_url, secrets_in

TUPLES_OK = ExecStatus.TUPLES_OK

#: Seconds libpq waits for a server before giving up (unless the URL sets connect_timeout).
CONNECT_TIMEOUT = 10


def normalise_url(url: str) -> str:
    """A libpq URL: ``postgres://`` and ``postgresql+driver://`` become ``postgresql://``."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise DatabaseUnavailable(f"unparseable PostgreSQL URL {redact_url(url)}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme == "postgresql":
        return url
    if scheme == "postgres" or scheme.startswith("postgresql+"):
        return urlunsplit(parts._replace(scheme="postgresql"))
    raise ConfigurationError(
        f"not a PostgreSQL URL: {redact_url(url)}; write postgresql://user@host/dbname"
    )


def connect_kwargs(url: str) -> dict[str, Any]:
    """Options of every connection the store opens itself (autocommit: each verb decides)."""
    kwargs: dict[str, Any] = {"autocommit": True}
    if "options" not in url:
        # Timestamps arrive as UTC datetimes, with nothing to convert per row. Batches of
        # ids are planned as primary-key probes: with the default random_page_cost (4, a
        # spinning disk's) the planner scanned a table of some 30,000 jobs whole, once per
        # batch of 1,000, rather than probe its index; 1.1 is the usual value for SSDs and
        # for tables in memory, where a queue's hot rows are.
        kwargs["options"] = "-c TimeZone=UTC -c random_page_cost=1.1"
    if "connect_timeout" not in url:
        kwargs["connect_timeout"] = CONNECT_TIMEOUT
    return kwargs


def scrub(message: str, url: str) -> str:
    """``message`` without the URL's passwords, should the driver ever repeat them."""
    for secret in sorted(secrets_in(url), key=len, reverse=True):
        message = message.replace(secret, "***")
    return message


def unavailable(url: str, exc: BaseException) -> DatabaseUnavailable:
    detail = scrub(str(exc).strip(), url) or type(exc).__name__
    return DatabaseUnavailable(f"cannot connect to PostgreSQL at {redact_url(url)}: {detail}")


def first_connection(url: str) -> psycopg.Connection[Any]:
    """A connection that proves the URL works, or DatabaseUnavailable naming the URL."""
    try:
        return psycopg.connect(url, **connect_kwargs(url))
    except psycopg.Error as exc:
        raise unavailable(url, exc) from None


def caller_connection(conn: Any) -> psycopg.Connection[Any]:
    """The psycopg connection of a caller's psycopg / SQLAlchemy connection or session."""
    if isinstance(conn, psycopg.Connection):
        return conn
    from duly.store._caller import dbapi_connection

    raw = dbapi_connection(conn)
    if not isinstance(raw, psycopg.Connection):
        raise ConfigurationError(
            "conn= must be a psycopg 3 connection (or a SQLAlchemy one using psycopg), "
            f"got {type(raw).__name__}"
        )
    return raw


def fetch(
    conn: psycopg.Connection[Any], query: str, params: dict[str, Any], prepare: bool | None = None
) -> list[tuple[Any, ...]]:
    """Execute on ``conn`` with plain tuple rows (whatever the caller's row factory is)."""
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute(query, params, prepare=prepare)
        # (not ``cur.description``: it builds a Column object per column on every call)
        res = cur.pgresult
        return cur.fetchall() if res is not None and res.status == TUPLES_OK else []


def alive(conn: psycopg.Connection[Any]) -> bool:
    """Whether an idle pooled connection still works, without a round trip when it can tell.

    An idle connection has nothing to read; when its socket is readable the server has sent
    something (most often: it terminated the backend and closed the socket), and one empty
    query tells a live connection from a dead one.
    """
    if conn.closed or conn.broken:
        return False
    try:
        if _readable(conn.fileno()):
            conn.execute("")
    except (psycopg.Error, OSError, ValueError):
        return False
    return True


def _readable(fd: int) -> bool:
    """Whether ``fd`` has input (or a hang-up) pending, without waiting."""
    if hasattr(select, "poll"):  # no FD_SETSIZE limit, unlike select()
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    readable, _, _ = select.select([fd], [], [], 0)
    return bool(readable)
