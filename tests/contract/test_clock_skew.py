"""Relative times under a real clock that is off: the store's now decides, not the process's.

On PostgreSQL the database's clock decides due and expiry times (DESIGN.md section 7); a
process clock three days slow must not put ``expires_in="1h"`` in the past. On SQLite the
process clock is the only clock, so there relative times follow it (and stay consistent).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

import duly
from duly.core.clock import SystemClock
from duly.core.model import Job
from tests.conftest import Backend
from tests.helpers import claim

SKEW = timedelta(days=3)
HOUR = timedelta(hours=1)


class SlowClock(SystemClock):
    """A real (not virtual) clock running three days behind: a badly set host."""

    def now(self) -> datetime:
        return super().now() - SKEW


def _database_now(backend: Backend) -> datetime:
    import psycopg

    with psycopg.connect(backend.url) as conn:
        row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    value: datetime = row[0]
    return value.astimezone(UTC)


def _ways_to_enqueue(app: duly.App) -> dict[str, Callable[[], Job]]:
    """Every insert path of the stores: one job, the keyed bulk insert, COPY, and replace."""

    def bulk(**opts: object) -> Job:
        (job_id,) = app.enqueue_many([duly.Enqueue("t", **opts)])  # type: ignore[arg-type]
        return app.get_job(job_id)

    def replaced() -> Job:
        app.enqueue("t", key="r", expires_in="5h")
        return app.enqueue("t", key="r", mode="replace", expires_in="1h")

    return {
        "enqueue": lambda: app.enqueue("t", expires_in="1h"),
        "enqueue_many keyless": lambda: bulk(expires_in="1h"),
        "enqueue_many keyed": lambda: bulk(expires_in="1h", key="b"),
        "replace": replaced,
    }


def test_expires_in_is_measured_from_the_stores_now_under_a_skewed_real_clock(backend: Backend) -> None:
    app = backend.app(SlowClock())
    for how, enqueue in _ways_to_enqueue(app).items():
        before = _database_now(backend) if backend.name == "postgres" else None
        job = enqueue()
        # the expiry is an hour after the moment the row was written, by the same clock
        assert job.expires_at is not None and job.expires_at - job.updated_at == HOUR, how
        if before is not None:  # PostgreSQL: that clock is the database's, not the process's
            after = _database_now(backend)
            assert before + HOUR <= job.expires_at <= after + HOUR, how
        assert job.state is duly.JobState.QUEUED
    # every one is still claimable: none was born expired
    assert len(claim(app, 10)) == 4


def test_run_in_and_expires_in_agree_under_a_skewed_real_clock(backend: Backend) -> None:
    app = backend.app(SlowClock())
    job = app.enqueue("t", run_in="30m", expires_in="1h")
    assert job.expires_at is not None and job.expires_at - job.run_at == timedelta(minutes=30)
    assert job.state is duly.JobState.SCHEDULED


def test_expires_in_not_after_run_in_is_refused_whatever_the_clock(backend: Backend) -> None:
    app = backend.app(SlowClock())
    with pytest.raises(duly.InvalidOption, match="expires_in of 3600 s is not after the run time"):
        app.enqueue("t", run_in="1h", expires_in="1h")
    with pytest.raises(duly.InvalidOption, match="is not after the run time"):
        app.enqueue("t", expires_in=1e-9)  # under a microsecond: the job would be born expired
    assert app.jobs() == []


def test_expires_in_still_follows_the_virtual_clock(backend: Backend) -> None:
    start = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
    clock = duly.VirtualClock(start)
    app = backend.app(clock)
    single = app.enqueue("t", expires_in="1h")
    (bulk_id,) = app.enqueue_many([duly.Enqueue("t", expires_in="1h")])
    assert single.expires_at == app.get_job(bulk_id).expires_at == start + HOUR
    clock.advance(hours=1)
    assert claim(app, 10) == []  # the boundary is inclusive: at expires_at nothing starts
