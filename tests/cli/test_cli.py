"""The operating commands through the real entry point (``python -m duly``), on both
backends: queues (counts, throughput, pause/resume), workers, prune, jobs, dashboard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import duly
from duly.core.admin import WorkerRegistration
from tests.conftest import Backend
from tests.helpers import PipeReader, claim_one, fail, succeed, wait_until


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
    assert mail["throughput"]["last_1m"] == 1 and len(mail["throughput"]["per_minute"]) == 15
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
    claim_one(app, worker="new-1")
    listed = {w["id"]: w for w in json.loads(ok(run(backend, "workers", "--json")))}
    assert listed["new-1"]["alive"] is True and listed["new-1"]["running"] == 1
    assert listed["new-1"]["queues"] == ["mail"]
    assert listed["old-1"]["alive"] is False
    table = ok(run(backend, "workers"))
    assert "new-1" in table and "alive" in table and "dead" in table


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
    bad = run(backend, "prune", "--older-than", "soon")
    assert bad.returncode == 1 and "invalid duration" in bad.stderr


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
