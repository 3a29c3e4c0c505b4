"""``duly triggers ...`` through the real entry point, on both backends."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import Backend


def duly(backend: Backend, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DULY_DATABASE_URL": backend.url}
    return subprocess.run(
        [sys.executable, "-m", "duly", *args, "--prefix", backend.prefix],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip


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
