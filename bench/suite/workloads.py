"""The workloads. Each takes a peer class and a Size and returns Figures (median of runs)."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any

from suite.common import (
    Figure, Probe, Size, Skip, env_for, loadavg, log, percentile, rss_kib, spawn, stop, wait_exit,
)  # fmt: skip
from suite.peers import Peer, mixed_specs


def measure(fig: Figure, runs: int, once: Callable[[], float | tuple[float, dict[str, Any]]]) -> Figure:
    """Run ``once`` ``runs`` times into ``fig``; a Skip or an error ends it with a note."""
    for i in range(runs):
        load = loadavg()
        try:
            out = once()
        except Skip as exc:
            fig.error = f"n/a: {exc}"
            return fig
        except Exception as exc:  # noqa: BLE001
            fig.error = f"error: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__}"
            log(f"    {fig.peer} {fig.workload}/{fig.variant}: {type(exc).__name__}: {exc}")
            log("    " + traceback.format_exc().replace("\n", "\n    ")[-1500:])
            return fig
        value, extra = out if isinstance(out, tuple) else (out, {})
        extra = {**extra, "load1": load}
        fig.values.append(value)
        for k, v in extra.items():
            fig.extra.setdefault(k, []).append(v)
        log(f"    {fig.peer:<14} {fig.workload}/{fig.variant} run {i + 1}: {value:,.1f} {fig.unit} {extra or ''}")
    return fig


def _start_workers(peer: Peer, procs: int, mode: str, probe: Probe) -> list[Any]:
    env = env_for(probe, **peer.worker_env())
    return [spawn(argv, env, f"{peer.name}-{mode}") for argv in peer.worker_argvs(procs, mode)]


def _drain_once(peer_cls: type[Peer], size: Size, n: int, procs: int, prepare: Callable[[Peer], None] | None = None,
                measure_first: int | None = None) -> tuple[float, dict[str, Any]]:  # fmt: skip
    """Pre-enqueue n jobs, start the system's own workers, time first job start → last job
    end (as the handlers saw it). With measure_first, only the first that many jobs are
    timed and the workers are then stopped."""
    peer = peer_cls()
    peer.setup()
    probe = Probe.fresh()
    procs_: list[Any] = []
    try:
        if prepare is not None:
            prepare(peer)
        peer.enqueue_bulk(n)
        spawned = time.time()
        procs_ = _start_workers(peer, procs, "drain", probe)
        target = measure_first or n
        probe.wait(target, size.timeout, procs_)
        if measure_first:
            # Jobs done and the last one's end from the same probe files: the moment the
            # harness noticed the target lags the probe's writes (every 20 ms) and its own
            # polling, and divided the target by that, it undercounted a 1-second drain by a
            # few per cent against the empty-table figure, which is timed by the probe alone.
            done, first, last = probe.snapshot()
            stop(procs_)
            return done / (last - first), {}
        first, last = probe.span()
        if peer.exits_by_itself(procs):
            exited = wait_exit(procs_, size.timeout)
        else:
            stop(procs_)
            exited = None
        problem = peer.verify(n)
        if problem:
            raise RuntimeError(problem)
        extra: dict[str, Any] = {"startup_s": round(first - spawned, 3)}
        if exited is not None:
            extra["wall_jobs_s"] = round(n / (exited - spawned), 1)
        return n / (last - first), extra
    finally:
        stop(procs_)
        probe.cleanup()
        peer.teardown()


def drain(peer_cls: type[Peer], size: Size, sizes: tuple[int, ...] | None = None) -> list[Figure]:
    out = []
    for n in sizes or size.drain:
        for procs in (1, 2):
            fig = Figure("drain", f"{n:,} jobs, {procs} proc", peer_cls.name, "jobs/s")
            out.append(measure(fig, size.runs, lambda n=n, procs=procs: _drain_once(peer_cls, size, n, procs)))
    return out


def enqueue(peer_cls: type[Peer], size: Size) -> list[Figure]:
    def bulk() -> float:
        peer = peer_cls()
        peer.setup()
        try:
            t = time.perf_counter()
            peer.enqueue_bulk(size.bulk)
            return size.bulk / (time.perf_counter() - t)
        finally:
            peer.teardown()

    def single() -> float:
        peer = peer_cls()
        peer.setup()
        try:
            t = time.perf_counter()
            peer.enqueue_single(size.single)
            return size.single / (time.perf_counter() - t)
        finally:
            peer.teardown()

    return [
        measure(Figure("enqueue", f"bulk {size.bulk:,}", peer_cls.name, "jobs/s"), size.runs, bulk),
        measure(Figure("enqueue", f"single x{size.single:,}", peer_cls.name, "jobs/s"), size.runs, single),
    ]


def _latency_once(peer_cls: type[Peer], size: Size) -> tuple[float, dict[str, Any]]:
    peer = peer_cls()
    peer.setup()
    probe = Probe.fresh()
    procs: list[Any] = []
    producer = None
    try:
        producer = peer.latency_producer()
        procs = _start_workers(peer, 1, "latency", probe)
        # warm up: the worker is up and idle once its first job ran
        producer.enqueue(-1)
        probe.wait(1, 60, procs)
        time.sleep(1.0)
        committed: dict[int, float] = {}
        period = 1 / 50
        t0 = time.perf_counter()
        for seq in range(size.latency):
            target = t0 + seq * period
            pause = target - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            producer.enqueue(seq)
            committed[seq] = time.time()
        probe.wait(size.latency + 1, 60, procs)
        started = probe.latencies()
        lat = [(started[s] - committed[s]) * 1000 for s in committed if s in started]
        return percentile(lat, 0.5), {"p99_ms": round(percentile(lat, 0.99), 2), "max_ms": round(max(lat), 2)}
    finally:
        if producer is not None:
            producer.close()
        stop(procs)
        probe.cleanup()
        peer.teardown()


def latency(peer_cls: type[Peer], size: Size) -> list[Figure]:
    p50 = Figure("latency", "p50 at 50 jobs/s", peer_cls.name, "ms", higher_is_better=False)
    measure(p50, size.runs, lambda: _latency_once(peer_cls, size))
    p99 = Figure("latency", "p99 at 50 jobs/s", peer_cls.name, "ms", values=list(p50.extra.get("p99_ms", [])),
                 higher_is_better=False, error=p50.error)  # fmt: skip
    return [p50, p99]


def _mixed_once(peer_cls: type[Peer], size: Size) -> tuple[float, dict[str, Any]]:
    peer = peer_cls()
    peer.setup()
    probe = Probe.fresh()
    procs: list[Any] = []
    try:
        specs = mixed_specs(size.mixed)
        peer.enqueue_mixed(specs)
        t = time.time()
        procs = _start_workers(peer, 2, "mixed", probe)
        probe.wait(size.mixed, size.timeout, procs)
        first, last = probe.span()
        return size.mixed / (last - t), {}
    finally:
        stop(procs)
        probe.cleanup()
        peer.teardown()


def mixed(peer_cls: type[Peer], size: Size) -> list[Figure]:
    fig = Figure("mixed", f"{size.mixed:,} jobs, 2 proc x {peer_cls.mixed_concurrency}", peer_cls.name, "jobs/s")
    return [measure(fig, size.runs, lambda: _mixed_once(peer_cls, size))]


def _history(peer: Peer, rows: int) -> None:
    """Fill duly's tables with finished jobs (and their attempt rows) straight in SQL."""
    import psycopg

    if peer.backend != "postgres":
        raise Skip("history fill written for PostgreSQL")
    with psycopg.connect(peer.dsn, autocommit=True) as conn:
        step = 1_000_000
        for lo in range(0, rows, step):
            hi = min(rows, lo + step)
            conn.execute(f"""
                INSERT INTO duly_jobs (task, queue, args, kwargs, priority, state, run_at, attempt, max_attempts,
                                       lease_seconds, worker_id, started_at, created_at, updated_at, finished_at)
                OVERRIDING SYSTEM VALUE
                SELECT 'noop', 'default', '[]', '{{}}', 0, 'succeeded', now() - interval '1 day', 1, 3, 60, 'old',
                       now() - interval '1 day', now() - interval '1 day', now() - interval '1 day', now() - interval '1 day'
                FROM generate_series({lo + 1}, {hi}) AS g(i)
            """)  # fmt: skip
            conn.execute(f"""
                INSERT INTO duly_attempts (job_id, attempt, worker_id, started_at, finished_at, outcome)
                SELECT g.i, 1, 'old', now() - interval '1 day', now() - interval '1 day', 'succeeded'
                FROM generate_series({lo + 1}, {hi}) AS g(i)
            """)  # fmt: skip
        seq = conn.execute("SELECT pg_get_serial_sequence('duly_jobs', 'id')").fetchone()[0]  # type: ignore[index]
        conn.execute("SELECT setval(%s::regclass, (SELECT max(id) FROM duly_jobs))", (seq,))
        conn.execute("VACUUM ANALYZE duly_jobs")
        peer.history = rows  # type: ignore[attr-defined]
        conn.execute("VACUUM ANALYZE duly_attempts")


def backlog(peer_cls: type[Peer], size: Size) -> list[Figure]:
    n = size.drain[0]
    if peer_cls.name != "duly":
        return [Figure("backlog", "-", peer_cls.name, "jobs/s", error="n/a: measured for duly only (target 4)")]
    empty = measure(Figure("backlog", f"drain {n:,}, empty table, 1 proc", peer_cls.name, "jobs/s"), size.runs,
                    lambda: _drain_once(peer_cls, size, n, 1))  # fmt: skip
    queued = measure(
        Figure("backlog", f"first {n:,} of {size.backlog_queued + n:,} queued, 1 proc", peer_cls.name, "jobs/s"),
        size.runs, lambda: _drain_once(peer_cls, size, n + size.backlog_queued, 1, measure_first=n),
    )  # fmt: skip
    hist = measure(
        Figure("backlog", f"drain {n:,} over {size.backlog_history:,} finished, 1 proc", peer_cls.name, "jobs/s"),
        size.runs, lambda: _drain_once(peer_cls, size, n, 1, prepare=lambda p: _history(p, size.backlog_history)),
    )  # fmt: skip
    for f in (queued, hist):
        if f.value and empty.value:
            f.extra["vs_empty"] = round(f.value / empty.value, 3)
    return [empty, queued, hist]


def _memory_once(peer_cls: type[Peer], size: Size) -> tuple[float, dict[str, Any]]:
    peer = peer_cls()
    peer.setup()
    probe = Probe.fresh()
    procs: list[Any] = []
    n = size.memory
    try:
        peer.enqueue_bulk(n)
        procs = _start_workers(peer, 1, "drain", probe)
        samples: list[tuple[int, int]] = []  # (jobs done, RSS KiB)
        deadline = time.monotonic() + size.timeout * 4
        while procs[0].poll() is None and time.monotonic() < deadline:
            rss = rss_kib(procs[0].pid)
            c = probe.count()
            if rss:
                samples.append((c, rss))
            if c >= n:
                break
            time.sleep(0.02 if n < 100_000 else 0.25)  # small runs end in well under a second
        if probe.count() < n:
            raise RuntimeError(f"only {probe.count()} of {n} jobs ran")
        # from the first sample taken once 5 % of the jobs ran (before that the process may
        # not even have loaded its code: a just-forked RSS of 0.2 MiB made +20,000 %)
        warm = [r for c, r in samples if c >= n * 0.05]
        base = warm[0] if warm else samples[0][1]
        end = samples[-1][1]
        peak = max(r for _, r in samples)
        return (end - base) / base * 100, {"rss_at_5pct_mib": round(base / 1024, 1), "rss_end_mib": round(end / 1024, 1),
                                           "rss_peak_mib": round(peak / 1024, 1)}  # fmt: skip
    finally:
        stop(procs)
        probe.cleanup()
        peer.teardown()


def memory(peer_cls: type[Peer], size: Size) -> list[Figure]:
    fig = Figure("memory", f"RSS growth over {size.memory:,} jobs (from 5 %)", peer_cls.name, "%", higher_is_better=False)
    return [measure(fig, 1, lambda: _memory_once(peer_cls, size))]


WORKLOADS: dict[str, Callable[[type[Peer], Size], list[Figure]]] = {
    "drain": drain,
    "enqueue": enqueue,
    "latency": latency,
    "mixed": mixed,
    "backlog": backlog,
    "memory": memory,
}
