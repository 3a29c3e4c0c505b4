"""Triggers on both backends: seeds 002 (at, in, every, cron, event, debounce, state) and
003 (recurring named jobs), catch-up policies, pause/resume, manual runs, webhooks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import duly
from duly.core.states import JobState
from duly.testing import drain
from tests.conftest import T0


def jobs_of(app: duly.App, task: str) -> list[duly.Job]:
    return sorted(app.jobs(task=task, limit=1000), key=lambda j: j.id)


def noop(app: duly.App, *names: str) -> None:
    for name in names:
        app.task(name=name)(lambda *a, **k: None)


def test_at_trigger_fires_once_and_removes_itself_seed_002_16(app: duly.App, clock: duly.VirtualClock) -> None:
    noop(app, "report")
    app.schedule("report", name="once", at=T0 + timedelta(hours=2))
    app.schedule("report", name="soon", in_="90s")
    drain(app, until=T0 + timedelta(days=1))
    runs = jobs_of(app, "report")
    assert [j.run_at for j in runs] == [T0 + timedelta(seconds=90), T0 + timedelta(hours=2)]
    with pytest.raises(duly.TriggerNotFound):
        app.trigger("once")
    with pytest.raises(duly.TriggerNotFound):
        app.trigger("soon")


def test_malformed_triggers_are_refused_seed_002_15(app: duly.App) -> None:
    with pytest.raises(duly.InvalidOption, match="ISO 8601"):
        app.schedule("t", at="garbage")
    with pytest.raises(duly.InvalidOption, match="invalid duration"):
        app.schedule("t", in_="garbage")
    with pytest.raises(duly.InvalidOption, match="invalid cron expression"):
        app.schedule("t", cron="61 * * * *")
    with pytest.raises(duly.InvalidOption, match="unknown time zone"):
        app.schedule("t", cron="0 * * * *", tz="Mars/Olympus")
    with pytest.raises(duly.InvalidOption, match="exactly one of"):
        app.schedule("t", cron="0 * * * *", every="1h")
    assert app.triggers() == []


def test_cron_with_seconds_fires_every_slot_seed_002_17(app: duly.App, clock: duly.VirtualClock) -> None:
    app.schedule("tick", cron="*/3 * * * * *", name="every3s")
    for _ in range(15):
        clock.advance(seconds=1)
        app.scheduler_tick()
    runs = jobs_of(app, "tick")
    assert [j.run_at for j in runs] == [T0 + timedelta(seconds=s) for s in (3, 6, 9, 12, 15)]


def test_cron_catch_up_latest_coalesces_missed_slots_seed_002_18(app: duly.App, clock: duly.VirtualClock) -> None:
    app.schedule("hourly", cron="@hourly", name="h")
    clock.advance(hours=3, minutes=30)  # slots 10:00, 11:00, 12:00 missed while "down"
    app.scheduler_tick()
    runs = jobs_of(app, "hourly")
    assert [j.run_at for j in runs] == [T0 + timedelta(hours=3)]
    t = app.trigger("h")
    assert t.missed == 2 and t.next_fire_at == T0 + timedelta(hours=4)


def test_catch_up_skip_and_all(app: duly.App, clock: duly.VirtualClock) -> None:
    app.schedule("skipper", cron="@hourly", name="skip", catch_up="skip")
    app.schedule("every_one", cron="@hourly", name="all", catch_up="all", catch_up_limit=2)
    clock.advance(hours=3, minutes=30)
    app.scheduler_tick()
    assert jobs_of(app, "skipper") == []
    assert app.trigger("skip").missed == 3
    assert [j.run_at for j in jobs_of(app, "every_one")] == [T0 + timedelta(hours=2), T0 + timedelta(hours=3)]
    assert app.trigger("all").missed == 1
    clock.set(T0 + timedelta(hours=4))
    app.scheduler_tick()
    assert len(jobs_of(app, "skipper")) == 1  # an on-time slot fires


def test_every_with_start_and_end(app: duly.App, clock: duly.VirtualClock) -> None:
    noop(app, "pulse")
    app.schedule("pulse", every="10m", start=T0 + timedelta(minutes=5), end=T0 + timedelta(minutes=40), name="p")
    assert app.upcoming("p") == [T0 + timedelta(minutes=m) for m in (5, 15, 25, 35)]
    drain(app, until=T0 + timedelta(hours=2))
    assert [j.run_at for j in jobs_of(app, "pulse")] == [T0 + timedelta(minutes=m) for m in (5, 15, 25, 35)]


def test_cron_time_zone_offset(app: duly.App) -> None:
    app.schedule("wake", cron="30 2 * * *", tz="Europe/Paris", name="paris")
    t = app.trigger("paris")
    assert t.next_fire_at == T0.replace(hour=1, minute=30) + timedelta(days=1)  # 02:30 CET = 01:30 UTC


@pytest.mark.parametrize(
    ("start", "fires"),
    [  # Europe/Paris, 2030: clocks go forward on 31 March (02:00 -> 03:00), back on 27 October
        (datetime(2030, 3, 29, 12, tzinfo=UTC), [(3, 30, 1, "02:30+0100"), (3, 31, 1, "03:30+0200"),
                                                 (4, 1, 0, "02:30+0200")]),  # skipped 02:30 fires one hour later
        (datetime(2030, 10, 25, 12, tzinfo=UTC), [(10, 26, 0, "02:30+0200"), (10, 27, 0, "02:30+0200"),
                                                  (10, 28, 1, "02:30+0100")]),  # repeated 02:30 fires once
    ],  # fmt: skip
)
def test_cron_time_zone_across_both_dst_changes(backend: Any, start: datetime, fires: list[tuple[Any, ...]]) -> None:
    """A daily 02:30 in Europe/Paris through the stored trigger and the scheduler, each day
    around a change of the clocks: one job a day, none lost, none doubled."""
    clock = duly.VirtualClock(start)
    app = backend.app(clock)
    noop(app, "wake")
    app.schedule("wake", cron="30 2 * * *", tz="Europe/Paris", name="paris")
    drain(app, until=start + timedelta(days=3))
    runs = [j.run_at for j in jobs_of(app, "wake")]
    assert runs == [datetime(2030, m, d, h, 30, tzinfo=UTC) for m, d, h, _ in fires]
    assert [r.astimezone(ZoneInfo("Europe/Paris")).strftime("%H:%M%z") for r in runs] == [w for *_, w in fires]


def test_periodic_declared_in_code_is_stored_at_first_tick(app: duly.App, clock: duly.VirtualClock) -> None:
    @app.periodic(every="1h", name="cleanup", queue="maintenance")
    def cleanup() -> str:
        return "clean"

    drain(app, until=T0 + timedelta(hours=3))
    runs = jobs_of(app, cleanup.name)
    assert [j.run_at for j in runs] == [T0 + timedelta(hours=h) for h in (1, 2, 3)]
    assert {j.queue for j in runs} == {"maintenance"}
    assert all(j.state is JobState.SUCCEEDED for j in runs)
    state = app.trigger_state("cleanup")
    assert state.status == "succeeded" and state.last_successful_job_id == runs[-1].id


def test_event_trigger_filters_seed_002_20(app: duly.App) -> None:
    app.schedule("on_order", event="order.created", name="all-orders")
    app.schedule("on_paid", event="order.*", filter={"status": "paid"}, name="paid")
    app.schedule("on_refund", event="order.refunded", name="refunds")
    app.emit("order.created", {"id": 1, "status": "new"})
    app.emit("order.created", {"id": 2, "status": "paid"})
    app.emit("invoice.created", {"id": 3})
    assert [j.kwargs["event"]["data"]["id"] for j in jobs_of(app, "on_order")] == [1, 2]
    assert [j.kwargs["event"]["data"]["id"] for j in jobs_of(app, "on_paid")] == [2]
    assert jobs_of(app, "on_refund") == []


def test_debounce_window_collects_events_into_one_job_seed_002_22(app: duly.App, clock: duly.VirtualClock) -> None:
    app.schedule("recompute", event="doc.updated", debounce="2s", name="debounced")
    for i in range(24):  # an event every 200 ms for 4.8 s
        app.emit("doc.updated", {"n": i})
        clock.advance(seconds=0.2)
        app.scheduler_tick()
    clock.advance(seconds=2)
    app.scheduler_tick()
    runs = jobs_of(app, "recompute")
    assert len(runs) == 3
    counts = [len(j.kwargs["events"]) for j in runs]
    assert sum(counts) == 24 and counts[0] == 10


def test_event_emitted_in_a_rolled_back_transaction_makes_no_job(backend: Any) -> None:
    app = backend.app()
    app.schedule("on_signup", event="user.created", name="signup")
    if backend.name == "sqlite":
        import sqlite3

        conn: Any = sqlite3.connect(backend.url.removeprefix("sqlite:///"), timeout=10)
    else:
        import psycopg

        conn = psycopg.connect(backend.url)
    try:
        app.emit("user.created", {"id": 1}, conn=conn)
        conn.rollback()
        app.emit("user.created", {"id": 2}, conn=conn)
        conn.commit()
    finally:
        conn.close()
    assert [j.kwargs["event"]["data"]["id"] for j in jobs_of(app, "on_signup")] == [2]


def test_manual_run_pause_resume_delete_and_state_seed_002_23(app: duly.App, clock: duly.VirtualClock) -> None:
    @app.task(name="nightly", max_attempts=1)
    def nightly(fail: bool = False) -> None:
        if fail:
            raise RuntimeError("E")

    app.schedule("nightly", cron="0 3 * * *", name="n")
    manual = app.run_trigger("n")
    assert manual.trigger_id == app.trigger("n").id
    app.schedule("nightly", manual=True, name="fails", kwargs={"fail": True})
    failed = app.run_trigger("fails")
    drain(app, advance=False)
    state = app.trigger_state("n")
    assert state.last_manual_job_id == manual.id and state.last_success is not None
    bad = app.trigger_state("fails")
    assert bad.last_failed_job_id == failed.id and bad.last_error == "RuntimeError: E"
    app.pause_trigger("n")
    assert app.trigger("n").paused and app.upcoming("n") == []
    clock.advance(days=2)
    app.scheduler_tick()
    assert len(jobs_of(app, "nightly")) == 2
    app.resume_trigger("n")
    assert app.trigger("n").next_fire_at == T0.replace(hour=3) + timedelta(days=3)  # next 03:00 after resuming
    app.delete_trigger("n")
    with pytest.raises(duly.TriggerNotFound):
        app.trigger_state("n")


def test_webhook_trigger_fires_on_its_secret(app: duly.App) -> None:
    t = app.schedule("hooked", webhook=True, name="gh")
    assert t.spec.secret and len(t.spec.secret) >= 24
    (job_id,) = app.fire_webhook(t.spec.secret, {"ref": "main"})
    assert app.get_job(job_id).kwargs["event"]["data"] == {"ref": "main"}
    with pytest.raises(duly.TriggerNotFound):
        app.fire_webhook("wrong", {})


def test_each_slot_fires_once_when_schedulers_race(app: duly.App, backend: Any, clock: duly.VirtualClock) -> None:
    other = backend.app(clock)
    app.schedule("race", every="1m", name="r")
    for _ in range(30):
        clock.advance(minutes=1)
        app.scheduler_tick()
        other.scheduler_tick()
    runs = jobs_of(app, "race")
    assert len({j.run_at for j in runs}) == len(runs) == 30


def test_recurring_named_job_next_run_seed_003_4_5_10(app: duly.App, clock: duly.VirtualClock) -> None:
    runs: list[Any] = []

    @app.task(name="sync")
    def sync(ctx: duly.JobContext) -> duly.Reschedule:
        runs.append(ctx.now())
        return duly.Reschedule(in_="1h")

    first = app.recurring("sync-accounts", "sync", next_run_in="2h")
    again = app.recurring("sync-accounts", "sync", next_run_in="5m")
    assert again.id == first.id and again.run_at == T0 + timedelta(hours=2)
    moved = app.run_at_least_within("sync-accounts", "1h")
    assert moved.run_at == T0 + timedelta(hours=1)
    assert app.run_at_least_within("sync-accounts", "2h").run_at == T0 + timedelta(hours=1)
    drain(app, until=T0 + timedelta(hours=3, minutes=30))
    assert runs == [T0 + timedelta(hours=1), T0 + timedelta(hours=2), T0 + timedelta(hours=3)]
    with pytest.raises(duly.TriggerNotFound):
        app.run_at_least_within("nope", "1h")
    with pytest.raises(duly.InvalidOption):
        app.run_at_least_within("", "1h")
