"""Triggers declared in code (``@app.on_event``, ``@app.periodic``) exist before the
process's first scheduler tick, on both backends: an event emitted, a webhook fired, a
"run now" or a read made first finds them (before, an event emitted before the first tick
was lost). Also an event emitted inside the caller's write transaction on SQLite."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from typing import Any

import pytest

import duly
from duly.testing import drain
from tests.conftest import T0, Backend


def jobs_of(app: duly.App, task: str) -> list[duly.Job]:
    return sorted(app.jobs(task=task, limit=1000), key=lambda j: j.id)


def test_on_event_trigger_gets_an_event_emitted_before_the_first_tick(app: duly.App) -> None:
    seen: list[Any] = []

    @app.on_event("order.*", filter={"status": "paid"}, name="paid-orders")
    def on_paid(event: dict[str, Any]) -> None:
        seen.append(event["data"]["id"])

    made = app.emit("order.created", {"id": 1, "status": "paid"})  # no tick has run
    assert len(made) == 1
    assert app.emit("order.created", {"id": 2, "status": "new"}) == []  # the filter holds
    job = app.get_job(made[0])
    assert job.task == on_paid.name and job.trigger_id == app.trigger("paid-orders").id
    drain(app, advance=False)
    assert seen == [1]


def test_debounced_on_event_trigger_opens_its_window_before_the_first_tick(
    app: duly.App, clock: duly.VirtualClock
) -> None:
    batches: list[list[int]] = []

    @app.on_event("doc.updated", debounce="5s", name="reindex")
    def reindex(events: list[dict[str, Any]]) -> None:
        batches.append([e["data"]["n"] for e in events])

    assert app.emit("doc.updated", {"n": 1}) == []  # collected into a window, no tick yet
    clock.advance(seconds=2)
    app.emit("doc.updated", {"n": 2})
    assert app.trigger("reindex").next_fire_at == T0 + timedelta(seconds=5)
    drain(app, until=T0 + timedelta(minutes=1))
    assert batches == [[1, 2]]


def test_declared_triggers_are_found_by_every_verb_before_the_first_tick(backend: Backend) -> None:
    """Each verb on a fresh App (a fresh process): run now, pause, reading, state, upcoming."""

    def fresh() -> duly.App:
        a = backend.app(duly.VirtualClock(T0))
        a.periodic(every="1h", name="hourly")(lambda: None)
        return a

    first = fresh()
    assert first.run_trigger("hourly").trigger_id is not None
    assert fresh().trigger("hourly").next_fire_at == T0 + timedelta(hours=1)
    assert fresh().trigger_state("hourly").last_manual_job_id is not None
    assert fresh().upcoming("hourly", 2) == [T0 + timedelta(hours=1), T0 + timedelta(hours=2)]
    assert fresh().pause_trigger("hourly").paused
    assert fresh().scheduler.next_fire_at() is None  # paused: declaring again keeps it so


def test_event_emitted_inside_a_sqlite_write_transaction_before_the_first_tick(backend: Backend) -> None:
    """The caller's transaction holds SQLite's write lock: the declared trigger is written
    in it (a write on another connection would wait for the lock, then fail), and rolled
    back with it; it is stored for good at the next use outside the transaction."""
    if backend.name != "sqlite":
        pytest.skip("SQLite's write lock")
    app = duly.App(backend.url + "?busy_timeout=200", clock=duly.VirtualClock(T0), prefix=backend.prefix)
    backend.apps.append(app)
    app.on_event("user.created", name="welcome")(lambda event: None)
    app.store  # noqa: B018  (open and migrate first, as a running application has)
    conn = sqlite3.connect(backend.url.removeprefix("sqlite:///"), timeout=0.2)
    try:
        conn.execute("CREATE TABLE users (id INTEGER)")
        conn.execute("INSERT INTO users VALUES (1)")  # the caller's transaction: write lock held
        assert len(app.emit("user.created", {"id": 1}, conn=conn)) == 1
        conn.rollback()  # the job, and the trigger written in the transaction, go with it
        conn.execute("INSERT INTO users VALUES (2)")
        (job_id,) = app.emit("user.created", {"id": 2}, conn=conn)
        conn.commit()
    finally:
        conn.close()
    assert [j.kwargs["event"]["data"]["id"] for j in jobs_of(app, "welcome")] == [2]
    assert app.get_job(job_id).trigger_id == app.trigger("welcome").id
    assert [t.name for t in app.triggers()] == ["welcome"]


def test_event_emitted_in_the_callers_postgres_transaction_before_the_first_tick(backend: Backend) -> None:
    if backend.name != "postgres":
        pytest.skip("PostgreSQL")
    import psycopg

    app = backend.app(duly.VirtualClock(T0))
    app.on_event("user.created", name="welcome")(lambda event: None)
    with psycopg.connect(backend.url) as conn:
        (job_id,) = app.emit("user.created", {"id": 1}, conn=conn)
        conn.rollback()  # the job goes; the trigger was stored on duly's own connection
        assert app.trigger("welcome").declared
        (job_id,) = app.emit("user.created", {"id": 2}, conn=conn)
        conn.commit()
    assert [j.kwargs["event"]["data"]["id"] for j in jobs_of(app, "welcome")] == [2]
