"""A fresh schema (schema.sql) equals every migration applied in turn, on both backends."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

import duly
from duly.core.clock import SystemClock
from duly.store import _sql
from tests.conftest import Backend, drop_prefix


def _norm(sql: str | None) -> str:
    return re.sub(r"\s+", " ", sql or "").strip()


def sqlite_catalog(path: Path) -> list[tuple[Any, ...]]:
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
        return sorted((t, n, tbl, _norm(sql)) for t, n, tbl, sql in rows)


def postgres_catalog(url: str, prefix: str) -> list[tuple[Any, ...]]:
    import psycopg

    like = prefix.replace("_", r"\_") + "%"
    with psycopg.connect(url) as conn:
        rows: list[tuple[Any, ...]] = []
        for query in (
            """SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity
               FROM information_schema.columns WHERE table_schema = current_schema() AND table_name LIKE %s""",
            "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename LIKE %s",
            """SELECT conrelid::regclass::text, contype::text, pg_get_constraintdef(oid) FROM pg_constraint
               WHERE conrelid::regclass::text LIKE %s""",
            "SELECT stxname, stxkeys::text, stxkind::text FROM pg_statistic_ext WHERE stxname LIKE %s",
        ):
            rows.extend(conn.execute(query, (like,)).fetchall())
    return sorted(tuple(x.replace(prefix, "<p>") if isinstance(x, str) else x for x in row) for row in rows)


def test_fresh_schema_equals_all_migrations_applied(backend: Backend, tmp_path: Path) -> None:
    if backend.name == "sqlite":
        from duly.store.sqlite import SQLiteStore

        fresh = SQLiteStore(f"sqlite:///{tmp_path / 'fresh.db'}", SystemClock())
        assert fresh.schema_version() == _sql.load_migrations("duly.store.sqlite")[-1][0]
        fresh.close()
        stepwise = SQLiteStore(f"sqlite:///{tmp_path / 'step.db'}", SystemClock(), auto_migrate=False)
        assert stepwise.migrate(stepwise=True) == [v for v, _ in _sql.load_migrations("duly.store.sqlite")]
        stepwise.close()
        assert sqlite_catalog(tmp_path / "step.db") == sqlite_catalog(tmp_path / "fresh.db")
    else:
        from duly.store.postgres import PostgresStore

        a, b = f"m{secrets.token_hex(3)}_", f"m{secrets.token_hex(3)}_"
        try:
            PostgresStore(backend.url, SystemClock(), prefix=a, auto_migrate=True).close()
            stepwise = PostgresStore(backend.url, SystemClock(), prefix=b, check_schema=False)
            assert stepwise.migrate(stepwise=True) == [v for v, _ in _sql.load_migrations("duly.store.postgres")]
            stepwise.close()
            assert postgres_catalog(backend.url, a) == postgres_catalog(backend.url, b)
        finally:
            drop_prefix(backend.url, a)
            drop_prefix(backend.url, b)


def test_migrating_an_up_to_date_schema_changes_nothing(backend: Backend) -> None:
    app: duly.App = backend.app()
    assert app.migrate() == []
    package = f"duly.store.{backend.name}"
    assert app.store.schema_version() == _sql.load_migrations(package)[-1][0]
