"""Check 9: bad input is refused with a clear error and nothing is written or lost."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import duly
from duly.core.errors import DulyError


def _count(app: duly.App) -> int:
    return sum(sum(s.counts.values()) for s in app.stats())


def _refused(app: duly.App, fn: Any, *words: str) -> str:
    before = _count(app)
    try:
        fn()
    except DulyError as exc:
        message = str(exc)
        assert all(w.lower() in message.lower() for w in words), (message, words)
        assert _count(app) == before, f"a refused call wrote something: {message}"
        return type(exc).__name__
    raise AssertionError(f"accepted: {fn}")


def bad_input(app: duly.App) -> dict[str, Any]:
    """Every case of check 9; returns case -> the error (or outcome) it got."""
    e = app.enqueue
    out: dict[str, Any] = {}
    big = "x" * (10 * 1024 * 1024)
    cases: list[tuple[str, Any, tuple[str, ...]]] = [
        ("object argument", lambda: e("work", [object()]), ("argument 0", "not JSON")),
        ("set argument", lambda: e("work", [{1, 2}]), ("set",)),
        ("bytes argument", lambda: e("work", [b"\xff"]), ("bytes",)),
        ("datetime kwarg", lambda: e("work", [], {"when": datetime.now(UTC)}), ("when",)),
        ("non-string dict key", lambda: e("work", [{1: "a"}]), ("key",)),
        ("10 MB payload", lambda: e("work", [big]), ("bytes", "limit")),
        ("lone surrogate in argument", lambda: e("work", ["\udcff"]), ("UTF-8",)),
        ("lone surrogate in task name", lambda: e("w\udcffork", []), ("task name",)),
        ("lone surrogate in queue", lambda: e("work", [], queue="q\ud800"), ("queue",)),
        ("lone surrogate in key", lambda: e("work", [], key="k\udfff"), ("key",)),
        ("NUL in argument", lambda: e("work", ["a\x00b"]), ("NUL",)),
        ("NaN argument", lambda: e("work", [math.nan]), ("nan",)),
        ("infinity argument", lambda: e("work", [{"x": [math.inf]}]), ("inf",)),
        ("-infinity kwarg", lambda: e("work", [], {"v": -math.inf}), ("inf",)),
        ("NaN priority", lambda: e("work", [], priority=math.nan), ("priority",)),
        ("float priority", lambda: e("work", [], priority=1.5), ("priority",)),
        ("huge priority", lambda: e("work", [], priority=10**18), ("priority",)),
        ("too negative priority", lambda: e("work", [], priority=-(10**7)), ("priority",)),
        ("negative delay", lambda: e("work", [], run_in=-5), ("run_in",)),
        ("infinite delay", lambda: e("work", [], run_in=math.inf), ("run_in",)),
        ("NaN delay", lambda: e("work", [], run_in=math.nan), ("run_in",)),
        ("huge delay", lambda: e("work", [], run_in=10**12), ("run_in",)),
        ("unparseable delay", lambda: e("work", [], run_in="soon"), ("run_in",)),
        ("naive run_at", lambda: e("work", [], run_at=datetime(2030, 1, 1)), ("time zone",)),
        ("garbage run_at", lambda: e("work", [], run_at="yesterday-ish"), ("run_at",)),
        ("expiry before run time", lambda: e("work", [], run_in=60, expires_in=30), ("expires_at", "run time")),
        ("expiry in the past", lambda: e("work", [], expires_at=datetime.now(UTC) - timedelta(hours=1)), ("expires_at",)),
        ("zero max_attempts", lambda: e("work", [], max_attempts=0), ("max_attempts",)),
        ("empty task name", lambda: e("", []), ("task name",)),
        ("control chars in queue", lambda: e("work", [], queue="a\nb"), ("control",)),
        ("overlong queue", lambda: e("work", [], queue="q" * 500), ("queue",)),
        ("unknown key mode", lambda: e("work", [], key="k", mode="upsert"), ("mode",)),
        ("unknown option", lambda: e("work", [], priorty=3), ("priorty",)),
        ("malformed cron", lambda: app.schedule("work", name="bad-cron", cron="61 * * * *"), ("cron",)),
        ("cron with 3 fields", lambda: app.schedule("work", name="bad-cron2", cron="* * *"), ("cron",)),
        ("cron as text", lambda: app.schedule("work", name="bad-cron3", cron="every day"), ("cron",)),
        ("nonexistent time zone", lambda: app.schedule("work", name="bad-tz", cron="0 * * * *", tz="Mars/Olympus_Mons"),
         ("Mars/Olympus_Mons",)),
        ("negative every", lambda: app.schedule("work", name="bad-every", every=-1), ("every",)),
    ]  # fmt: skip
    triggers_before = len(app.store.list_triggers())
    for name, fn, words in cases:
        out[name] = _refused(app, fn, *words)
    assert len(app.store.list_triggers()) == triggers_before, "a refused trigger was stored"

    # names with quotes, SQL and HTML are data: stored verbatim, and the tables are intact
    for name in (
        'it\'s "quoted"',
        "'; DROP TABLE duly_jobs; --",
        "<script>alert(1)</script>",
        "queue; SELECT 1",
    ):
        job = app.enqueue(name, [name], queue=name, key=name)
        got = app.get_job(job.id)
        assert (got.task, got.queue, got.key, got.args) == (name, name, name, [name])
        assert [j.id for j in app.jobs(queue=name)] == [job.id]
    out["names with quotes, SQL, HTML"] = "stored verbatim"

    # an unknown task name is accepted (the worker may be deployed later); running it fails
    # the attempt with a clear UnknownTask error, and the worker carries on
    job = app.enqueue("no.such.task", [1], max_attempts=1, queue="unknown-q")
    ok = app.enqueue("tick", [], queue="unknown-q")
    worker = app.worker(queues=["unknown-q"], concurrency=2, scheduler=False)
    asyncio.run(worker.run_once())
    worker.close()
    failed = app.get_job(job.id)
    assert failed.state is duly.JobState.FAILED and "no task named 'no.such.task'" in (
        failed.last_error or ""
    ), failed
    assert app.get_job(ok.id).state is duly.JobState.SUCCEEDED
    out["unknown task name"] = "accepted; its attempt fails with UnknownTask"

    # extremes that are valid are stored and read back as sent
    lo = app.enqueue("work", [], priority=-1_000_000, run_in=0)
    hi = app.enqueue("work", [], priority=1_000_000, run_at=datetime(9999, 12, 31, tzinfo=UTC))
    assert (app.get_job(lo.id).priority, app.get_job(hi.id).priority) == (-1_000_000, 1_000_000)
    assert app.get_job(hi.id).run_at == datetime(9999, 12, 31, tzinfo=UTC)
    out["extreme priorities and run_at 9999-12-31"] = "stored and read back"
    return out
