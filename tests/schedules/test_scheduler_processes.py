"""Schedulers as real OS processes: five on one PostgreSQL, three on one SQLite file, each
running ``app.scheduler_tick()`` once a second (``python -m tests.apps.schedapp``), all at the
same moment, on three triggers with a six-field cron that fires every second.

While they run, each slot makes exactly one job: no two jobs of a trigger share a run time,
the slots table has one row per job (naming that job), and no slot is skipped. Then every
scheduler stops for a while and starts again, and each catch-up policy is followed exactly,
computed from the time of the first firing after the restart (``R``): the missed slots are
those more than the misfire grace (5 s) before ``R``, the on-time ones the rest up to ``R``.

- ``skip``: no job for the missed slots (they are counted in ``missed``), on-time ones fire;
- ``latest``: one job for the missed slots (the latest of them), on-time ones fire;
- ``all``: one job per slot of the downtime, the latest ``catch_up_limit`` of them.

The issue asks for two minutes of schedulers; the test runs ``DULY_SCHED_SECONDS`` (default
25) so that the suite stays short. The full-length run, on both backends, recorded in
docs/reliability.md::

    python scripts/schedulers_full.py        # DULY_SCHED_SECONDS=120 for each backend
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from duly.core.triggers import MISFIRE_GRACE_SECONDS
from tests.conftest import Backend

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PROCESSES = {"postgres": 5, "sqlite": 3}
RUN_SECONDS = float(os.environ.get("DULY_SCHED_SECONDS", "25"))
DOWN_SECONDS = 12.0  # more than the grace: some slots of the downtime are missed
AFTER_SECONDS = 6.0
LIMIT = 4  # catch_up_limit of the "all" trigger (fewer than the slots of the downtime)
SECOND = timedelta(seconds=1)
GRACE = timedelta(seconds=MISFIRE_GRACE_SECONDS)


class Schedulers:
    """Scheduler processes of one test; whatever is left of them is killed at the end."""

    def __init__(self, backend: Backend, tmp_path: Path) -> None:
        self.backend = backend
        self.tmp_path = tmp_path
        self.procs: list[tuple[subprocess.Popen[bytes], Path]] = []
        self.stats: list[dict[str, Any]] = []

    def start(self, n: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DULY_", "PYTHON"))}
        env.update(
            DULY_TEST_URL=self.backend.url, DULY_TEST_PREFIX=self.backend.prefix,
            PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1",
        )  # fmt: skip
        for _ in range(n):
            log = self.tmp_path / f"scheduler-{len(self.procs)}.log"
            with open(log, "wb") as out:
                popen = subprocess.Popen(
                    [sys.executable, "-m", "tests.apps.schedapp"], env=env, cwd=REPO,
                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )  # fmt: skip
            self.procs.append((popen, log))

    def running(self) -> list[subprocess.Popen[bytes]]:
        return [p for p, _ in self.procs if p.poll() is None]

    def stop_all(self) -> None:
        """SIGTERM to every running scheduler, then wait for each one's last tick and stats."""
        live = [(p, log) for p, log in self.procs if p.poll() is None]
        assert len(live) == len(self.procs) - len(self.stats), self.logs()  # none died early
        for p, _ in live:
            p.send_signal(signal.SIGTERM)
        for p, log in live:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"scheduler {p.pid} did not stop:\n{self.logs()}") from None
            lines = log.read_text(errors="replace").strip().splitlines()
            assert p.returncode == 0 and lines, self.logs()
            self.stats.append(json.loads(lines[-1]))

    def logs(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')}" for _, log in self.procs)

    def kill(self) -> None:
        for p, _ in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)


def slot_rows(backend: Backend, trigger_id: int) -> list[tuple[datetime, int]]:
    """(slot time, job id) of every row of the trigger in the slots table."""
    table = backend.prefix + "slots"
    if backend.name == "sqlite":
        conn = sqlite3.connect(backend.url.removeprefix("sqlite:///"))
        try:
            rows = conn.execute(f'SELECT slot_at, job_id FROM "{table}" WHERE trigger_id = ?', (trigger_id,)).fetchall()
        finally:
            conn.close()
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        return sorted((epoch + timedelta(microseconds=at), job) for at, job in rows)
    import psycopg
    from psycopg import sql

    with psycopg.connect(backend.url) as conn:
        query = sql.SQL("SELECT slot_at, job_id FROM {} WHERE trigger_id = %s").format(sql.Identifier(table))
        rows = conn.execute(query, (trigger_id,)).fetchall()
    return sorted((at.astimezone(UTC), job) for at, job in rows)


def expected_catch_up(policy: str, downtime: list[datetime], first_fire: datetime) -> list[datetime]:
    """The slots of the downtime (all <= first_fire) that get a job under ``policy``."""
    missed = [s for s in downtime if first_fire - s > GRACE]
    on_time = [s for s in downtime if first_fire - s <= GRACE]
    if policy == "skip":
        return on_time
    if policy == "latest":
        return missed[-1:] + on_time
    return downtime[-LIMIT:]


def test_schedulers_in_processes_fire_each_slot_once_and_catch_up_by_policy(
    backend: Backend, tmp_path: Path
) -> None:
    app = backend.app()  # the real clock, as the scheduler processes have
    policies = {"latest": {}, "skip": {}, "all": {"catch_up_limit": LIMIT}}
    for policy, extra in policies.items():
        app.schedule("tick", cron="*/1 * * * * *", name=policy, catch_up=policy, **extra)
    n = PROCESSES[backend.name]
    schedulers = Schedulers(backend, tmp_path)
    started = time.monotonic()
    try:
        schedulers.start(n)
        time.sleep(RUN_SECONDS)
        schedulers.stop_all()
        stopped = datetime.now(UTC)
        missed_before = {p: app.trigger(p).missed for p in policies}
        time.sleep(DOWN_SECONDS)
        restarted = datetime.now(UTC)
        schedulers.start(n)
        time.sleep(AFTER_SECONDS + 2)  # + the processes' start-up
        schedulers.stop_all()
    finally:
        schedulers.kill()
    elapsed = time.monotonic() - started
    assert sum(s["errors"] for s in schedulers.stats) == 0, schedulers.logs()

    made = 0
    report = []
    for policy in policies:
        t = app.trigger(policy)
        jobs = sorted((j for j in app.jobs(task="tick", limit=1000) if j.trigger_id == t.id), key=lambda j: j.run_at)
        made += len(jobs)
        runs = [j.run_at for j in jobs]
        # exactly once: one job per slot, one slot row per job
        assert len(set(runs)) == len(runs), f"{policy}: a slot made two jobs"
        assert slot_rows(backend, t.id) == [(j.run_at, j.id) for j in jobs], policy
        assert all(r.microsecond == 0 for r in runs)

        before = [j.run_at for j in jobs if j.created_at < stopped]
        after = [j for j in jobs if j.created_at > restarted]
        assert len(before) + len(after) == len(jobs)
        # while the schedulers ran, no slot was skipped
        gaps = [b - a for a, b in pairwise(before)]
        assert before and max(gaps) <= 2 * SECOND, (policy, max(gaps))
        assert len(before) >= RUN_SECONDS - 5, (policy, len(before))

        # after the restart: the first firing follows the policy exactly
        first_fire = min(j.created_at for j in after)
        fraction = (first_fire - first_fire.replace(microsecond=0)).total_seconds()
        assert 0.05 < fraction < 0.95, f"first firing {first_fire} too close to a whole second"
        downtime = []
        slot = before[-1] + SECOND
        while slot <= first_fire:
            downtime.append(slot)
            slot += SECOND
        assert len(downtime) >= DOWN_SECONDS - 1, (policy, len(downtime))
        caught_up = [j.run_at for j in after if j.run_at <= first_fire]
        expected = expected_catch_up(policy, downtime, first_fire)
        assert caught_up == expected, (policy, first_fire, downtime)
        assert t.missed - missed_before[policy] == len(downtime) - len(expected), policy
        # and then every slot again, from the first one after the first firing
        later = [j.run_at for j in after if j.run_at > first_fire]
        assert later and later[0] == downtime[-1] + SECOND, (policy, later[:3])
        assert later == [later[0] + k * SECOND for k in range(len(later))], policy
        report.append(f"{policy}: {len(jobs)} jobs, {len(downtime)} slots down, {len(caught_up)} caught up")

    # every job was made by one of the processes' ticks, and more than one process made some
    assert sum(s["made"] for s in schedulers.stats) == made
    assert len([s for s in schedulers.stats if s["made"]]) > 1, schedulers.stats
    print(f"\n{backend.name}: {n} schedulers, {elapsed:.1f} s; " + "; ".join(report))
    print("jobs made per process:", [s["made"] for s in schedulers.stats])
