"""Shared plumbing: sizes, fresh databases, spawning workers, reading the probes, RSS."""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(BENCH)
APPS = os.path.join(BENCH, "apps")
BIN = os.path.dirname(sys.executable)
PG_HOST = os.environ.get("BENCH_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("BENCH_PG_PORT", "5432"))
PG_USER = os.environ.get("BENCH_PG_USER", "postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")
REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "9"))
WORK = os.environ.get("BENCH_WORK", os.path.join(tempfile.gettempdir(), "duly-bench"))


@dataclass(frozen=True)
class Size:
    name: str
    runs: int  # measurements per figure (the median is reported)
    drain: tuple[int, ...]  # jobs per drain
    bulk: int  # jobs per bulk enqueue
    single: int  # single enqueues (one transaction each)
    latency: int  # jobs at 50/s
    backlog_queued: int  # extra queued jobs
    backlog_history: int  # finished jobs in history
    memory: int  # jobs for the RSS workload
    mixed: int  # jobs of the mixed workload
    timeout: float  # seconds one measurement may take


SIZES = {
    "tiny": Size("tiny", 1, (500,), 1_000, 100, 20, 2_000, 5_000, 2_000, 200, 60),
    "small": Size("small", 3, (20_000,), 100_000, 2_000, 250, 100_000, 1_000_000, 200_000, 3_000, 300),
    "full": Size("full", 3, (20_000, 100_000), 100_000, 5_000, 500, 500_000, 10_000_000, 1_000_000, 10_000, 900),
}


# -- results -------------------------------------------------------------------------------


@dataclass
class Figure:
    """One figure of the table: a workload/variant measured for one peer."""

    workload: str
    variant: str
    peer: str
    unit: str  # "jobs/s", "ms", "%", "MiB"
    values: list[float] = field(default_factory=list)
    higher_is_better: bool = True
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def value(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload, "variant": self.variant, "peer": self.peer, "unit": self.unit,
            "values": self.values, "value": self.value, "higher_is_better": self.higher_is_better,
            "error": self.error, "extra": self.extra,
        }  # fmt: skip


class Skip(Exception):
    """This peer cannot do this workload (the reason goes in the table)."""


# -- PostgreSQL ------------------------------------------------------------------------------

_db_counter = [0]


def pg_dsn(db: str = "postgres") -> str:
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{db}"


def pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(pg_dsn(), autocommit=True) as conn:
        conn.execute(sql)


def fresh_pg(peer: str) -> str:
    """CREATE DATABASE bench_<peer>_<n> (dropped first if left over); returns its name."""
    _db_counter[0] += 1
    name = f"bench_{peer}_{os.getpid()}_{_db_counter[0]}".lower().replace("-", "_")
    pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    pg_admin(f'CREATE DATABASE "{name}"')
    return name


def drop_pg(name: str) -> None:
    try:
        pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except Exception as exc:  # noqa: BLE001
        print(f"  (could not drop {name}: {exc})", file=sys.stderr)


def pg_scalar(db: str, sql: str, params: Sequence[Any] = ()) -> Any:
    import psycopg

    with psycopg.connect(pg_dsn(db), autocommit=True) as conn:
        return conn.execute(sql, params).fetchone()[0]  # type: ignore[index]


def pg_version() -> str:
    import psycopg

    with psycopg.connect(pg_dsn(), autocommit=True) as conn:
        settings = dict(conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN "
            "('shared_buffers','synchronous_commit','fsync','max_connections','work_mem','wal_level')"
        ).fetchall())  # fmt: skip
        return str(conn.execute("SHOW server_version").fetchone()[0]) + " " + json.dumps(settings)  # type: ignore[index]


# -- SQLite and Redis --------------------------------------------------------------------------


def fresh_dir(tag: str) -> str:
    path = os.path.join(WORK, f"{tag}-{os.getpid()}-{time.monotonic_ns()}")
    os.makedirs(path)
    return path


def redis_client() -> Any:
    import redis

    return redis.Redis.from_url(REDIS_URL, db=REDIS_DB)


def fresh_redis() -> str:
    """FLUSHDB on the benchmark's own Redis db number; returns its URL."""
    redis_client().flushdb()
    return f"{REDIS_URL}/{REDIS_DB}"


# -- probes and processes -------------------------------------------------------------------


@dataclass
class Probe:
    dir: str

    @classmethod
    def fresh(cls) -> Probe:
        return cls(fresh_dir("probe"))

    def read(self) -> list[dict[str, Any]]:
        out = []
        for path in glob.glob(os.path.join(self.dir, "*.json")):
            try:
                with open(path) as f:
                    out.append(json.load(f))
            except (OSError, ValueError):
                pass
        return out

    def count(self) -> int:
        return sum(p["count"] for p in self.read())

    def span(self) -> tuple[float, float]:
        """(first job's start, last job's end) over every process."""
        _, first, last = self.snapshot()
        return first, last

    def snapshot(self) -> tuple[int, float, float]:
        """(jobs done, first job's start, last job's end) over every process, from one read
        of the probe files, so the count and the times agree."""
        ps = [p for p in self.read() if p["count"]]
        return sum(p["count"] for p in ps), min(p["first"] for p in ps), max(p["last"] for p in ps)

    def latencies(self) -> dict[int, float]:
        """seq -> when its job started (the first start, should one run twice)."""
        out: dict[int, float] = {}
        for path in glob.glob(os.path.join(self.dir, "*.lat")):
            with open(path) as f:
                for line in f:
                    seq, _, t = line.partition(" ")
                    if t.endswith("\n"):  # a whole line
                        out.setdefault(int(seq), float(t))
        return out

    def wait(self, n: int, timeout: float, procs: Sequence[subprocess.Popen[Any]] = ()) -> None:
        """Until n jobs are done (or a worker died, or the time is up)."""
        deadline = time.monotonic() + timeout
        while True:
            c = self.count()
            if c >= n:
                return
            dead = [p for p in procs if p.poll() is not None]
            if dead and len(dead) == len(procs):
                time.sleep(0.1)
                c = self.count()
                if c >= n:
                    return
                raise RuntimeError(f"worker exited (code {dead[0].returncode}) after {c} of {n} jobs{tail(dead[0])}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{c} of {n} jobs done after {timeout:.0f}s")
            time.sleep(0.01)

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def env_for(probe: Probe | None = None, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([APPS, BENCH, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    if probe is not None:
        env["BENCH_PROBE_DIR"] = probe.dir
    env.update(extra)
    return env


SPAWNED: list[subprocess.Popen[Any]] = []


def stop_all() -> None:
    """Stop every worker this harness started (at exit, also after an interrupt)."""
    stop([p for p in SPAWNED if p.poll() is None], grace=5)


def loadavg() -> float:
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except OSError:
        return -1.0


def spawn(argv: Sequence[str], env: dict[str, str], tag: str = "worker") -> subprocess.Popen[Any]:
    log = open(os.path.join(WORK, f"{tag}-{time.monotonic_ns()}.log"), "w+")
    p = subprocess.Popen(list(argv), env=env, cwd=APPS, stdout=log, stderr=subprocess.STDOUT,
                         start_new_session=True)  # fmt: skip
    p._bench_log = log  # type: ignore[attr-defined]
    SPAWNED.append(p)
    return p


def tail(p: subprocess.Popen[Any], lines: int = 6) -> str:
    log = getattr(p, "_bench_log", None)
    if log is None:
        return ""
    log.flush()
    log.seek(0)
    text = log.read().strip().splitlines()[-lines:]
    return (":\n    " + "\n    ".join(text)) if text else ""


def stop(procs: Sequence[subprocess.Popen[Any]], grace: float = 10.0, sig: int = signal.SIGTERM) -> None:
    """Signal each worker's process group, wait, then kill what is left."""
    for p in procs:
        if p.poll() is None:
            try:
                # the main process only: it stops its own children (a supervisor that
                # forwards the signal would otherwise deliver it twice)
                os.kill(p.pid, sig)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()


def wait_exit(procs: Sequence[subprocess.Popen[Any]], timeout: float) -> float:
    """Wait for burst-mode workers to exit by themselves; returns the time they all had."""
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            stop(procs)
            raise TimeoutError(f"worker did not exit within {timeout:.0f}s{tail(p)}") from None
    return time.time()


def rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def percentile(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def sqlite_version() -> str:
    return sqlite3.sqlite_version


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
