"""Every way an attempt ends delivers an outcome and is announced the same way: its event
(job.success / job.failure / job.permanent_failure / job.timeout / job.interrupted ...) and its
hooks (success, failure, permanent_failure, timeout, after), whether the handler returned, ran
over its timeout, named no registered task, or returned a value that could not become an
outcome. Under the virtual clock (``drain``), on both backends."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest

import duly
from duly.core.states import JobState, Outcome
from duly.testing import drain
from tests.conftest import T0
from tests.helpers import capture_events


def outcomes(app: duly.App, job_id: int) -> list[str]:
    return [a.outcome.value for a in app.attempts(job_id)]


def record_hooks(app: duly.App) -> list[tuple[str, Any]]:
    """Every hook but before_enqueue appends (event, job id[, detail]) to the returned list."""
    seen: list[tuple[str, Any]] = []
    lock = threading.Lock()

    def add(*item: Any) -> None:
        with lock:
            seen.append(item)

    app.on("start")(lambda job: add("start", job.id))
    app.on("success")(lambda job, result: add("success", job.id))
    app.on("failure")(lambda job, error: add("failure", job.id, error.type))
    app.on("permanent_failure")(lambda job, error: add("permanent_failure", job.id, error.type))
    app.on("timeout")(lambda job: add("timeout", job.id))
    app.on("after")(lambda job, outcome: add("after", job.id, outcome.value))
    return seen


# ---- outcomes a handler returns --------------------------------------------------------


def test_snooze_takes_a_duration_string(app: duly.App, clock: duly.VirtualClock) -> None:
    """``Snooze("30s")`` was accepted but never delivered (``float("30s")`` outside any try):
    the job stayed running and drain hung."""
    runs: list[Any] = []

    @app.task(max_attempts=1)
    def waits_for_data() -> duly.Snooze | str:
        runs.append(clock.now())
        return duly.Snooze("30s") if len(runs) == 1 else duly.Snooze(timedelta(minutes=1)) if len(runs) == 2 else "ok"

    job = waits_for_data.enqueue()
    drain(app)
    assert runs == [T0, T0 + timedelta(seconds=30), T0 + timedelta(seconds=90)]
    final = app.get_job(job.id)
    assert final.state is JobState.SUCCEEDED and final.result == "ok" and final.errors == 0
    assert outcomes(app, job.id) == ["snoozed", "snoozed", "succeeded"]


def test_snooze_and_reschedule_normalise_their_durations() -> None:
    assert duly.Snooze("1m30s").seconds == 90.0
    assert duly.Snooze(timedelta(hours=1)).seconds == 3600.0
    assert duly.Reschedule(in_="1h30m").seconds == 5400.0 and duly.Reschedule(in_="2s").in_ == 2.0
    for bad in ("soon", -1, True):
        with pytest.raises(ValueError):
            duly.Snooze(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="invalid duration"):
        duly.Reschedule(in_="tomorrow")
    with pytest.raises(ValueError, match="aware datetime"):
        duly.Reschedule(at=T0.replace(tzinfo=None))


def test_handler_may_keep_the_job_until_a_time_seed_000_7(app: duly.App, clock: duly.VirtualClock) -> None:
    runs: list[Any] = []
    at = T0 + timedelta(hours=5, minutes=7)

    @app.task
    async def report(ctx: duly.JobContext) -> duly.Reschedule | str:
        runs.append(ctx.now())
        return duly.Reschedule(at=at) if len(runs) == 1 else "sent"

    job = report.enqueue()
    drain(app)
    assert runs == [T0, at]
    final = app.get_job(job.id)
    assert final.state is JobState.SUCCEEDED and final.result == "sent"
    assert outcomes(app, job.id) == ["rescheduled", "succeeded"]


class _Unencodable(dict[str, int]):
    """A result whose JSON encoding raises something other than TypeError/ValueError."""

    def items(self) -> Any:  # the JSON encoder asks a dict subclass for its items
        raise RuntimeError("cannot list my items")


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_an_outcome_that_cannot_be_built_fails_the_attempt(app: duly.App, kind: str) -> None:
    """Building the outcome from the returned value raised: the attempt fails (and follows
    the retry policy) instead of being lost with the job left running."""
    if kind == "sync":

        @app.task(name="odd", max_attempts=2, retry=0)
        def odd() -> Any:
            return _Unencodable(a=1)

    else:

        @app.task(name="odd", max_attempts=2, retry=0)
        async def odd_async() -> Any:
            return _Unencodable(a=1)

    seen = record_hooks(app)
    with capture_events() as log:
        job = app.enqueue("odd")
        drain(app)
    final = app.get_job(job.id)
    assert final.state is JobState.FAILED and final.errors == 2
    assert outcomes(app, job.id) == ["failed", "failed"]
    assert app.attempts(job.id)[0].error_type == "RuntimeError"
    assert [e[0] for e in seen if e[0] != "start"] == ["failure", "after", "permanent_failure", "after"]
    assert len(log.of("job.failure", job=job.id)) == 1 and len(log.of("job.permanent_failure", job=job.id)) == 1


# ---- timeouts ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_timeout_calls_the_timeout_hook_seed_004_7(app: duly.App, kind: str) -> None:
    """A handler over its timeout: the ``timeout`` hook, then ``failure`` (a retry is left) or
    ``permanent_failure`` (none left), then ``after``; and the matching events."""
    if kind == "sync":

        @app.task(name="slow", timeout=0.05, max_attempts=2, retry=60)
        def slow(ctx: duly.JobContext) -> None:
            ctx.wait_cancelled(30)  # sees the timeout; returns after the attempt has ended

    else:
        import asyncio

        @app.task(name="slow", timeout=0.05, max_attempts=2, retry=60)
        async def slow_async() -> None:
            await asyncio.sleep(30)

    seen = record_hooks(app)
    with capture_events() as log:
        job = app.enqueue("slow")
        drain(app)
    assert app.get_job(job.id).state is JobState.FAILED
    assert outcomes(app, job.id) == ["timed_out", "timed_out"]
    assert seen == [
        ("start", job.id),
        ("timeout", job.id),
        ("failure", job.id, "TimeoutError"),
        ("after", job.id, "timed_out"),
        ("start", job.id),
        ("timeout", job.id),
        ("permanent_failure", job.id, "TimeoutError"),
        ("after", job.id, "timed_out"),
    ]
    timeouts = log.of("job.timeout", job=job.id)
    assert [e["attempt"] for e in timeouts] == [1, 2] and all(e["duration"] >= 0.05 for e in timeouts)
    assert len(log.of("job.failure", job=job.id)) == 1 and log.of("job.failure", job=job.id)[0]["retry_in"] == 60
    assert len(log.of("job.permanent_failure", job=job.id)) == 1


def test_a_raising_timeout_hook_is_logged_and_changes_nothing_seed_004_15(app: duly.App) -> None:
    @app.task(timeout=0.05, max_attempts=1)
    def slow(ctx: duly.JobContext) -> None:
        ctx.wait_cancelled(30)

    @app.on("timeout")
    def broken(job: duly.Job) -> None:
        raise RuntimeError("hook bug")

    after: list[str] = []
    app.on("after")(lambda job, outcome: after.append(outcome.value))
    with capture_events() as log:
        job = slow.enqueue()
        drain(app)
    assert app.get_job(job.id).state is JobState.FAILED and outcomes(app, job.id) == ["timed_out"]
    (err,) = log.of("hook.error", hook="timeout")
    assert "hook bug" in err["error"]
    assert after == ["timed_out"]  # the hooks after the broken one still ran


# ---- unknown tasks, permanent failures, after ---------------------------------------------


def test_after_hook_runs_for_an_unknown_task_seed_000_14(app: duly.App) -> None:
    seen = record_hooks(app)
    with capture_events() as log:
        job = app.enqueue("nobody.registered.this", max_attempts=2)
        drain(app)
    assert app.get_job(job.id).state is JobState.FAILED
    assert seen == [
        ("start", job.id),
        ("failure", job.id, "UnknownTask"),
        ("after", job.id, "failed"),
        ("start", job.id),
        ("permanent_failure", job.id, "UnknownTask"),
        ("after", job.id, "failed"),
    ]
    assert [e["attempt"] for e in log.of("job.start", job=job.id)] == [1, 2]
    assert "nobody.registered.this" in log.of("job.failure", job=job.id)[0]["error"]
    assert len(log.of("job.permanent_failure", job=job.id)) == 1


def test_permanent_failure_hook_on_the_last_attempt_only_seed_004_5(app: duly.App) -> None:
    @app.task(max_attempts=3, retry=0)
    def always() -> None:
        raise ValueError("no")

    seen = record_hooks(app)
    job = always.enqueue()
    drain(app)
    ends = [e for e in seen if e[0] in ("failure", "permanent_failure")]
    assert ends == [("failure", job.id, "ValueError")] * 2 + [("permanent_failure", job.id, "ValueError")]
    assert app.get_job(job.id).state is JobState.FAILED


def test_a_raising_after_hook_changes_nothing(app: duly.App) -> None:
    @app.task
    def ok() -> int:
        return 1

    @app.on("after")
    async def broken(job: duly.Job, outcome: Outcome) -> None:
        raise RuntimeError("after bug")

    with capture_events() as log:
        good = ok.enqueue()
        unknown = app.enqueue("no.such.task", max_attempts=1)
        drain(app)
    assert app.get_job(good.id).state is JobState.SUCCEEDED and app.get_job(good.id).result == 1
    assert app.get_job(unknown.id).state is JobState.FAILED
    assert len(log.of("hook.error", hook="after")) == 2
