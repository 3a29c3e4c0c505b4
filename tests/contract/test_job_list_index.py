"""The job list's filters stay cheap on a big table, on both backends: a filter by task
walks the ``(task, id)`` index (migration 5), and a filter by queue and/or state collects
its matches from the ``(queue, state, run_at)`` index per known queue, so neither reads the
table when nothing (or little) matches. The pages are the same as a plain scan's.

The work is measured, not timed: SQLite's virtual machine steps (a progress handler on the
store's connection) and PostgreSQL's per-table counters (``pg_stat_user_tables``, flushed
when the measuring App's connections end)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from datetime import timedelta

import pytest

import duly
from duly.core.states import JobState
from duly.store import admin as store_admin
from tests.conftest import Backend
from tests.helpers import claim_one, fail, succeed, wait_until

def bulk_finished(backend: Backend, n: int) -> None:
    """``n`` succeeded jobs of task ``bulk.task`` in five queues (setup only: plain SQL)."""
    backend.app().store  # noqa: B018 - the schema
    table = backend.prefix + "jobs"
    if backend.name == "sqlite":
        path = backend.url.removeprefix("sqlite:///")
        with closing(sqlite3.connect(path, isolation_level=None)) as conn:  # (its own `with` does not close)
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                f"""WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < ?)
                INSERT INTO "{table}" (task, queue, args, kwargs, state, run_at, attempt, max_attempts,
                    lease_seconds, created_at, updated_at, finished_at)
                SELECT 'bulk.task', 'q' || (x % 5), '[]', '{{}}', 'succeeded', x, 1, 5, 60.0, x, x, x + 1
                FROM g""",  # nosec B608 - the test's own table name
                (n,),
            )
            conn.execute("COMMIT")
        return
    import psycopg
    from psycopg import sql

    with psycopg.connect(backend.url, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                """INSERT INTO {} (task, queue, args, kwargs, state, run_at, attempt, max_attempts,
                    lease_seconds, created_at, updated_at, finished_at)
                SELECT 'bulk.task', 'q' || (x %% 5), '[]', '{{}}', 'succeeded', now() - interval '1 day',
                       1, 5, 60.0, now() - interval '1 day', now() - interval '1 day', now() - interval '1 day'
                FROM generate_series(1, %s) AS x"""
            ).format(sql.Identifier(table)),
            (n,),
        )
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))


def sqlite_steps(app: duly.App, call: Callable[[], object]) -> int:
    """Virtual machine instructions (in hundreds) SQLite runs for ``call``."""
    steps = [0]

    def tick() -> int:
        steps[0] += 1
        return 0

    conn = app.store._conn  # type: ignore[attr-defined]
    conn.set_progress_handler(tick, 100)
    try:
        call()
    finally:
        conn.set_progress_handler(None, 100)
    return steps[0]


def pg_reads(backend: Backend, call: Callable[[duly.App], object]) -> dict[str, int]:
    """What the jobs table gave to ``call``: sequential scans, the rows they read, and the
    table's and its indexes' pages visited. ``call`` runs on an App of its own, closed
    afterwards, so its connections' counters reach the statistics (a backend flushes them at
    exit)."""
    import psycopg

    table = backend.prefix + "jobs"
    query = """SELECT t.seq_scan, t.seq_tup_read, coalesce(t.idx_scan, 0),
                      coalesce(io.heap_blks_hit, 0) + coalesce(io.heap_blks_read, 0),
                      coalesce(io.idx_blks_hit, 0) + coalesce(io.idx_blks_read, 0)
               FROM pg_stat_user_tables AS t JOIN pg_statio_user_tables AS io USING (relid)
               WHERE t.relname = %s"""

    def read() -> tuple[int, ...]:
        with psycopg.connect(backend.url, autocommit=True) as conn:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            row = conn.execute(query, (table,)).fetchone()
            assert row is not None
            return tuple(int(v) for v in row)

    before = read()
    app = duly.App(backend.url, prefix=backend.prefix, auto_migrate=False)
    call(app)
    app.close()
    # every path reads at least one index (the queue names, or the task index)
    after = wait_until(lambda: (r := read())[2] > before[2] and r, timeout=30, what="the table's counters")
    return {"seq_scan": after[0] - before[0], "seq_read": after[1] - before[1],
            "heap_pages": after[3] - before[3], "index_pages": after[4] - before[4]}  # fmt: skip


def pg_pages(backend: Backend) -> dict[str, int]:
    """The pages of the jobs table and of its (queue, state, run_at) index."""
    import psycopg

    with psycopg.connect(backend.url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_relation_size(%s::regclass) / 8192, pg_relation_size(%s::regclass) / 8192",
                           (backend.prefix + "jobs", backend.prefix + "jobs_queue_state")).fetchone()  # fmt: skip
        assert row is not None
        return {"heap": int(row[0]), "queue_state": int(row[1])}


@pytest.fixture
def settled(backend: Backend) -> Backend:
    """A big table (20,000 jobs on SQLite, 300,000 on PostgreSQL: enough that a walk of a
    whole index stands out from the probes' fixed cost) whose setup counters have reached
    pg_stat_user_tables."""
    n = 20_000 if backend.name == "sqlite" else 300_000
    bulk_finished(backend, n)
    if backend.name == "postgres":
        import psycopg

        def inserted() -> bool:
            with psycopg.connect(backend.url, autocommit=True) as conn:
                conn.execute("SELECT pg_stat_clear_snapshot()")
                row = conn.execute("SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = %s",
                                   (backend.prefix + "jobs",)).fetchone()  # fmt: skip
                return row is not None and row[0] >= n

        wait_until(inserted, timeout=30, what="the bulk insert's counters")
    return backend


#: Filters that match nothing in the big table (the overview's cards link to /jobs?state=X).
NOTHING = [{"state": "expired"}, {"task": "no.such.task"}, {"queue": "q3", "state": "failed"}, {"queue": "nobody"}]


def test_a_filter_matching_nothing_reads_no_table(settled: Backend) -> None:
    if settled.name == "sqlite":
        app = settled.app()
        for filters in NOTHING:
            assert app.jobs(**filters) == []
            # reading the 20,000 rows would take at least 20,000 instructions (200 here)
            work = sqlite_steps(app, lambda f=filters: app.jobs(**f))  # type: ignore[misc]
            assert work < 50, (filters, work)
        return
    whole = pg_pages(settled)
    for filters in NOTHING:
        reads = pg_reads(settled, lambda app, f=filters: app.jobs(**f))  # type: ignore[misc]
        assert reads["seq_scan"] == 0 and reads["seq_read"] == 0, (filters, reads)
        # less than a walk of the whole (queue, state, run_at) index alone would visit
        assert reads["heap_pages"] + reads["index_pages"] < whole["queue_state"], (filters, reads, whole)


def test_a_few_matches_among_many_are_found_through_the_index(settled: Backend) -> None:
    """Three expired jobs, the newest of a big table, and a task with three jobs."""
    app = settled.app()
    for _ in range(3):
        app.enqueue("rare.task", queue="q1", expires_in=1)
    # expired: their expiry passed (a virtual clock ahead) and the rescue pass ended them
    later = settled.app(duly.VirtualClock(app.store.now() + timedelta(seconds=30)))
    later.store.rescue()
    expired = app.jobs(state="expired")
    assert len(expired) == 3 and {j.task for j in expired} == {"rare.task"}
    assert [j.id for j in app.jobs(task="rare.task")] == [j.id for j in expired]
    if settled.name == "sqlite":
        for filters in ({"state": "expired"}, {"task": "rare.task"}):
            work = sqlite_steps(app, lambda f=filters: app.jobs(**f))  # type: ignore[misc]
            assert work < 50, (filters, work)
        return
    whole = pg_pages(settled)
    for filters in ({"state": "expired"}, {"task": "rare.task"}):
        reads = pg_reads(settled, lambda a, f=filters: a.jobs(**f))  # type: ignore[misc]
        assert reads["seq_read"] == 0, (filters, reads)
        assert reads["heap_pages"] + reads["index_pages"] < whole["queue_state"], (filters, reads, whole)


def _everything(app: duly.App) -> list[duly.Job]:
    out: list[duly.Job] = []
    before = None
    while page := app.jobs(before_id=before, limit=7):
        out += page
        before = page[-1].id
    return out


def _pages(app: duly.App, **filters: str) -> list[int]:
    out: list[int] = []
    before = None
    while page := app.jobs(before_id=before, limit=3, **filters):
        out += [j.id for j in page]
        before = page[-1].id
    return out


@pytest.mark.parametrize("cap", [10_000, 2], ids=["few-matches", "many-matches"])
def test_filtered_pages_equal_a_plain_scan(backend: Backend, cap: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every state, queue and both together, paged three at a time, give the jobs a plain
    scan gives, in id order; ``cap`` 2 takes the path for many matches."""
    monkeypatch.setattr(store_admin, "INDEX_WALK_CAP", cap)
    app = backend.app()
    for i in range(24):
        app.enqueue("t", queue=("mail", "images", "reports")[i % 3], run_in=3600 if i % 5 == 0 else None)
    for _ in range(3):
        succeed(app, claim_one(app))
    fail(app, claim_one(app), retry_in=None)
    fail(app, claim_one(app), retry_in=30)
    claim_one(app)  # running
    app.cancel(app.jobs(state="queued", limit=1)[0].id)
    every = _everything(app)
    assert {j.state for j in every} == set(JobState) - {JobState.EXPIRED}
    for state in JobState:
        assert _pages(app, state=state.value) == [j.id for j in every if j.state is state], state
        for queue in ("mail", "images", "nowhere"):
            assert _pages(app, queue=queue, state=state.value) == [
                j.id for j in every if j.state is state and j.queue == queue
            ], (queue, state)
    for queue in ("mail", "reports"):
        assert _pages(app, queue=queue) == [j.id for j in every if j.queue == queue], queue
    assert _pages(app, task="t", state="running") == [j.id for j in every if j.state is JobState.RUNNING]
    # a filter by task alone merges running jobs (jobs_lease) with the rest ((task, id))
    assert _pages(app, task="t") == [j.id for j in every]
