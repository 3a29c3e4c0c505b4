"""Enqueue inside the caller's transaction: the job exists iff the caller commits."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy.orm import Session

import duly
from tests.conftest import Backend


def _sqlalchemy_url(backend: Backend) -> str:
    if backend.name == "sqlite":
        return backend.url
    return backend.url.replace("postgresql://", "postgresql+psycopg://", 1)


@contextmanager
def raw_connection(backend: Backend) -> Iterator[Any]:
    if backend.name == "sqlite":
        conn = sqlite3.connect(backend.url.removeprefix("sqlite:///"), timeout=10)
        try:
            yield conn
        finally:
            conn.close()
    else:
        import psycopg

        with psycopg.connect(backend.url) as conn:
            yield conn


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_enqueue_on_the_driver_connection(backend: Backend, outcome: str) -> None:
    app = backend.app()
    app.store  # create the schema first  # noqa: B018
    with raw_connection(backend) as conn:
        if backend.name == "sqlite":
            conn.execute("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY)")
        else:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {backend.prefix}orders (id serial PRIMARY KEY)")
        conn.commit()
        table = "orders" if backend.name == "sqlite" else f"{backend.prefix}orders"
        conn.execute(f"INSERT INTO {table} DEFAULT VALUES")
        job = app.enqueue("send_receipt", args=[1], conn=conn)
        assert job.id > 0
        getattr(conn, outcome)()
        orders = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    jobs = app.jobs()
    if outcome == "commit":
        assert [j.id for j in jobs] == [job.id] and orders == 1
    else:
        assert jobs == [] and orders == 0


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
@pytest.mark.parametrize("kind", ["connection", "session"])
def test_enqueue_on_a_sqlalchemy_connection_or_session(backend: Backend, outcome: str, kind: str) -> None:
    app = backend.app()
    app.store  # noqa: B018
    engine = sqlalchemy.create_engine(_sqlalchemy_url(backend))
    try:
        if kind == "session":
            with Session(engine) as session:
                job = app.enqueue("send_receipt", args=[2], conn=session)
                (session.commit if outcome == "commit" else session.rollback)()
        else:
            with engine.connect() as conn:
                job = app.enqueue("send_receipt", args=[2], conn=conn)
                (conn.commit if outcome == "commit" else conn.rollback)()
    finally:
        engine.dispose()
    expected = [job.id] if outcome == "commit" else []
    assert [j.id for j in app.jobs()] == expected


def test_bulk_enqueue_in_the_callers_transaction_rolls_back_whole(backend: Backend) -> None:
    app = backend.app()
    app.store  # noqa: B018
    with raw_connection(backend) as conn:
        app.enqueue_many([duly.Enqueue("t", args=[i]) for i in range(500)], conn=conn)
        conn.rollback()
    assert app.jobs() == []
    with raw_connection(backend) as conn:
        app.enqueue_many([duly.Enqueue("t", args=[i]) for i in range(500)], conn=conn)
        conn.commit()
    assert len(app.jobs(limit=1000)) == 500


def test_unsupported_conn_is_refused(app: duly.App) -> None:
    with pytest.raises(duly.ConfigurationError, match="conn="):
        app.enqueue("t", conn=object())
    assert app.jobs() == []


def test_task_options_take_the_conn(backend: Backend) -> None:
    app = backend.app()

    @app.task
    def receipt(order: int) -> None: ...

    app.store  # noqa: B018
    with raw_connection(backend) as conn:
        receipt.options(conn=conn).enqueue(7)
        conn.rollback()
    assert app.jobs() == []


def test_wake_up_callbacks_run_on_the_stores_thread_and_may_use_the_store(backend: Backend) -> None:
    """``subscribe``'s callback never runs in the thread that enqueued (on SQLite that
    thread may still hold its transaction open): it runs on a thread of the store's, and
    may call the store there; a worker claims from it."""
    app = backend.app()
    seen: list[tuple[str, int]] = []
    done = threading.Event()

    def callback(_queue: str) -> None:
        seen.append((threading.current_thread().name, len(app.jobs())))
        done.set()

    unsubscribe = app.store.subscribe(callback)
    try:
        with raw_connection(backend) as conn:
            app.enqueue("send_receipt", args=[1], conn=conn)
            conn.commit()
        assert done.wait(10), "no wake-up arrived"
        done.clear()
        app.enqueue("send_receipt", args=[2])
        assert done.wait(10), "no wake-up arrived"
    finally:
        unsubscribe()
    me = threading.current_thread().name
    assert seen and all(name != me for name, _ in seen), seen
    assert max(n for _, n in seen) == 2


def test_a_doorbell_without_sockets_rings_its_listeners_on_their_own_threads() -> None:
    """SQLite's ":memory:" database has no socket folder: its listeners are rung in process,
    still each on a thread of its own; a stopped one is never called again."""
    from duly.store.sqlite.wake import Doorbell

    bell = Doorbell(":memory:")
    seen: list[str] = []
    rung = threading.Event()

    def callback(_queue: str) -> None:
        seen.append(threading.current_thread().name)
        rung.set()

    stop = bell.listen(callback)
    bell.ring()
    assert rung.wait(10), "no ring arrived"
    stop()
    bell.ring()
    bell.close()
    assert seen == ["duly-doorbell"]
