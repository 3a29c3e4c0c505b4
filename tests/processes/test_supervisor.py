"""The supervisor of ``duly worker --processes P``: burst runs end, children die with it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import duly
from duly.core.states import JobState
from tests.conftest import Backend

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_burst_with_several_processes_runs_what_is_due_and_exits(backend: Backend) -> None:
    app: duly.App = backend.app()
    ids = app.enqueue_many(duly.Enqueue("noop") for _ in range(200))
    env = {**os.environ, "DULY_TEST_URL": backend.url, "DULY_TEST_PREFIX": backend.prefix, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "duly", "worker", "--app", "tests.apps.procapp:app", "--processes", "2",
         "--burst", "--concurrency", "20"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {app.get_job(i).state for i in ids} == {JobState.SUCCEEDED}
