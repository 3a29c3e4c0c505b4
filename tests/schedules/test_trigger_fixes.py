"""Regressions of the schedules, on both backends: a debounce window never loses an event
appended while a scheduler closes it, resuming keeps an open window, ``upcoming`` of an
``every`` trigger, triggers past their end, never-firing cron expressions, and the slot of a
daily cron created on the day clocks go forward."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import duly
from tests.conftest import T0


def jobs_of(app: duly.App, task: str) -> list[duly.Job]:
    return sorted(app.jobs(task=task, limit=1000), key=lambda j: j.id)


def test_event_appended_while_the_window_closes_gets_a_job(app: duly.App, clock: duly.VirtualClock) -> None:
    app.schedule("recompute", event="doc.updated", debounce="2s", name="deb")
    app.emit("doc.updated", {"n": 1})
    clock.advance(seconds=2)
    store: Any = app.store
    read = store.due_triggers

    def racing(limit: int = 100) -> Any:
        found = read(limit)
        app.emit("doc.updated", {"n": 2})  # another process appends between read and fire
        return found

    store.due_triggers = racing
    try:
        assert app.scheduler_tick() == 1
    finally:
        del store.due_triggers
    t = app.trigger("deb")  # the late event is in a new window, one debounce from now
    assert [e["data"] for e in t.window_events or []] == [{"n": 2}]
    assert t.next_fire_at == T0 + timedelta(seconds=4)
    assert t.last_job_id == jobs_of(app, "recompute")[0].id
    clock.advance(seconds=2)
    app.scheduler_tick()
    runs = jobs_of(app, "recompute")
    assert [[e["data"]["n"] for e in j.kwargs["events"]] for j in runs] == [[1], [2]]
    t = app.trigger("deb")
    assert t.window_events is None and t.next_fire_at is None


def test_resuming_an_event_trigger_keeps_its_open_window(app: duly.App, clock: duly.VirtualClock) -> None:
    app.schedule("recompute", event="doc.updated", debounce="10s", name="deb")
    app.emit("doc.updated", {"n": 1})
    app.pause_trigger("deb")
    clock.advance(seconds=30)
    app.scheduler_tick()
    assert jobs_of(app, "recompute") == []
    app.resume_trigger("deb")
    assert app.trigger("deb").next_fire_at == T0 + timedelta(seconds=10)
    app.scheduler_tick()  # the window (ended while paused) closes at once with its event
    assert [len(j.kwargs["events"]) for j in jobs_of(app, "recompute")] == [1]


def test_upcoming_of_every_without_start_counts_from_the_next_slot(app: duly.App, clock: duly.VirtualClock) -> None:
    app.schedule("pulse", every="1h", name="hourly")
    assert app.trigger("hourly").next_fire_at == T0 + timedelta(hours=1)
    assert app.upcoming("hourly", 3) == [T0 + timedelta(hours=h) for h in (1, 2, 3)]


def test_trigger_added_or_resumed_after_its_end_never_fires(app: duly.App, clock: duly.VirtualClock) -> None:
    end = T0 - timedelta(hours=1)
    app.schedule("late", every="10m", start=T0 - timedelta(days=1), end=end, name="every-over")
    app.schedule("late", cron="@hourly", end=end, name="cron-over")
    assert app.trigger("every-over").next_fire_at is None
    assert app.trigger("cron-over").next_fire_at is None
    app.schedule("late", cron="@hourly", end=T0 + timedelta(hours=2), name="ends-soon")
    app.pause_trigger("ends-soon")
    clock.advance(hours=3)
    app.resume_trigger("ends-soon")
    assert app.trigger("ends-soon").next_fire_at is None
    clock.advance(days=1)
    app.scheduler_tick()
    assert jobs_of(app, "late") == []


def test_cron_that_never_fires_is_refused(app: duly.App) -> None:
    with pytest.raises(duly.InvalidOption, match="never fires"):
        app.schedule("t", cron="0 0 31 2 *")
    with pytest.raises(duly.InvalidOption, match="unknown time zone"):
        app.schedule("t", cron="0 0 * * *", tz=5)  # type: ignore[arg-type]
    assert app.triggers() == []


@pytest.mark.parametrize(
    ("tz", "created", "fires"),
    [  # created after the jump, before the shifted 02:30 (= 03:30 local): that slot is kept
        ("America/New_York", datetime(2030, 3, 10, 7, 10, tzinfo=UTC), datetime(2030, 3, 10, 7, 30, tzinfo=UTC)),
        ("Europe/Paris", datetime(2030, 3, 31, 1, 10, tzinfo=UTC), datetime(2030, 3, 31, 1, 30, tzinfo=UTC)),
    ],
)
def test_daily_cron_created_just_after_clocks_go_forward_keeps_that_days_slot(
    backend: Any, tz: str, created: datetime, fires: datetime
) -> None:
    app = backend.app(duly.VirtualClock(created))
    app.schedule("wake", cron="30 2 * * *", tz=tz, name="wake")
    assert app.trigger("wake").next_fire_at == fires


def test_bad_trigger_options_are_invalid_options(app: duly.App, clock: duly.VirtualClock) -> None:
    with pytest.raises(duly.InvalidOption, match="catch_up must be one of 'skip', 'latest', 'all'"):
        app.schedule("t", cron="@hourly", catch_up="bogus")
    with pytest.raises(duly.InvalidOption, match="catch_up_limit must be an integer"):
        app.schedule("t", cron="@hourly", catch_up="all", catch_up_limit="5")
    with pytest.raises(duly.InvalidOption, match="has no UTC offset"):
        app.schedule("t", cron="@hourly", start="2030-01-07T12:00:00")
    assert app.triggers() == []
    t = app.schedule("t", every="30m", start="2030-01-07T10:15:00+01:00", end="2030-01-07T11:00:00Z")
    assert app.upcoming(t.name) == [T0 + timedelta(minutes=m) for m in (15, 45, 75, 105)]
