"""What a trigger's jobs carry and how its state reads them, on both backends: the job
options of every kind of firing (slot, event, manual run), a slot planned again after
pause/resume on its boundary (only the slots' primary key stops a second job), and the
trigger state of seed 002_23 with a running job."""

from __future__ import annotations

from datetime import timedelta

import pytest

import duly
from duly.core.states import JobState
from duly.testing import drain
from tests.conftest import T0
from tests.helpers import claim_one


def jobs_of(app: duly.App, task: str) -> list[duly.Job]:
    return sorted(app.jobs(task=task, limit=1000), key=lambda j: j.id)


def test_jobs_of_a_trigger_carry_its_priority_max_attempts_expiry_and_queue(
    app: duly.App, clock: duly.VirtualClock
) -> None:
    app.task(name="report", max_attempts=9, priority=0)(lambda **kw: None)
    app.schedule("report", every="1h", name="hourly", queue="reports", priority=7, max_attempts=2, expires_in="15m")
    app.schedule("report", event="order.paid", name="on-paid", priority=-3, max_attempts=4, expires_in="1h")
    app.schedule("report", manual=True, name="by-hand", max_attempts=1, expires_in=60)

    clock.advance(hours=1)
    assert app.scheduler_tick() == 1
    (slot_job,) = jobs_of(app, "report")
    assert (slot_job.run_at, slot_job.queue, slot_job.priority, slot_job.max_attempts) == (
        T0 + timedelta(hours=1), "reports", 7, 2)  # fmt: skip
    assert slot_job.expires_at == T0 + timedelta(hours=1, minutes=15)  # relative to its slot

    (event_id,) = app.emit("order.paid", {"id": 1})
    event_job = app.get_job(event_id)
    assert (event_job.queue, event_job.priority, event_job.max_attempts) == ("default", -3, 4)
    assert event_job.expires_at == T0 + timedelta(hours=2)  # relative to the event (no slot)

    manual = app.run_trigger("by-hand")
    assert (manual.priority, manual.max_attempts) == (0, 1)
    assert manual.expires_at == T0 + timedelta(hours=1, seconds=60)

    # the expiry is real: the slot's job, not run within 15 minutes, expires
    clock.advance(minutes=20)
    drain(app, queues=["reports"], advance=False)
    assert app.get_job(slot_job.id).state is JobState.EXPIRED


def test_a_failing_trigger_job_gets_the_triggers_max_attempts(app: duly.App, clock: duly.VirtualClock) -> None:
    calls: list[int] = []

    @app.task(name="flaky", max_attempts=10, retry="1m")
    def flaky() -> None:
        calls.append(1)
        raise RuntimeError("down")

    app.schedule("flaky", every="1h", name="f", max_attempts=3)
    drain(app, until=T0 + timedelta(hours=1, minutes=30))
    (job,) = jobs_of(app, "flaky")
    assert (job.state, job.attempt, len(calls)) == (JobState.FAILED, 3, 3)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be an integer >= 1"),
        ({"priority": "high"}, "priority must be an integer"),
        ({"expires_in": -5}, "expires_in must be positive"),
        ({"expires_in": "soon"}, "expires_in"),
        ({"queue": ""}, "queue must be a non-empty string"),
    ],
)
def test_bad_job_options_are_refused_when_the_trigger_is_added(
    app: duly.App, option: dict[str, object], message: str
) -> None:
    with pytest.raises(duly.InvalidOption, match=message):
        app.schedule("report", every="1h", name="bad", **option)
    assert app.triggers() == []


def test_resume_on_a_slot_boundary_plans_the_fired_slot_again_and_its_key_stops_a_second_job(
    app: duly.App, clock: duly.VirtualClock
) -> None:
    """Resumed exactly on the slot it fired, an ``every`` trigger with a start plans that
    slot again (its first slot from now on is now). The trigger's guard lets that firing
    through (the next fire time is the one just stored); only the (trigger, slot) primary
    key of the slots table stops a second job for it."""
    app.schedule("pulse", every="1m", start=T0, name="p")
    assert app.scheduler_tick() == 1  # T0
    clock.advance(minutes=1)
    assert app.scheduler_tick() == 1  # T0 + 1 min
    app.pause_trigger("p")
    resumed = app.resume_trigger("p")
    assert resumed.next_fire_at == T0 + timedelta(minutes=1)  # the fired slot, planned again
    assert app.scheduler_tick() == 0
    assert [j.run_at for j in jobs_of(app, "pulse")] == [T0, T0 + timedelta(minutes=1)]
    assert app.trigger("p").next_fire_at == T0 + timedelta(minutes=2)  # and the trigger moved on
    clock.advance(minutes=1)
    assert app.scheduler_tick() == 1
    runs = [j.run_at for j in jobs_of(app, "pulse")]
    assert runs == [T0 + timedelta(minutes=m) for m in range(3)]


def test_trigger_state_with_a_running_job_seed_002_23(app: duly.App, clock: duly.VirtualClock) -> None:
    """Jobs [done, errored("E"), running], oldest to newest: status running, last execution
    the running job's start, last failure and error from the errored one, last success
    from the done one."""
    calls: list[int] = []

    @app.task(name="nightly", max_attempts=1)
    def nightly() -> None:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("E")

    app.schedule("nightly", manual=True, name="n")
    done = app.run_trigger("n")
    drain(app, advance=False)
    clock.advance(minutes=1)
    errored = app.run_trigger("n")
    drain(app, advance=False)
    clock.advance(minutes=1)
    running = app.run_trigger("n")
    assert claim_one(app).id == running.id  # a worker took it, and runs it now

    state = app.trigger_state("n")
    assert state.status == "running"
    assert (state.last_execution, state.last_executed_job_id) == (T0 + timedelta(minutes=2), running.id)
    assert (state.last_failure, state.last_failed_job_id, state.last_error) == (
        T0 + timedelta(minutes=1), errored.id, "RuntimeError: E")  # fmt: skip
    assert (state.last_success, state.last_successful_job_id) == (T0, done.id)
    assert (state.last_manual_execution, state.last_manual_job_id) == (T0 + timedelta(minutes=2), running.id)
    assert [app.get_job(j.id).state for j in (done, errored, running)] == [
        JobState.SUCCEEDED, JobState.FAILED, JobState.RUNNING]  # fmt: skip
