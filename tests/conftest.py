"""Fixtures: every contract test runs on a SQLite file and on a real PostgreSQL.

PostgreSQL comes from ``$DULY_TEST_PG_URL``; without it the tests start their own server
with ``pgserver``. Under ``CI=true`` a PostgreSQL that cannot be reached fails the run.
Each test gets its own tables (a fresh SQLite file, or a unique table prefix on PostgreSQL).
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import duly
from duly.core.clock import VirtualClock

T0 = datetime(2030, 1, 7, 9, 0, 0, tzinfo=UTC)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

_pg_url: str | None = None
_pg_server: Any = None


def pg_url() -> str:
    """The PostgreSQL URL for tests, starting a private server when none is configured."""
    global _pg_url, _pg_server
    if _pg_url:
        return _pg_url
    url = os.environ.get("DULY_TEST_PG_URL")
    if not url:
        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR
                import pgserver

                _pg_server = pgserver.get_server(tempfile.mkdtemp(prefix="duly-pg-"), cleanup_mode="stop")
                url = _pg_server.get_uri()
        except Exception as exc:  # noqa: BLE001
            if IN_CI:
                pytest.fail(f"CI=true and no PostgreSQL: set DULY_TEST_PG_URL ({exc})")
            pytest.skip(f"no PostgreSQL available: {exc}")
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=5).close()
    except Exception as exc:  # noqa: BLE001
        if IN_CI:
            pytest.fail(f"CI=true and PostgreSQL at DULY_TEST_PG_URL is unreachable: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    _pg_url = url
    return url


def drop_prefix(url: str, prefix: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE %s",
            (prefix.replace("_", r"\_") + "%",),
        ).fetchall()
        for (name,) in rows:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(name)))


class Backend:
    """Where a test's database lives: ``url`` and ``prefix`` build Apps on it."""

    def __init__(self, name: str, url: str, prefix: str) -> None:
        self.name = name
        self.url = url
        self.prefix = prefix
        self.apps: list[duly.App] = []

    def app(self, clock: duly.Clock | None = None, **kw: Any) -> duly.App:
        app = duly.App(self.url, clock=clock, prefix=self.prefix, auto_migrate=True, **kw)
        self.apps.append(app)
        return app

    def close(self) -> None:
        for app in self.apps:
            app.close()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        b = Backend("sqlite", f"sqlite:///{tmp_path / 'duly.db'}", "duly_")
        yield b
        b.close()
    else:
        url = pg_url()
        prefix = f"t{secrets.token_hex(4)}_"
        b = Backend("postgres", url, prefix)
        yield b
        b.close()
        drop_prefix(url, prefix)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(T0)


@pytest.fixture
def app(backend: Backend, clock: VirtualClock) -> duly.App:
    """An App on a fresh database of each backend, under a virtual clock at ``T0``."""
    return backend.app(clock)


@pytest.fixture
def make_app(backend: Backend) -> Callable[..., duly.App]:
    return backend.app
