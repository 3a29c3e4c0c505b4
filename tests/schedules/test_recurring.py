"""Recurring named jobs (the Boundary seed, 003) on both backends: one run at a time across
servers (two Apps on one database, as two servers), the failure branch of the workflow,
and ``run_at_least_within`` while the job runs (the nudge is kept, and bounds the next run
the handler picks)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

import duly
from duly.core.states import JobState
from duly.testing import drain
from tests.conftest import T0, Backend


def test_one_run_at_a_time_across_servers_seed_003_9(backend: Backend, clock: duly.VirtualClock) -> None:
    """Two servers register the same named job: one row. While server A runs it, server B
    finds nothing to run, registering again returns the running job, and a second live job
    under the name is refused; the next run is taken by whichever server comes first."""
    a, b = backend.app(clock), backend.app(clock)
    runs: list[tuple[str, datetime]] = []
    seen_from_other: list[Any] = []

    def handler(server: str, me: duly.App, other: duly.App) -> Any:
        def sync(ctx: duly.JobContext) -> duly.Reschedule:
            runs.append((server, ctx.now()))
            # the other server, while this run is in progress:
            seen_from_other.append(drain(other, advance=False).runs)
            again = other.recurring("sync-accounts", "sync", next_run_in="5m")
            seen_from_other.append((again.id, again.state))
            with pytest.raises(duly.DuplicateKey):
                other.enqueue("sync", key="recurring:sync-accounts", mode="new")
            return duly.Reschedule(in_="1h")

        return sync

    a.task(name="sync")(handler("A", a, b))
    b.task(name="sync")(handler("B", b, a))
    first = a.recurring("sync-accounts", "sync")
    assert b.recurring("sync-accounts", "sync", next_run_in="2h").id == first.id  # one row

    assert drain(a, advance=False).runs == 1
    assert seen_from_other == [0, (first.id, JobState.RUNNING)]
    clock.advance(hours=1)
    assert drain(b, advance=False).runs == 1  # the other server takes the next run
    assert runs == [("A", T0), ("B", T0 + timedelta(hours=1))]
    assert seen_from_other[2:] == [0, (first.id, JobState.RUNNING)]
    (job,) = a.jobs(task="sync")
    assert (job.id, job.state, job.run_at) == (first.id, JobState.SCHEDULED, T0 + timedelta(hours=2))


def test_workflow_failure_branch_seed_003_10(app: duly.App, clock: duly.VirtualClock) -> None:
    """J1 and J2 (next run 1 h) both start; J1 fails, J2 succeeds: the next tick runs only
    J1 again; after J1 succeeds, run_at_least_within(J2, 0) runs J2 again."""
    runs: list[str] = []

    @app.task(name="j1", retry="1m")
    def j1() -> duly.Reschedule:
        runs.append("J1")
        if runs.count("J1") == 1:
            raise RuntimeError("J1 failed")
        return duly.Reschedule(in_="1h")

    @app.task(name="j2")
    def j2() -> duly.Reschedule:
        runs.append("J2")
        return duly.Reschedule(in_="1h")

    one, two = app.recurring("J1", "j1"), app.recurring("J2", "j2")
    drain(app, advance=False)  # both start
    assert sorted(runs) == ["J1", "J2"]
    failed = app.get_job(one.id)
    assert (failed.state, failed.errors, failed.last_error) == (JobState.RETRYING, 1, "RuntimeError: J1 failed")
    assert app.get_job(two.id).run_at == T0 + timedelta(hours=1)

    clock.advance(minutes=1)
    drain(app, advance=False)  # the next tick: only J1, again
    assert runs[2:] == ["J1"]
    done = app.get_job(one.id)
    assert (done.state, done.errors, done.run_at) == (JobState.SCHEDULED, 0, T0 + timedelta(hours=1, minutes=1))

    app.run_at_least_within("J2", 0)
    drain(app, advance=False)
    assert runs[3:] == ["J2"]
    assert app.get_job(two.id).run_at == T0 + timedelta(hours=1, minutes=1)
    assert [j.id for j in app.jobs(limit=10)] == sorted([one.id, two.id], reverse=True)  # no other job


def test_run_at_least_within_while_the_job_runs_bounds_the_next_run(
    backend: Backend, clock: duly.VirtualClock
) -> None:
    """Nudged (by another server) while it runs, a recurring job's next run is the earlier
    of the handler's choice and the nudge; the bound is then gone (later runs follow the
    handler alone), and a bound later than the handler's choice changes nothing."""
    app, other = backend.app(clock), backend.app(clock)
    plan: list[tuple[list[str], str]] = [
        (["5m", "2h"], "1h"),  # nudged to 5 min (then 2 h: never later); picks 1 h -> 5 min
        ([], "1h"),  # no nudge: 1 h (the earlier bound was used up)
        (["30m"], "10m"),  # nudged to 30 min, picks 10 min -> 10 min
    ]
    runs: list[datetime] = []
    answers: list[duly.Job] = []

    @app.task(name="sync")
    def sync(ctx: duly.JobContext) -> duly.Reschedule:
        runs.append(ctx.now())
        nudges, pick = plan[len(runs) - 1]
        for within in nudges:
            answers.append(other.run_at_least_within("sync-accounts", within))
        return duly.Reschedule(in_=pick)

    job = app.recurring("sync-accounts", "sync", next_run_in="1m")
    drain(app, until=T0 + timedelta(minutes=1))
    assert [a.state for a in answers] == [JobState.RUNNING] * 2  # the running job, its run_at as it was
    assert app.get_job(job.id).run_at == T0 + timedelta(minutes=6)
    drain(app, until=T0 + timedelta(minutes=6))
    assert app.get_job(job.id).run_at == T0 + timedelta(hours=1, minutes=6)
    drain(app, until=T0 + timedelta(hours=1, minutes=6))
    assert runs == [T0 + timedelta(minutes=m) for m in (1, 6, 66)]
    assert app.get_job(job.id).run_at == T0 + timedelta(hours=1, minutes=16)


def test_run_at_least_within_while_the_job_runs_bounds_its_retry(app: duly.App, clock: duly.VirtualClock) -> None:
    """A run that fails after a nudge retries no later than the nudge asked."""
    calls: list[datetime] = []

    @app.task(name="sync", retry="1h")
    def sync(ctx: duly.JobContext) -> duly.Reschedule:
        calls.append(ctx.now())
        if len(calls) == 1:
            app.run_at_least_within("sync-accounts", "10m")
            raise RuntimeError("down")
        return duly.Reschedule(in_="1d")

    job = app.recurring("sync-accounts", "sync")
    drain(app, advance=False)
    after_failure = app.get_job(job.id)
    assert (after_failure.state, after_failure.run_at) == (JobState.RETRYING, T0 + timedelta(minutes=10))
    drain(app, until=T0 + timedelta(hours=2))
    assert calls == [T0, T0 + timedelta(minutes=10)]
    assert app.get_job(job.id).run_at == T0 + timedelta(days=1, minutes=10)


def test_run_at_least_within_a_job_that_ends_leaves_nothing_behind(app: duly.App, clock: duly.VirtualClock) -> None:
    """Nudged while it runs, a job that then ends (no Reschedule) ends; the name is free,
    and registering it again starts afresh, with no bound left from the old job."""

    @app.task(name="once")
    def once() -> str:
        app.run_at_least_within("report", "1m")
        return "done"

    first = app.recurring("report", "once")
    drain(app, advance=False)
    assert app.get_job(first.id).state is JobState.SUCCEEDED
    with pytest.raises(duly.TriggerNotFound):
        app.run_at_least_within("report", "1m")
    again = app.recurring("report", "once", next_run_in="1h")
    assert again.id != first.id and again.run_at == T0 + timedelta(hours=1)
