"""``duly triggers ...`` through the real entry point, on both backends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from typing import Any

from duly import VirtualClock
from duly.testing import drain
from tests.conftest import T0, Backend


def duly(backend: Backend, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DULY_DATABASE_URL": backend.url}
    return subprocess.run(
        [sys.executable, "-m", "duly", *args, "--prefix", backend.prefix],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip


def fields(shown: str) -> dict[str, str]:
    """The label: value rows of ``triggers show`` (labels and values are two spaces apart)."""
    rows = (line.split("  ", 1) for line in shown.splitlines() if not line.startswith(" "))
    return {r[0]: r[1].strip() for r in rows if len(r) == 2}


def test_trigger_lifecycle_from_the_cli(backend: Backend) -> None:
    backend.app().store  # create the schema  # noqa: B018
    added = duly(backend, "triggers", "add", "nightly", "--task", "reports.build", "--cron", "30 2 * * *",
                 "--tz", "Europe/Paris", "--kwargs", '{"full": true}', "--json")  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["spec"]["timezone"] == "Europe/Paris"
    shown = duly(backend, "triggers", "show", "nightly", "--json")
    data = json.loads(shown.stdout)
    assert len(data["upcoming"]) == 10 and data["trigger"]["paused"] is False
    run = duly(backend, "triggers", "run", "nightly")
    assert run.returncode == 0 and "enqueued" in run.stdout
    assert duly(backend, "triggers", "pause", "nightly").returncode == 0
    listed = json.loads(duly(backend, "triggers", "list", "--json").stdout)
    assert [(t["spec"]["name"], t["paused"]) for t in listed] == [("nightly", True)]
    assert duly(backend, "triggers", "resume", "nightly").returncode == 0
    state = json.loads(duly(backend, "triggers", "show", "nightly", "--json").stdout)["state"]
    assert state["last_manual_job_id"] is not None
    assert duly(backend, "triggers", "delete", "nightly").returncode == 0
    missing = duly(backend, "triggers", "show", "nightly")
    assert missing.returncode == 3 and "no trigger named 'nightly'" in missing.stderr


def test_bad_trigger_input_is_a_clear_error(backend: Backend) -> None:
    backend.app().store  # noqa: B018
    bad = duly(backend, "triggers", "add", "x", "--task", "t", "--cron", "not a cron")
    assert bad.returncode == 1 and "invalid cron expression" in bad.stderr
    zone = duly(backend, "triggers", "add", "y", "--task", "t", "--cron", "@daily", "--tz", "Nowhere/Land")
    assert zone.returncode == 1 and "unknown time zone" in zone.stderr
    assert json.loads(duly(backend, "triggers", "list", "--json").stdout) == []


def test_add_takes_job_options_schedule_bounds_filter_and_catch_up_limit(backend: Backend) -> None:
    """Every option of ``triggers add`` is stored, shown, and carried by the jobs it makes."""
    backend.app().store  # noqa: B018
    added = duly(backend, "triggers", "add", "pulse", "--task", "reports.build", "--every", "30m",
                 "--start", "2030-01-07T10:00:00+01:00", "--end", "2030-01-07T11:00:00Z", "--queue", "reports",
                 "--priority", "5", "--max-attempts", "2", "--expires-in", "10m", "--catch-up", "all",
                 "--catch-up-limit", "3", "--json")  # fmt: skip
    assert added.returncode == 0, added.stderr
    spec = json.loads(added.stdout)["spec"]
    assert (spec["start_at"], spec["end_at"]) == ("2030-01-07T09:00:00+00:00", "2030-01-07T11:00:00+00:00")
    assert (spec["priority"], spec["max_attempts"], spec["expires_in"], spec["queue"]) == (5, 2, 600.0, "reports")
    assert (spec["catch_up"], spec["catch_up_limit"]) == ("all", 3)
    shown = duly(backend, "triggers", "show", "pulse")
    assert shown.returncode == 0, shown.stderr
    rows = fields(shown.stdout)
    assert rows["job options"] == "queue=reports priority=5 max_attempts=2 expires_in=600"
    assert (rows["start"], rows["end"]) == ("2030-01-07 09:00:00", "2030-01-07 11:00:00")
    assert rows["catch-up"] == "all (limit 3)"

    hooked = duly(backend, "triggers", "add", "paid", "--task", "orders.ship", "--event", "order.*",
                  "--filter", '{"status": ["paid", "settled"]}', "--debounce", "5s", "--json")  # fmt: skip
    assert hooked.returncode == 0, hooked.stderr
    assert json.loads(hooked.stdout)["spec"]["filter"] == {"status": ["paid", "settled"]}
    assert json.loads(hooked.stdout)["spec"]["debounce"] == 5.0

    # the jobs the trigger makes carry its options (a virtual clock runs the stored trigger)
    app = backend.app(VirtualClock(T0))
    app.task(name="reports.build", max_attempts=9)(lambda: None)
    drain(app, until=T0 + timedelta(hours=3))
    jobs = sorted(app.jobs(task="reports.build"), key=lambda j: j.run_at)
    assert [j.run_at for j in jobs] == [T0, T0 + timedelta(minutes=30), T0 + timedelta(minutes=60),
                                        T0 + timedelta(minutes=90), T0 + timedelta(minutes=120)]  # fmt: skip
    assert {(j.queue, j.priority, j.max_attempts) for j in jobs} == {("reports", 5, 2)}
    assert all(j.expires_at == j.run_at + timedelta(minutes=10) for j in jobs)
    app.emit("order.created", {"status": "settled"})
    app.emit("order.created", {"status": "new"})
    assert [len(e) for e in [app.trigger("paid").window_events or []]] == [1]


def test_add_refuses_bad_option_values_naming_the_option(backend: Backend) -> None:
    backend.app().store  # noqa: B018
    cases = [
        (["--event", "x", "--filter", "[1]"], 2, "--filter"),  # not an object
        (["--event", "x", "--filter", "{nope"], 2, "not JSON"),
        (["--every", "1h", "--expires-in", "soon"], 2, "--expires-in"),
        (["--event", "x", "--debounce", "later"], 2, "--debounce"),
        (["--every", "1h", "--catch-up-limit", "0"], 2, "--catch-up-limit"),
        (["--every", "1h", "--max-attempts", "many"], 2, "--max-attempts"),
        (["--every", "1h", "--max-attempts", "0"], 1, "max_attempts"),
        (["--every", "1h", "--start", "tomorrow"], 1, "ISO 8601"),
        (["--every", "1h", "--start", "2030-01-07T10:00:00+00:00", "--end", "2030-01-07T09:00:00+00:00"], 1,
         "end is not after start"),
    ]  # fmt: skip
    for extra, code, message in cases:
        bad = duly(backend, "triggers", "add", "bad", "--task", "t", *extra)
        assert (bad.returncode, message in bad.stderr) == (code, True), (extra, bad.stderr)
    assert json.loads(duly(backend, "triggers", "list", "--json").stdout) == []


def test_show_counts_the_missed_slots(backend: Backend) -> None:
    """``triggers show`` prints the missed count kept by catch-up (and its state's jobs)."""
    clock = VirtualClock(T0)
    app = backend.app(clock)
    app.schedule("reports.build", cron="@hourly", name="hourly", catch_up="latest")
    clock.advance(hours=4, minutes=30)  # 10:00 .. 13:00 due: one job, three missed
    app.scheduler_tick()
    assert app.trigger("hourly").missed == 3
    shown = duly(backend, "triggers", "show", "hourly")
    assert shown.returncode == 0, shown.stderr
    rows = fields(shown.stdout)
    assert rows["missed slots"] == "3"
    assert rows["status"] == "queued"
    assert json.loads(duly(backend, "triggers", "show", "hourly", "--json").stdout)["trigger"]["missed"] == 3


def test_pause_resume_run_and_delete_print_json(backend: Backend) -> None:
    backend.app().store  # noqa: B018
    assert duly(backend, "triggers", "add", "nightly", "--task", "reports.build", "--cron", "30 2 * * *").returncode == 0

    def as_json(*args: str) -> Any:
        done = duly(backend, "triggers", *args, "nightly", "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    paused = as_json("pause")
    assert (paused["spec"]["name"], paused["paused"]) == ("nightly", True)
    resumed = as_json("resume")
    assert resumed["paused"] is False and resumed["next_fire_at"] is not None
    ran = as_json("run")["job"]
    assert ran["task"] == "reports.build" and ran["state"] == "queued"
    assert backend.app().trigger_state("nightly").last_manual_job_id == ran["id"]
    assert as_json("delete") == {"deleted": "nightly"}
    assert json.loads(duly(backend, "triggers", "list", "--json").stdout) == []
    missing = duly(backend, "triggers", "pause", "nightly", "--json")
    assert missing.returncode == 3 and missing.stdout == ""
