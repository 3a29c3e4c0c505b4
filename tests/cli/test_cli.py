"""The operating commands through the real entry point (``python -m duly``), on both
backends: queues (counts, throughput, pause/resume), workers, prune, jobs, dashboard."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import duly
from duly.core.admin import WorkerRegistration
from tests.conftest import Backend
from tests.helpers import PipeReader, claim, claim_one, fail, succeed, wait_until


def run(backend: Backend | None, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    extra: list[str] = []
    if backend is not None:
        env["DULY_DATABASE_URL"] = backend.url
        extra = ["--prefix", backend.prefix]
    return subprocess.run(
        [sys.executable, "-m", "duly", *args, *extra],
        capture_output=True, text=True, env=env, timeout=60, input=stdin, check=False,
    )  # fmt: skip


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_queues_show_counts_throughput_and_pause(backend: Backend) -> None:
    app = backend.app()
    for q in ("mail", "mail", "mail", "images"):
        app.enqueue("t", queue=q)
    app.enqueue("t", queue="mail", run_in=3600)
    succeed(app, claim_one(app))
    report = {q["queue"]: q for q in json.loads(ok(run(backend, "queues", "--json")))}
    assert set(report) == {"mail", "images"}
    mail = report["mail"]
    assert mail["counts"]["succeeded"] == 1 and mail["counts"]["queued"] == 2
    assert mail["counts"]["scheduled"] == 1 and mail["paused"] is False
    # calendar minutes: the job ended in this minute or, across a minute's turn, the one before
    per_minute = mail["throughput"]["per_minute"]
    assert len(per_minute) == 15 and sum(per_minute[-2:]) == 1 and mail["throughput"]["last_15m"] == 1
    assert mail["throughput"]["last_1m"] == per_minute[-1]
    assert mail["estimated"] == [] and mail["latency_seconds"] >= 0

    assert "queue 'mail' paused" in ok(run(backend, "queues", "pause", "mail"))
    assert "already paused" in ok(run(backend, "queues", "pause", "mail"))
    assert app.paused_queues() == ["mail"]
    table = ok(run(backend, "queues"))
    assert "mail (paused)" in table and "images" in table
    resumed = json.loads(ok(run(backend, "queues", "resume", "mail", "--json")))
    assert resumed == {"queue": "mail", "paused": False, "changed": True}
    assert app.paused_queues() == []


def test_workers_lists_alive_and_dead(backend: Backend) -> None:
    past = duly.VirtualClock(datetime.now(UTC) - timedelta(minutes=10))
    backend.app(past).store.register_worker(WorkerRegistration("old-1", "h1", 11, None, 4))
    app = backend.app()
    app.store.register_worker(WorkerRegistration("new-1", "h2", 22, ["mail"], 8))
    app.enqueue("t")
    app.enqueue("t")
    app.enqueue("t")
    held = sorted(j.id for j in claim(app, 2, worker="new-1"))
    listed = {w["id"]: w for w in json.loads(ok(run(backend, "workers", "--json")))}
    assert listed["new-1"]["alive"] is True and listed["new-1"]["running"] == 2
    assert listed["new-1"]["job_ids"] == held  # which jobs, not only how many
    assert listed["new-1"]["queues"] == ["mail"]
    assert listed["old-1"]["alive"] is False and listed["old-1"]["job_ids"] == []
    table = ok(run(backend, "workers"))
    assert "new-1" in table and "alive" in table and "dead" in table
    row = next(line for line in table.splitlines() if "new-1" in line)
    assert f"{held[0]} {held[1]}" in row


def test_prune_deletes_old_finished_jobs(backend: Backend) -> None:
    past = backend.app(duly.VirtualClock(datetime.now(UTC) - timedelta(days=10)))
    for _ in range(2):
        past.enqueue("t")
    succeed(past, claim_one(past))
    fail(past, claim_one(past), retry_in=None)
    app = backend.app()
    fresh = app.enqueue("t")
    succeed(app, claim_one(app))
    dry = json.loads(ok(run(backend, "prune", "--older-than", "7d", "--dry-run", "--json")))
    assert dry["would_delete"] == 2 and dry["dry_run"] is True
    done = json.loads(ok(run(backend, "prune", "--older-than", "7d", "--batch", "1", "--json")))
    assert done["deleted"] == 2
    assert [(j.id, j.state.value) for j in app.jobs()] == [(fresh.id, "succeeded")]
    assert "deleted 0 finished job(s)" in ok(run(backend, "prune", "--older-than", "7d"))
    bad = run(backend, "prune", "--older-than", "soon")  # a usage error, like the worker's
    assert bad.returncode == 2 and "invalid duration" in bad.stderr and "--older-than" in bad.stderr
    assert run(backend, "prune", "--older-than", "-1d").returncode == 2


def test_jobs_commands_and_exit_codes(backend: Backend) -> None:
    app = backend.app()
    a = app.enqueue("reports.build", args=[1], queue="reports")
    b = app.enqueue("reports.build", args=[2], queue="reports")
    app.enqueue("mail.send", queue="mail")
    fail(app, claim_one(app), retry_in=None, message="disk full")  # job a fails
    listed = json.loads(ok(run(backend, "jobs", "list", "--queue", "reports", "--json")))
    assert [j["id"] for j in listed] == [b.id, a.id]
    assert [j["id"] for j in json.loads(ok(run(backend, "jobs", "list", "--search", "disk", "--json")))] == [a.id]
    shown = json.loads(ok(run(backend, "jobs", "show", str(a.id), "--json")))
    assert shown["job"]["state"] == "failed" and shown["attempts"][0]["error_message"] == "disk full"
    assert "disk full" in ok(run(backend, "jobs", "show", str(a.id)))
    retried = json.loads(ok(run(backend, "jobs", "retry", "--state", "failed", "--yes", "--json")))
    assert retried == {"done": [a.id], "errors": []}
    assert app.get_job(a.id).state is duly.JobState.QUEUED
    assert ok(run(backend, "jobs", "cancel", str(b.id))).strip() == "cancel: 1 job(s)"
    again = run(backend, "jobs", "cancel", str(b.id))
    assert again.returncode == 4  # conflict: already cancelled
    missing = run(backend, "jobs", "show", "999999")
    assert missing.returncode == 3 and "no job with id 999999" in missing.stderr
    assert run(backend, "jobs", "delete", "999999").returncode == 3
    ok(run(backend, "jobs", "delete", str(b.id)))
    assert app.store.get_job(b.id) is None
    refused = run(backend, "jobs", "retry", "--queue", "reports", stdin="n\n")
    assert refused.returncode == 1 and "Aborted" in refused.stderr


def test_enqueue_and_migrate(backend: Backend) -> None:
    backend.app().store  # noqa: B018 - create the schema
    job = json.loads(ok(run(backend, "enqueue", "reports.build", "--args", '["<b>x</b>"]', "--queue", "r", "--json")))
    assert job["args"] == ["<b>x</b>"] and job["queue"] == "r"
    assert "schema at version" in ok(run(backend, "migrate"))
    assert json.loads(ok(run(backend, "migrate", "--json")))["schema_version"] >= 3


def test_dashboard_refuses_a_public_address_without_a_token() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DULY_DASHBOARD_TOKEN"}
    result = subprocess.run(
        [sys.executable, "-m", "duly", "dashboard", "--host", "0.0.0.0", "--url", "sqlite:///unused.db"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--token" in result.stderr and "0.0.0.0" in result.stderr


def test_every_command_has_help() -> None:
    for args in (["--help"], ["queues", "--help"], ["queues", "pause", "--help"], ["workers", "--help"],
                 ["prune", "--help"], ["dashboard", "--help"]):  # fmt: skip
        result = run(None, *args)
        assert result.returncode == 0 and "Usage:" in result.stdout, args


def test_worker_prune_after_option(backend: Backend) -> None:
    app = backend.app(duly.VirtualClock(datetime.now(UTC) - timedelta(days=3)))
    app.enqueue("t")
    succeed(app, claim_one(app))
    env = {**os.environ, "DULY_TEST_URL": backend.url, "DULY_TEST_PREFIX": backend.prefix}
    base = [sys.executable, "-m", "duly", "worker", "--app", "tests.apps.procapp:app",
            "--url", backend.url, "--prefix", backend.prefix]  # fmt: skip
    bad = subprocess.run([*base, "--prune-after", "soon"], capture_output=True, text=True, env=env, timeout=60, check=False)
    assert bad.returncode == 2 and "invalid duration" in bad.stderr
    kept = subprocess.run([*base, "--burst", "--prune-after", "never"], capture_output=True, text=True,
                          env=env, timeout=60, check=False)  # fmt: skip
    assert kept.returncode == 0, kept.stderr
    assert len(app.jobs()) == 1
    worker = subprocess.Popen([*base, "--prune-after", "2d"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert worker.stderr is not None
    log = PipeReader(worker.stderr)
    try:
        wait_until(lambda: "worker.prune" in log.text(), timeout=30, what="the worker's first pruning round")
        assert app.jobs() == []
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    err = log.close()
    assert worker.returncode == 0, err
    assert "deleted=1" in err


def test_jobs_list_filters_by_state_and_task_and_pages_with_before(backend: Backend) -> None:
    app = backend.app()
    mail = [app.enqueue("mail.send", queue="mail").id for _ in range(5)]
    reports = [app.enqueue("reports.build", queue="reports").id for _ in range(2)]
    fail(app, claim_one(app), retry_in=None, message="smtp down")  # mail[0]
    succeed(app, claim_one(app))  # mail[1]
    failed = json.loads(ok(run(backend, "jobs", "list", "--state", "failed", "--json")))
    assert [(j["id"], j["state"], j["last_error"]) for j in failed] == [(mail[0], "failed", "RuntimeError: smtp down")]
    queued = json.loads(ok(run(backend, "jobs", "list", "--state", "queued", "--json")))
    assert [j["id"] for j in queued] == [*reversed(reports), *reversed(mail[2:])]
    by_task = json.loads(ok(run(backend, "jobs", "list", "--task", "reports.build", "--json")))
    assert [j["id"] for j in by_task] == list(reversed(reports))
    both = json.loads(ok(run(backend, "jobs", "list", "--task", "mail.send", "--state", "succeeded", "--json")))
    assert [j["id"] for j in both] == [mail[1]]
    assert json.loads(ok(run(backend, "jobs", "list", "--task", "no.such.task", "--json"))) == []
    assert run(backend, "jobs", "list", "--state", "sleeping").returncode == 2
    # a page walk: --limit 3, then --before the last id shown, as the table's hint says
    seen: list[int] = []
    before: list[str] = []
    while True:
        table = ok(run(backend, "jobs", "list", "--limit", "3", *before))
        page = json.loads(ok(run(backend, "jobs", "list", "--limit", "3", "--json", *before)))
        seen += [j["id"] for j in page]
        if len(page) < 3:
            assert "more:" not in table
            break
        assert f"more: --before {page[-1]['id']}" in table
        before = ["--before", str(page[-1]["id"])]
    assert seen == sorted(mail + reports, reverse=True)


def test_jobs_show_prints_progress_result_attempts_and_log(backend: Backend) -> None:
    app = backend.app()
    job = app.enqueue("reports.build", args=[2024], kwargs={"region": "eu"}, queue="reports")
    fail(app, claim_one(app), retry_in=0, message="disk full", log="opened report\ngave up")
    second = claim_one(app)
    app.set_progress(second.id, second.attempt, 3, 10)
    succeed(app, second, result={"pages": 3}, log="opened report\nwrote 3 pages")
    text = ok(run(backend, "jobs", "show", str(job.id)))
    lines = [line.rstrip() for line in text.splitlines()]
    fields = {parts[0]: parts[1].strip() for line in lines if len(parts := line.split("  ", 1)) == 2 and parts[0]}
    assert fields["state"] == "succeeded" and fields["task"] == "reports.build"
    assert fields["args"] == "[2024]" and fields["kwargs"] == '{"region": "eu"}'
    assert fields["progress"] == "3/10" and fields["result"] == '{"pages": 3}'
    first = lines.index(next(line for line in lines if line.startswith("attempt 1 ")))
    assert lines[first].startswith("attempt 1 failed") and "worker w1" in lines[first]
    assert lines[first + 1] == "RuntimeError: disk full"
    assert lines[first + 2] == "Traceback ..."
    assert lines[first + 3 : first + 5] == ["opened report", "gave up"]
    second_head = next(i for i, line in enumerate(lines) if line.startswith("attempt 2 "))
    assert lines[second_head].startswith("attempt 2 succeeded")
    assert lines[second_head + 1 : second_head + 3] == ["opened report", "wrote 3 pages"]


def test_bulk_actions_exit_codes_by_error_type(backend: Backend) -> None:
    app = backend.app()
    a = app.enqueue("t")
    assert run(backend, "jobs", "retry", "999998", "999999").returncode == 3  # none exists
    mixed = run(backend, "jobs", "retry", str(a.id), "999999", "--json")  # a is queued: refused
    assert mixed.returncode == 4
    report = json.loads(mixed.stdout)
    assert report["done"] == [] and [e["id"] for e in report["errors"]] == [a.id, 999999]
    assert run(backend, "jobs", "cancel", "999999").returncode == 3
    assert run(backend, "jobs", "delete", "999999").returncode == 3


#: Rich draws on a terminal only; these make it believe stderr is one.
TTY = {"TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1"}


def run_tty(backend: Backend, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1", "DULY_DATABASE_URL": backend.url, **TTY}
    return subprocess.run([sys.executable, "-m", "duly", *args, "--prefix", backend.prefix],
                          capture_output=True, text=True, env=env, timeout=60, check=False)  # fmt: skip


def test_bulk_retry_and_prune_show_a_progress_bar_on_a_terminal(backend: Backend) -> None:
    from duly.cli.jobs import PROGRESS_FROM

    app = backend.app()
    n = PROGRESS_FROM + 10
    for _ in range(n):
        app.enqueue("t", queue="bulk")
    for job in claim(app, n):
        fail(app, job, retry_in=None)
    done = run_tty(backend, "jobs", "retry", "--state", "failed", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["done"]) == n  # stdout stays JSON: the bar is on stderr
    assert "retry" in done.stderr and f"{n}/{n}" in done.stderr and "━" in done.stderr
    # not on a pipe, and not for a few jobs
    for job in claim(app, n):
        fail(app, job, retry_in=None)
    piped = run(backend, "jobs", "retry", "--state", "failed", "--yes")
    assert piped.returncode == 0 and f"{n}/{n}" not in piped.stderr and "━" not in piped.stderr
    few = app.jobs(state="queued", limit=3)
    small = run_tty(backend, "jobs", "cancel", *(str(j.id) for j in few))
    assert small.returncode == 0 and "━" not in small.stderr

    old = backend.app(duly.VirtualClock(datetime.now(UTC) - timedelta(days=10)))
    for _ in range(30):
        old.enqueue("t", queue="old")
    for job in claim(old, 30, queues=["old"]):
        succeed(old, job)
    pruned = run_tty(backend, "prune", "--older-than", "7d", "--batch", "10")
    assert pruned.returncode == 0, pruned.stderr
    assert "deleted 30 finished job(s)" in pruned.stdout
    assert "pruning" in pruned.stderr and "30/30" in pruned.stderr


def test_dashboard_command_serves_until_stopped(tmp_path: Path) -> None:
    """``duly dashboard`` as a user starts it: a process that listens, answers, and stops
    cleanly on SIGTERM."""
    import socket

    import httpx

    url = f"sqlite:///{tmp_path / 'dash.db'}"
    duly.App(url).enqueue("reports.build", queue="reports")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "DULY_DASHBOARD_TOKEN"}
    proc = subprocess.Popen([sys.executable, "-m", "duly", "dashboard", "--url", url, "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stderr is not None
    log = PipeReader(proc.stderr)
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(base + "/healthz", timeout=2).text == "ok"
        except httpx.TransportError:
            assert proc.poll() is None, log.text()
            return False

    try:
        wait_until(healthy, timeout=30, what="the dashboard's /healthz")
        queues = httpx.get(base + "/api/queues", timeout=10).json()
        assert [(q["queue"], q["counts"]["queued"]) for q in queues] == [("reports", 1)]
        assert "Overview" in httpx.get(base + "/", timeout=10).text
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    err = log.close()
    # uvicorn shuts down gracefully, then ends by the signal it caught (as a shell expects)
    assert proc.returncode in (0, -signal.SIGTERM), err
    assert f"duly dashboard on http://127.0.0.1:{port}/" in err and "Traceback" not in err
    with pytest.raises(httpx.TransportError):
        httpx.get(base + "/healthz", timeout=2)
