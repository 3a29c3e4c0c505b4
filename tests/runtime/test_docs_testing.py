"""The example test module of docs/testing.md runs as written (so that it cannot rot), with
pytest in a child process, on SQLite as printed and on PostgreSQL (its URL swapped in);
and ``drain`` without ``until`` jumps the virtual clock to the fire times of triggers that
fire once (``at`` / ``in``, open debounce windows), never to periodic ones."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

import duly
from duly.testing import adrain, drain
from tests.conftest import T0, Backend

REPO = Path(__file__).resolve().parents[2]
SQLITE_URL = """f"sqlite:///{tmp_path / 'test.db'}", clock=clock"""


def docs_example() -> str:
    text = (REPO / "docs" / "testing.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 1, "docs/testing.md should hold one python block: the example module"
    return blocks[0]


def test_the_docs_example_module_passes(backend: Backend, tmp_path: Path) -> None:
    code = docs_example()
    assert SQLITE_URL in code  # the App the example builds (swapped for PostgreSQL below)
    if backend.name == "postgres":
        code = code.replace(SQLITE_URL, f"{backend.url!r}, prefix={backend.prefix!r}, auto_migrate=True, clock=clock")
    (tmp_path / "test_example.py").write_text(code)
    (tmp_path / "pytest.ini").write_text("[pytest]\nfilterwarnings =\n    error\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DULY_", "PYTEST_"))}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    tests = re.findall(r"^def (test_\w+)", code, re.M)
    assert len(tests) == 4 and f"{len(tests)} passed" in run.stdout, run.stdout


def test_drain_jumps_to_at_and_in_triggers_and_debounce_windows(app: duly.App, clock: duly.VirtualClock) -> None:
    ran: list[tuple[str, object]] = []
    app.task(name="report")(lambda **kw: ran.append(("report", clock.now())))
    app.task(name="reindex")(lambda events: ran.append(("reindex", [e["data"] for e in events])))
    app.schedule("report", name="later", at=T0 + timedelta(hours=5))
    app.schedule("report", name="soon", in_="90m")
    app.schedule("reindex", name="window", event="doc.updated", debounce="10m")
    app.task(name="pulse")(lambda: None)
    app.schedule("pulse", name="hourly", every="1h")  # periodic: no jump to it without until
    app.emit("doc.updated", 1)
    clock.advance(minutes=2)
    app.emit("doc.updated", 2)

    result = drain(app)
    assert ran == [("reindex", [1, 2]), ("report", T0 + timedelta(minutes=90)), ("report", T0 + timedelta(hours=5))]
    assert result.times == [T0 + timedelta(minutes=10), T0 + timedelta(minutes=90), T0 + timedelta(hours=5)]
    assert clock.now() == T0 + timedelta(hours=5)
    # the periodic trigger fired only the slots that fell due on the way (catch-up: latest)
    assert all(j.run_at.minute == 0 for j in app.jobs(task="pulse", limit=100))
    assert [t.name for t in app.triggers()] == ["hourly", "window"]  # the one-shot ones are gone


def test_drain_leaves_a_paused_trigger_and_a_queue_it_does_not_drain(app: duly.App, clock: duly.VirtualClock) -> None:
    app.task(name="report")(lambda: None)
    app.schedule("report", name="paused", in_="1h")
    app.pause_trigger("paused")
    assert drain(app).cycles == 0 and clock.now() == T0
    app.resume_trigger("paused")
    app.schedule("report", name="elsewhere", in_="2h", queue="other")
    result = drain(app, queues=["default"])  # the 1 h trigger's job runs; the other's waits
    assert clock.now() == T0 + timedelta(hours=2)
    states = sorted((j.queue, j.state.value) for j in app.jobs(task="report"))
    assert states == [("default", "succeeded"), ("other", "queued")]
    assert result.runs == 1


@pytest.mark.parametrize("debounce", ["30s"])
def test_adrain_jumps_to_a_debounce_window_too(app: duly.App, clock: duly.VirtualClock, debounce: str) -> None:
    import asyncio

    batches: list[int] = []
    app.on_event("x", debounce=debounce, name="x")(lambda events: batches.append(len(events)))
    app.emit("x", None)
    asyncio.run(adrain(app))
    assert batches == [1] and clock.now() == T0 + timedelta(seconds=30)
