"""Worker semantics under the virtual clock (seeds 000, 002, 003), on both backends."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import pytest

import duly
from duly.core.states import JobState, Outcome
from duly.testing import assert_enqueued, drain, run_task
from tests.conftest import T0


def outcomes(app: duly.App, job_id: int) -> list[str]:
    return [a.outcome.value for a in app.attempts(job_id)]


def test_fixed_one_hour_retry_runs_three_times_seed_000_8(app: duly.App, clock: duly.VirtualClock) -> None:
    seen: list[Any] = []

    @app.task(retry=duly.Fixed("1h"), max_attempts=3)
    def always_fails() -> None:
        seen.append(clock.now())
        raise RuntimeError("down")

    job = always_fails.enqueue()
    drain(app)
    assert seen == [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)]
    assert app.get_job(job.id).state is JobState.FAILED
    assert outcomes(app, job.id) == ["failed"] * 3


def test_unknown_task_fails_the_attempt_and_retries_seed_000_14(app: duly.App) -> None:
    job = app.enqueue("nobody.registered.this", max_attempts=2)
    drain(app)
    final = app.get_job(job.id)
    assert final.state is JobState.FAILED and final.errors == 2
    (a1, a2) = app.attempts(job.id)
    assert a1.error_type == "UnknownTask" and "nobody.registered.this" in (a1.error_message or "")


def test_simulator_cycles_and_handlers_see_simulated_time_seed_000_17(app: duly.App, clock: duly.VirtualClock) -> None:
    seen: list[Any] = []

    @app.task
    def remind(ctx: duly.JobContext) -> None:
        seen.append(ctx.now())

    remind.options(run_at=T0 + timedelta(days=3)).enqueue()
    remind.options(run_at=T0 + timedelta(days=1)).enqueue()
    cycles: list[Any] = []
    result = drain(app, on_cycle=cycles.append)
    assert cycles == [T0 + timedelta(days=1), T0 + timedelta(days=3)]
    assert seen == cycles and result.runs == 2
    assert app.store.next_run_at() is None


def test_handler_may_keep_the_job_with_reschedule_seed_000_7(app: duly.App, clock: duly.VirtualClock) -> None:
    runs: list[Any] = []

    @app.task
    def digest(ctx: duly.JobContext) -> duly.Reschedule | str:
        runs.append(ctx.now())
        return duly.Reschedule(in_="1d") if len(runs) < 3 else "done"

    job = digest.enqueue()
    drain(app)
    assert runs == [T0, T0 + timedelta(days=1), T0 + timedelta(days=2)]
    final = app.get_job(job.id)
    assert final.state is JobState.SUCCEEDED and final.result == "done" and final.errors == 0
    assert outcomes(app, job.id) == ["rescheduled", "rescheduled", "succeeded"]


def test_fail_three_times_then_succeed_seed_002_5(app: duly.App) -> None:
    calls = []

    @app.task(max_attempts=4, retry="1ms")
    def flaky() -> str:
        calls.append(1)
        if len(calls) < 4:
            raise ValueError(f"try {len(calls)}")
        return "ok"

    job = flaky.enqueue()
    drain(app)
    assert len(calls) == 4
    assert app.get_job(job.id).state is JobState.SUCCEEDED
    assert outcomes(app, job.id) == ["failed", "failed", "failed", "succeeded"]


def test_worker_survives_failures_and_runs_the_rest_seed_002_6(app: duly.App) -> None:
    @app.task(max_attempts=1)
    def maybe(n: int) -> int:
        if n % 2:
            raise ZeroDivisionError(n)
        return n

    ids = [maybe.enqueue(i).id for i in range(10)]
    drain(app)
    states = [app.get_job(i).state for i in ids]
    assert states == [JobState.SUCCEEDED, JobState.FAILED] * 5
    assert app.get_job(ids[1]).last_error == "ZeroDivisionError: 1"


def test_per_job_max_attempts_seed_002_7(app: duly.App) -> None:
    calls = []

    @app.task(max_attempts=5, retry=0)
    def fails() -> None:
        calls.append(1)
        raise RuntimeError

    fails.options(max_attempts=2).enqueue()
    drain(app)
    assert len(calls) == 2


def test_exponential_delays_double_within_jitter_seed_002_8(app: duly.App, clock: duly.VirtualClock) -> None:
    seen: list[Any] = []

    @app.task(retry=duly.Exponential(base=60, factor=2, jitter=0.1), max_attempts=4)
    def fails() -> None:
        seen.append(clock.now())
        raise RuntimeError

    fails.enqueue()
    drain(app)
    gaps = [(b - a).total_seconds() for a, b in zip(seen, seen[1:], strict=False)]
    assert seen[0] == T0
    for gap, expected in zip(gaps, [60, 120, 240], strict=True):
        assert expected * 0.9 <= gap <= expected * 1.1


def test_abort_ends_as_succeeded_without_retry_seed_002_9(app: duly.App) -> None:
    calls = []

    @app.task(max_attempts=5)
    def gives_up() -> None:
        calls.append(1)
        raise duly.Abort("nothing to do")

    job = gives_up.enqueue()
    drain(app)
    assert len(calls) == 1 and app.get_job(job.id).state is JobState.SUCCEEDED
    assert "aborted: nothing to do" in (app.attempts(job.id)[0].log or "")


def test_no_retry_error_and_no_retry_classes_seed_002_10(app: duly.App) -> None:
    calls = []

    @app.task(max_attempts=5)
    def refuses() -> None:
        calls.append("a")
        raise duly.NoRetry("bad input")

    @app.task(max_attempts=5, no_retry=[KeyError])
    def lookup() -> None:
        calls.append("b")
        raise KeyError("missing")

    a, b = refuses.enqueue(), lookup.enqueue()
    drain(app)
    assert calls == ["a", "b"]
    assert app.get_job(a.id).state is JobState.FAILED and app.get_job(b.id).state is JobState.FAILED


def test_callable_policy_may_veto_a_retry_seed_002_11(app: duly.App) -> None:
    calls = []

    @app.task(max_attempts=5, retry=lambda n, exc: None if isinstance(exc, PermissionError) else 1)
    def guarded() -> None:
        calls.append(1)
        raise PermissionError("denied")

    guarded.enqueue()
    drain(app)
    assert len(calls) == 1


def test_async_timeout_cancels_the_handler_seed_002_4(app: duly.App) -> None:
    observed = []

    @app.task(timeout=0.05, max_attempts=1)
    async def waits() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            observed.append("cancelled")
            raise

    job = waits.enqueue()
    drain(app)
    assert observed == ["cancelled"]
    final = app.get_job(job.id)
    assert final.state is JobState.FAILED and "timeout" in (final.last_error or "")
    assert outcomes(app, job.id) == ["timed_out"]


def test_sync_timeout_frees_the_slot_and_flags_the_thread(app: duly.App) -> None:
    seen = []

    @app.task(timeout=0.05, max_attempts=1)
    def slow(ctx: duly.JobContext) -> None:
        ctx.wait_cancelled(5)
        seen.append(ctx.cancelled)

    job = slow.enqueue()
    drain(app)
    assert outcomes(app, job.id) == ["timed_out"]
    from tests.helpers import wait_until

    wait_until(lambda: seen, timeout=5, what="the timed-out thread to see ctx.cancelled")
    assert seen == [True]


def test_hooks_fire_and_a_raising_hook_changes_nothing_seed_002_13_004_15(app: duly.App) -> None:
    log: list[tuple[str, Any]] = []
    for event in ("start", "failure", "permanent_failure", "timeout"):
        app.on(event)(lambda job, *rest, e=event: log.append((e, job.task)))

    @app.on("success")
    def boom(job: duly.Job, result: Any) -> None:
        log.append(("success", result))
        raise RuntimeError("hook bug")

    @app.on("after")
    async def after(job: duly.Job, outcome: Outcome) -> None:
        log.append(("after", outcome.value))

    @app.task(name="ok")
    def ok() -> int:
        return 7

    @app.task(name="bad", max_attempts=2, retry=0)
    def bad() -> None:
        raise ValueError

    j1 = ok.enqueue()
    j2 = bad.enqueue()
    drain(app)
    assert app.get_job(j1.id).state is JobState.SUCCEEDED and app.get_job(j1.id).result == 7
    assert app.get_job(j2.id).state is JobState.FAILED
    assert ("success", 7) in log and ("failure", "bad") in log and ("permanent_failure", "bad") in log
    assert [e for e in log if e[0] == "after"] == [("after", "succeeded"), ("after", "failed"), ("after", "failed")]
    assert log.count(("start", "ok")) == 1 and log.count(("start", "bad")) == 2


def test_before_enqueue_hook_may_skip_the_job_seed_002_13(app: duly.App) -> None:
    @app.on("before_enqueue")
    def only_even(params: Any) -> bool:
        return params.args_json != "[1]"

    with pytest.raises(duly.EnqueueSkipped):
        app.enqueue("t", args=[1])
    app.enqueue("t", args=[2])
    assert [j.args for j in app.jobs()] == [[2]]


def test_context_log_logging_capture_progress_and_result(app: duly.App) -> None:
    @app.task
    def work(ctx: duly.JobContext, n: int) -> dict[str, int]:
        ctx.log("starting %d", n)
        logging.getLogger("myapp").warning("from logging")
        for i in range(n):
            ctx.progress(i + 1, n)
        assert duly.context() is ctx
        return {"n": n}

    job = work.enqueue(4)
    drain(app)
    final = app.get_job(job.id)
    assert final.result == {"n": 4} and (final.progress_done, final.progress_total) == (4, 4)
    log = app.attempts(job.id)[0].log or ""
    assert "starting 4" in log and "WARNING myapp: from logging" in log


def test_non_json_result_is_not_stored_but_the_job_succeeds(app: duly.App) -> None:
    @app.task
    def odd() -> object:
        return {1, 2}

    job = odd.enqueue()
    drain(app)
    final = app.get_job(job.id)
    assert final.state is JobState.SUCCEEDED and final.result is None
    assert "not JSON" in (app.attempts(job.id)[0].log or "")


def test_snooze_keeps_the_attempt_budget(app: duly.App, clock: duly.VirtualClock) -> None:
    runs = []

    @app.task(max_attempts=1)
    def waits_for_data() -> duly.Snooze | str:
        runs.append(clock.now())
        return duly.Snooze(30) if len(runs) < 4 else "ready"

    job = waits_for_data.enqueue()
    drain(app)
    assert app.get_job(job.id).state is JobState.SUCCEEDED
    assert runs[-1] == T0 + timedelta(seconds=90)


def test_expiry_stops_retries_in_the_simulator_seed_000_11(app: duly.App) -> None:
    calls = []

    @app.task(retry="1h", max_attempts=5)
    def fails() -> None:
        calls.append(1)
        raise RuntimeError

    job = fails.options(expires_at=T0 + timedelta(minutes=90)).enqueue()
    drain(app)
    assert len(calls) == 2 and app.get_job(job.id).state is JobState.EXPIRED


def test_drain_until_stops_at_a_time(app: duly.App, clock: duly.VirtualClock) -> None:
    app.enqueue("later", run_at=T0 + timedelta(days=2))
    drain(app, until=T0 + timedelta(days=1))
    assert clock.now() == T0 + timedelta(days=1)
    assert_enqueued(app, "later", state="scheduled", count=1)


def test_run_task_calls_the_function_directly(app: duly.App) -> None:
    @app.task
    def double(ctx: duly.JobContext, x: int) -> int:
        ctx.log("doubling")
        return 2 * x

    assert run_task(double, 21) == 42
    assert app.jobs() == []


def test_assert_enqueued_reports_what_it_saw(app: duly.App) -> None:
    app.enqueue("mail.send", args=["a@b"])
    assert_enqueued(app, "mail.send", args=["a@b"])
    with pytest.raises(AssertionError, match="mail.send"):
        assert_enqueued(app, "mail.send", args=["other"])
