"""Processes, databases and readings for the fault-injection checks (``tests/chaos/checks.py``).

A ``Place`` is one check's database (a SQLite file, or a table prefix on PostgreSQL) and its
ledger. A ``Fleet`` starts real ``duly worker`` processes on it (``tests.apps.chaosapp:app``),
each in a session of its own so that its whole process group can be killed at the end.
"""

from __future__ import annotations

import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import duly
from tests.apps.chaosapp import register
from tests.chaos.ledger import Ledger

REPO = Path(__file__).resolve().parents[2]
APP_PATH = "tests.apps.chaosapp:app"
LIVE = ("queued", "running", "retrying")
T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Place:
    """One check's database and ledger."""

    backend: str  # "sqlite" or "postgres"
    url: str
    prefix: str
    dir: Path
    ledger: Ledger
    apps: list[duly.App] = field(default_factory=list)

    @classmethod
    def make(cls, backend: str, dir: Path, pg_url: str | None = None) -> Place:
        dir.mkdir(parents=True, exist_ok=True)
        if backend == "sqlite":
            url, prefix = f"sqlite:///{dir / 'queue.db'}", "duly_"
        else:
            assert pg_url, "a PostgreSQL URL is needed"
            url, prefix = pg_url, f"c{secrets.token_hex(4)}_"
        place = cls(backend, url, prefix, dir, Ledger(str(dir / "ledger.db")))
        place.app().migrate()
        return place

    def app(self, **kw: Any) -> duly.App:
        """An App with the chaos tasks (real clock); closed with the place."""
        app = register(duly.App(self.url, prefix=self.prefix, auto_migrate=True, **kw))
        self.apps.append(app)
        return app

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DULY_", "PYTHON"))}
        env.update(
            DULY_TEST_URL=self.url,
            DULY_TEST_PREFIX=self.prefix,
            DULY_CHAOS_LEDGER=self.ledger.path,
            PYTHONPATH=str(REPO),
            PYTHONUNBUFFERED="1",
            COLUMNS="500",
        )
        env.update(extra)
        return env

    # -- reading the queue ----------------------------------------------------------------

    @contextmanager
    def sql(self) -> Iterator[Callable[..., list[Any]]]:
        """Run raw SQL on the queue's database (``{jobs}``, ``{attempts}``, ``{slots}`` expand)."""
        names = {t: self.prefix + t for t in ("jobs", "attempts", "slots", "triggers")}
        if self.backend == "sqlite":
            conn = sqlite3.connect(self.url.removeprefix("sqlite:///"), timeout=30)
            try:
                yield lambda q, p=(): conn.execute(q.format(**names), p).fetchall()
            finally:
                conn.close()
        else:
            import psycopg

            with psycopg.connect(self.url, autocommit=True) as pg:
                yield lambda q, p=(): pg.execute(q.format(**names).replace("?", "%s"), p).fetchall()

    def states(self) -> dict[int, str]:
        with self.sql() as q:
            return {i: s for i, s in q("SELECT id, state FROM {jobs}")}

    def live(self) -> int:
        with self.sql() as q:
            return int(
                q("SELECT count(*) FROM {jobs} WHERE state IN ('queued', 'running', 'retrying')")[
                    0
                ][0]
            )

    def attempt_outcomes(self) -> dict[tuple[int, int], str]:
        with self.sql() as q:
            return {(j, a): o for j, a, o in q("SELECT job_id, attempt, outcome FROM {attempts}")}

    def consistency(self) -> list[str]:
        """Every finished job has one attempt row per attempt, all lost but the last, which
        carries the job's outcome; no finished job still holds a lease (no half-written row)."""
        problems = []
        with self.sql() as q:
            jobs = q(
                "SELECT id, state, attempt, worker_id, lease_expires_at, finished_at FROM {jobs}"
            )
            rows: dict[int, dict[int, str]] = {}
            for j, a, o in q("SELECT job_id, attempt, outcome FROM {attempts}"):
                rows.setdefault(j, {})[a] = o
            if self.backend == "sqlite":
                check = q("PRAGMA integrity_check")[0][0]
                if check != "ok":
                    problems.append(f"PRAGMA integrity_check: {check}")
        for job_id, state, attempt, _worker, lease, finished in jobs:
            if state in LIVE:
                continue
            got = rows.get(job_id, {})
            if state == "succeeded":
                want = {n: "lost" for n in range(1, attempt)} | {attempt: "succeeded"}
                # an attempt may also have been handed back (interrupted) at a graceful stop
                got_norm = {
                    n: ("lost" if o in ("lost", "interrupted") else o) for n, o in got.items()
                }
                if got_norm != want:
                    problems.append(
                        f"job {job_id} succeeded at attempt {attempt} with attempt rows {got}"
                    )
            if lease is not None or finished is None and state != "retrying":
                problems.append(f"job {job_id} is {state} but lease={lease} finished_at={finished}")
        return problems

    def close(self) -> None:
        for app in self.apps:
            app.close()
        self.ledger.close()
        if self.backend == "postgres":
            from tests.conftest import drop_prefix

            drop_prefix(self.url, self.prefix)


class Proc:
    def __init__(self, popen: subprocess.Popen[bytes], log: Path, env: dict[str, str]) -> None:
        self.popen, self.pid, self.log_path, self.env = popen, popen.pid, log, env

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


class Fleet:
    """Worker processes of one check; ``cleanup`` kills every process group it started."""

    def __init__(self, place: Place) -> None:
        self.place = place
        self.procs: list[Proc] = []

    def start(self, *args: str, env: dict[str, str] | None = None) -> Proc:
        argv = [
            sys.executable,
            "-m",
            "duly.cli",
            "worker",
            "--app",
            APP_PATH,
            "--grace",
            "2",
            *args,
        ]
        log = self.place.dir / f"worker-{len(self.procs)}.log"
        env = env or self.place.env()
        with open(log, "wb") as out:
            popen = subprocess.Popen(argv, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        proc = Proc(popen, log, env)
        self.procs.append(proc)
        self.place.ledger.fault("start", proc.pid)
        return proc

    def kill(
        self, proc: Proc, sig: int = signal.SIGKILL, kind: str = "kill", pid: int | None = None
    ) -> None:
        """Signal ``pid`` (default: the process itself), recording it in the ledger first."""
        target = pid or proc.pid
        self.place.ledger.fault(kind, target)
        try:
            os.kill(target, sig)
        except ProcessLookupError:
            pass

    def stop(self, proc: Proc, timeout: float = 20.0) -> int:
        if proc.alive():
            proc.popen.send_signal(signal.SIGTERM)
        try:
            return proc.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"worker {proc.pid} did not stop; log:\n{proc.log()[-3000:]}"
            ) from None

    def cleanup(self) -> None:
        for proc in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGCONT)
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                proc.popen.wait(10)
            except subprocess.TimeoutExpired:
                pass

    def logs(self) -> str:
        return "\n".join(
            f"---- worker pid {p.pid} exit {p.popen.returncode}\n{p.log()[-4000:]}"
            for p in self.procs
        )

    def grep(self, text: str) -> list[str]:
        return [line for p in self.procs for line in p.log().splitlines() if text in line]


def children(pid: int) -> list[int]:
    """Live (non-zombie) children of ``pid``, from /proc."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if fields[0] != "Z" and int(fields[1]) == pid:
            out.append(int(entry.name))
    return sorted(out)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def drain(place: Place, fleet: Fleet, timeout: float, *args: str) -> float:
    """The final drain with no faults: one clean worker until no job is live; its seconds."""
    t0 = time.monotonic()
    proc = fleet.start("--concurrency", "10", *args)
    try:
        wait_until(lambda: place.live() == 0, timeout, "the final drain")
    except AssertionError:
        raise AssertionError(f"final drain incomplete; logs:\n{fleet.logs()}") from None
    fleet.stop(proc)
    return time.monotonic() - t0


def read_crash_log(place: Place, path: Path) -> list[tuple[str, int, list[tuple[int, int]]]]:
    """Crash lines (point, pid, [(job, attempt)]) from DULY_CRASH_LOG."""
    out = []
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        point, pid, detail = (line.split(" ", 2) + [""])[:3]
        held = []
        for part in filter(None, detail.split(",")):
            job, _, attempt = part.partition(":")
            if job.isdigit() and attempt.isdigit():
                held.append((int(job), int(attempt)))
        out.append((point, int(pid), held))
    return out
