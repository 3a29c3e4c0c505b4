"""Reach the DB-API connection behind a caller's SQLAlchemy Connection or Session."""

from __future__ import annotations

from typing import Any

from duly.core.errors import ConfigurationError


def dbapi_connection(conn: Any) -> Any:
    """The driver connection of a SQLAlchemy ``Connection`` or ``Session`` (same transaction)."""
    try:
        from sqlalchemy.engine import Connection
        from sqlalchemy.orm import Session
    except ImportError:  # pragma: no cover - SQLAlchemy not installed
        raise ConfigurationError(f"unsupported conn= object of type {type(conn).__name__}") from None
    if isinstance(conn, Session):
        conn = conn.connection()
    if isinstance(conn, Connection):
        if not conn.in_transaction():
            conn.begin()  # so that the caller's commit() / rollback() covers the job
        raw = conn.connection.driver_connection
        if raw is None:
            raise ConfigurationError("the SQLAlchemy connection is closed")
        return raw
    raise ConfigurationError(
        f"conn= must be a sqlite3 or psycopg connection, or a SQLAlchemy Connection/Session; "
        f"got {type(conn).__name__}"
    )
