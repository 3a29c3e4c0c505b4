"""The store's promises hold across real OS processes, on SQLite and on PostgreSQL.

Each child is a fresh interpreter (``spawn``) that builds its own ``duly.App`` on the test's
database under the real clock, so nothing is shared with the parent but the database. Children
open their store first, then wait on a Barrier or an Event, so that the racing calls start
together. Results come back through a multiprocessing Queue as plain tuples.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import queue
import sqlite3
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import duly
from duly.core.model import ClaimParams, ErrorInfo, Finish, Held, Job, JobFilter
from duly.core.states import JobState, Outcome
from tests.conftest import Backend
from tests.helpers import wait_until

SPAWN = multiprocessing.get_context("spawn")
START_TIMEOUT = 60.0  # seconds a child may wait for its siblings (spawn start-up is slow)


# ---- running children ----------------------------------------------------------------


def _child_main(
    target: Callable[..., Any], index: int, results: Any, args: tuple[Any, ...]
) -> None:
    """Run ``target(*args)`` in the child and report its return value or its traceback."""
    try:
        results.put((index, True, target(*args)))
    except BaseException:  # noqa: BLE001 - every failure must reach the parent
        results.put((index, False, traceback.format_exc()))


class Children:
    """Spawned processes of one test; ``results`` gathers what each returned, in start order."""

    def __init__(self) -> None:
        self._results = SPAWN.Queue()
        self._procs: list[multiprocessing.process.BaseProcess] = []

    def start(self, target: Callable[..., Any], *args: Any) -> None:
        index = len(self._procs)
        proc = SPAWN.Process(
            target=_child_main, args=(target, index, self._results, args), daemon=True
        )
        proc.start()
        self._procs.append(proc)

    def results(self, timeout: float = 60.0) -> list[Any]:
        """Every child's return value; fails with the children's tracebacks if any raised."""
        deadline = time.monotonic() + timeout
        got: dict[int, tuple[bool, Any]] = {}
        while len(got) < len(self._procs):
            try:
                index, ok, value = self._results.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                missing = sorted(set(range(len(self._procs))) - set(got))
                raise AssertionError(
                    f"children {missing} did not report within {timeout}s"
                ) from None
            got[index] = (ok, value)
        for proc in self._procs:
            proc.join(timeout=30)
        errors = [f"child {i}:\n{value}" for i, (ok, value) in sorted(got.items()) if not ok]
        assert not errors, "\n".join(errors)
        return [got[i][1] for i in range(len(self._procs))]

    def stop(self) -> None:
        for proc in self._procs:
            if proc.is_alive():
                proc.kill()
            proc.join(timeout=10)
        self._results.close()
        self._results.join_thread()


@pytest.fixture
def children() -> Iterator[Children]:
    kids = Children()
    try:
        yield kids
    finally:
        kids.stop()


def _open_app(url: str, prefix: str) -> duly.App:
    """A child's own App under the real clock, its store opened (connected, schema checked)."""
    app = duly.App(url, prefix=prefix)
    app.store  # noqa: B018
    return app


def _created_schema(backend: Backend) -> duly.App:
    """The parent's App (real clock, like the children's), with the schema in place."""
    app = backend.app()
    app.store  # noqa: B018 - PostgreSQL: children do not migrate
    return app


# ---- child bodies (module level, so that spawn can import them) -----------------------


def _claim_until_empty(
    url: str, prefix: str, worker_id: str, start: multiprocessing.synchronize.Barrier
) -> list[tuple[int, int]]:
    """Claim batches of 50 and finish them until a claim comes back empty.

    The first claims of all children race each other; every child then waits, holding its
    first batch, until all hold one. Without that rendezvous SQLite's lock (whose busy waiters
    sleep) lets the fastest processes drain the queue before a slow-starting one gets a turn.
    """
    app = _open_app(url, prefix)
    try:
        start.wait(START_TIMEOUT)
        jobs = app.store.claim(ClaimParams(worker_id, limit=50))
        if not jobs:
            start.abort()
            raise RuntimeError(f"{worker_id}: first claim found nothing in a queue of 10,000")
        start.wait(START_TIMEOUT)
        claimed: list[tuple[int, int]] = []
        while jobs:
            claimed.extend((job.id, job.attempt) for job in jobs)
            stale = app.store.finish(
                [Finish(job.id, job.attempt, Outcome.SUCCEEDED) for job in jobs]
            )
            if stale:
                raise RuntimeError(
                    f"{worker_id}: finishing its own fresh claims was refused: {stale}"
                )
            jobs = app.store.claim(ClaimParams(worker_id, limit=50))
        return claimed
    finally:
        app.close()


def _enqueue_new(
    url: str, prefix: str, key: str, tag: str, start: multiprocessing.synchronize.Barrier
) -> tuple[str, int]:
    app = _open_app(url, prefix)
    try:
        start.wait(START_TIMEOUT)
        try:
            return "job", app.enqueue("race", args=[tag], key=key, mode="new").id
        except duly.DuplicateKey as exc:
            return "duplicate", exc.job_id
    finally:
        app.close()


def _enqueue_ignore(
    url: str, prefix: str, key: str, tag: str, start: multiprocessing.synchronize.Barrier
) -> tuple[int, bool]:
    app = _open_app(url, prefix)
    try:
        start.wait(START_TIMEOUT)
        result = app.enqueue_result("race", args=[tag], key=key, mode="ignore")
        return result.job.id, result.created
    finally:
        app.close()


def _in_transaction(conn: Any) -> bool:
    if isinstance(conn, sqlite3.Connection):
        return conn.in_transaction
    from psycopg.pq import TransactionStatus

    return bool(conn.info.transaction_status == TransactionStatus.INTRANS)


def _hold_key_then_roll_back(
    url: str,
    backend_name: str,
    prefix: str,
    key: str,
    ready: multiprocessing.synchronize.Barrier,
    held_info: Any,
    release: multiprocessing.synchronize.Event,
) -> dict[str, Any]:
    """Process A: enqueue ``key`` inside its own open transaction, hold it, roll it back."""
    app = _open_app(url, prefix)
    try:
        ready.wait(START_TIMEOUT)  # B's store is open before A takes SQLite's write lock
        if backend_name == "sqlite":
            conn: Any = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=10)
            pid = None
        else:
            import psycopg

            conn = psycopg.connect(url)
            pid = conn.info.backend_pid
        try:
            job = app.enqueue("race", args=["A"], key=key, mode="new", conn=conn)
            if not _in_transaction(conn):
                raise RuntimeError("A's enqueue left no open transaction to roll back")
            held_info.put((job.id, pid))
            if not release.wait(START_TIMEOUT):
                raise RuntimeError("A was never told to roll back")
            # stamped before: B may be woken, and stamp its return, before A's rollback() returns
            rolling_back_at = time.monotonic()
            conn.rollback()
            return {"job_id": job.id, "rolling_back_at": rolling_back_at}
        finally:
            conn.close()
    finally:
        app.close()


def _enqueue_key_while_held(
    url: str,
    prefix: str,
    key: str,
    ready: multiprocessing.synchronize.Barrier,
    held: multiprocessing.synchronize.Event,
    entering: multiprocessing.synchronize.Event,
) -> dict[str, Any]:
    """Process B: once A holds ``key`` uncommitted, enqueue it with mode ``ignore``."""
    app = _open_app(url, prefix)
    try:
        ready.wait(START_TIMEOUT)
        if not held.wait(START_TIMEOUT):
            raise RuntimeError("A never reported holding the key")
        entering.set()
        result = app.enqueue_result("race", args=["B"], key=key, mode="ignore")
        return {"job_id": result.job.id, "created": result.created, "returned_at": time.monotonic()}
    finally:
        app.close()


FENCING_TRIALS = 1_000
FENCING_LEASE = 0.5  # seconds: A's leases run out soon after its claim; nobody heartbeats them


def _stale_writes(h: Held) -> dict[str, Finish]:
    """Every outcome a holder can write, for one held attempt."""
    err = ErrorInfo("RuntimeError", "written by a holder whose lease was taken over")
    return {
        "complete": Finish(h.job_id, h.attempt, Outcome.SUCCEEDED, '"late result"', log="late"),
        "fail-and-retry": Finish(h.job_id, h.attempt, Outcome.FAILED, error=err, retry_in=0),
        "fail-for-good": Finish(h.job_id, h.attempt, Outcome.FAILED, error=err),
        "time-out": Finish(h.job_id, h.attempt, Outcome.TIMED_OUT, error=err, retry_in=0),
        "reschedule": Finish(h.job_id, h.attempt, Outcome.RESCHEDULED, retry_in=0),
        "snooze": Finish(h.job_id, h.attempt, Outcome.SNOOZED, retry_in=0),
        "cancelled": Finish(h.job_id, h.attempt, Outcome.CANCELLED),
        "interrupt": Finish(h.job_id, h.attempt, Outcome.INTERRUPTED),
    }


def _hold_then_write_stale(
    url: str,
    prefix: str,
    claimed: multiprocessing.synchronize.Event,
    taken_over: multiprocessing.synchronize.Event,
) -> dict[str, Any]:
    """Process A: claim every job, stop renewing; once B has taken them all over, try every
    write a holder can make, on every job. Returns what A held and, per verb, the job ids
    whose write was refused (reported stale, or StaleAttempt raised)."""
    app = _open_app(url, prefix)
    try:
        jobs = app.store.claim(ClaimParams("holder-A", limit=FENCING_TRIALS))
        if len(jobs) != FENCING_TRIALS:
            raise RuntimeError(f"A claimed {len(jobs)} jobs, expected {FENCING_TRIALS}")
        claimed.set()
        if not taken_over.wait(START_TIMEOUT):
            raise RuntimeError("B never took the jobs over")
        mine = [Held(j.id, j.attempt) for j in jobs]
        refused: dict[str, list[int]] = {}
        for verb in _stale_writes(mine[0]):
            stale = app.store.finish([_stale_writes(h)[verb] for h in mine])  # one batch
            refused[verb] = sorted(f.job_id for f in stale)
        refused["heartbeat"] = sorted(app.store.heartbeat("holder-A", mine).stale)
        refused["progress"] = []
        for h in mine:  # one call per job
            try:
                app.store.set_progress(h, 1, 2)
            except duly.StaleAttempt:
                refused["progress"].append(h.job_id)
        return {"held": sorted((h.job_id, h.attempt) for h in mine), "refused": refused}
    finally:
        app.close()


def _take_over(
    url: str,
    prefix: str,
    claimed: multiprocessing.synchronize.Event,
    taken_over: multiprocessing.synchronize.Event,
) -> list[Job]:
    """Process B: once A holds every job, rescue them as their leases run out (a bounded
    poll, no fixed sleep), claim them all, and return the jobs as B left them."""
    app = _open_app(url, prefix)
    try:
        if not claimed.wait(START_TIMEOUT):
            raise RuntimeError("A never claimed the jobs")
        rescued: set[int] = set()

        def all_rescued() -> bool:
            rescued.update(h.job_id for h in app.store.rescue())
            return len(rescued) == FENCING_TRIALS

        wait_until(all_rescued, timeout=30, interval=0.05, what="A's leases to run out")
        jobs = app.store.claim(ClaimParams("taker-B", limit=FENCING_TRIALS))
        if {j.id for j in jobs} != rescued:
            raise RuntimeError(f"B claimed {len(jobs)} jobs, not the {len(rescued)} rescued")
        ids = sorted(j.id for j in jobs)
        snapshot = app.store.list_jobs(JobFilter(ids=ids, limit=len(ids)))
        taken_over.set()
        return snapshot
    finally:
        app.close()


# ---- tests ---------------------------------------------------------------------------


def _count(app: duly.App, state: JobState) -> int:
    return sum(q[state] for q in app.stats(exact=True))


@pytest.mark.slow
def test_eight_processes_claim_ten_thousand_jobs_each_exactly_once_seed_001_16(
    backend: Backend, children: Children
) -> None:
    app = _created_schema(backend)
    ids = app.enqueue_many([duly.Enqueue("noop", args=[i]) for i in range(10_000)])
    assert len(set(ids)) == 10_000
    start = SPAWN.Barrier(8)
    for n in range(8):
        children.start(_claim_until_empty, backend.url, backend.prefix, f"worker-{n}", start)

    per_child: list[list[tuple[int, int]]] = children.results(timeout=120)

    claims = [pair for claimed in per_child for pair in claimed]
    times_claimed = Counter(job_id for job_id, _ in claims)
    assert [job_id for job_id, n in times_claimed.items() if n > 1] == []
    assert set(times_claimed) == set(ids)
    assert {attempt for _, attempt in claims} == {1}
    assert all(per_child), f"claims per child: {[len(c) for c in per_child]}"
    assert _count(app, JobState.SUCCEEDED) == 10_000
    assert sum(sum(q.counts.values()) for q in app.stats(exact=True)) == 10_000


@pytest.mark.slow
def test_sixteen_processes_enqueue_one_key_mode_new_exactly_one_wins(
    backend: Backend, children: Children
) -> None:
    app = _created_schema(backend)
    start = SPAWN.Barrier(16)
    for n in range(16):
        children.start(_enqueue_new, backend.url, backend.prefix, "report:2030-01", f"c{n}", start)

    outcomes: list[tuple[str, int]] = children.results()

    jobs = app.jobs(limit=100)
    assert len(jobs) == 1
    winner = jobs[0]
    assert winner.key == "report:2030-01"
    assert sorted(kind for kind, _ in outcomes) == ["duplicate"] * 15 + ["job"]
    assert {job_id for _, job_id in outcomes} == {winner.id}


@pytest.mark.slow
def test_sixteen_processes_enqueue_one_key_mode_ignore_all_get_the_same_job(
    backend: Backend, children: Children
) -> None:
    app = _created_schema(backend)
    start = SPAWN.Barrier(16)
    for n in range(16):
        children.start(_enqueue_ignore, backend.url, backend.prefix, "sync:42", f"c{n}", start)

    outcomes: list[tuple[int, bool]] = children.results()

    jobs = app.jobs(limit=100)
    assert len(jobs) == 1
    assert {job_id for job_id, _ in outcomes} == {jobs[0].id}
    assert sum(created for _, created in outcomes) == 1


def _blocked_by(url: str, pid: int) -> bool:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))", (pid,)
        ).fetchone()
    return bool(row and row[0])


def test_key_held_by_a_transaction_that_rolls_back_goes_to_the_waiting_enqueuer(
    backend: Backend, children: Children
) -> None:
    app = _created_schema(backend)
    key = "invoice:7"
    ready = SPAWN.Barrier(2)
    held_info = SPAWN.Queue()
    held, entering, release = SPAWN.Event(), SPAWN.Event(), SPAWN.Event()
    try:
        children.start(
            _hold_key_then_roll_back,
            backend.url,
            backend.name,
            backend.prefix,
            key,
            ready,
            held_info,
            release,
        )
        children.start(
            _enqueue_key_while_held, backend.url, backend.prefix, key, ready, held, entering
        )

        a_job_id, a_pid = held_info.get(timeout=START_TIMEOUT)
        held.set()
        assert entering.wait(START_TIMEOUT), "B never started its enqueue"
        if backend.name == "postgres":
            wait_until(
                lambda: _blocked_by(backend.url, a_pid),
                what="B's insert waiting on A's transaction",
            )
        assert app.jobs() == [], "A's uncommitted job is visible outside its transaction"
        release.set()
        a, b = children.results()
    finally:
        held_info.close()
        held_info.join_thread()

    assert a["job_id"] == a_job_id
    assert b["returned_at"] >= a["rolling_back_at"], "B returned before A ended its transaction"
    assert b["created"] is True
    holders = [job for job in app.jobs(limit=100) if job.key == key]
    assert [(job.id, job.args) for job in holders] == [(b["job_id"], ["B"])]


@pytest.mark.slow
def test_a_lease_taken_over_by_another_process_fences_the_old_holder_out_1000_of_1000(
    backend: Backend, children: Children
) -> None:
    """Issue 2: in 1,000 trials out of 1,000, a holder whose lease ran out and whose job
    another process claimed is refused every write (complete, fail, time out, reschedule,
    snooze, cancel, interrupt, heartbeat, progress) and changes nothing. Both processes run
    under the real clock (on PostgreSQL the database's); each job is one trial."""
    app = _created_schema(backend)
    app.task(name="fenced", lease=FENCING_LEASE)(lambda: None)
    ids = app.enqueue_many([duly.Enqueue("fenced", args=[i]) for i in range(FENCING_TRIALS)])
    claimed, taken_over = SPAWN.Event(), SPAWN.Event()
    children.start(_hold_then_write_stale, backend.url, backend.prefix, claimed, taken_over)
    children.start(_take_over, backend.url, backend.prefix, claimed, taken_over)

    a, b_left = children.results(timeout=120)

    assert a["held"] == [(job_id, 1) for job_id in sorted(ids)]
    for verb, refused in a["refused"].items():
        assert refused == sorted(ids), f"{verb}: {FENCING_TRIALS - len(refused)} stale writes accepted"
    assert len(a["refused"]) == 10
    assert {(j.state, j.worker_id, j.attempt, j.errors) for j in b_left} == {
        (JobState.RUNNING, "taker-B", 2, 1)
    }
    # A changed nothing: every job is exactly as B left it (lease, result, progress, errors,
    # run_at, updated_at...), and A's writes added no attempt rows.
    now = app.store.list_jobs(JobFilter(ids=ids, limit=len(ids)))
    assert {j.id: j for j in now} == {j.id: j for j in b_left}
    for job_id in ids:
        assert [(x.attempt, x.worker_id, x.outcome) for x in app.attempts(job_id)] == [
            (1, "holder-A", Outcome.LOST),
            (2, "taker-B", Outcome.RUNNING),
        ]
    # B, the holder, still finishes every job
    assert app.store.finish([Finish(j.id, j.attempt, Outcome.SUCCEEDED) for j in b_left]) == []
    assert _count(app, JobState.SUCCEEDED) == FENCING_TRIALS


# ---- SQLite: writers' turns -------------------------------------------------------------

_TRY_TURN = """
import fcntl, os, sys
from duly.store.sqlite.wake import writer_lock_path
fd = os.open(writer_lock_path(sys.argv[1]), os.O_RDWR)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    print("taken")
else:
    print("free")
"""


def _turn_seen_from_another_process(db_path: str) -> str:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _TRY_TURN, db_path], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_sqlite_writes_hold_the_writer_turn_other_processes_wait_on(backend: Backend) -> None:
    """duly's processes take turns at writing one SQLite file through a ``flock`` (woken as
    its holder lets go, where SQLite's busy handler sleeps in growing steps): held from
    ``BEGIN IMMEDIATE`` to the commit or the rollback, given back after;
    and a ring of the doorbell, which unlinks what it cannot ring, leaves its file alone."""
    if backend.name != "sqlite":
        pytest.skip("SQLite's writers")
    import os

    from duly.store.sqlite.wake import writer_lock_path

    app = _created_schema(backend)
    store = app.store
    try:
        assert _turn_seen_from_another_process(store.path) == "free"
        with store._write() as cur:
            cur.execute("SELECT 1")
            assert _turn_seen_from_another_process(store.path) == "taken"
        assert _turn_seen_from_another_process(store.path) == "free"
        with pytest.raises(RuntimeError, match="rolled back"):
            with store._write():
                raise RuntimeError("rolled back")
        assert _turn_seen_from_another_process(store.path) == "free"

        lock = writer_lock_path(store.path)
        held = os.fstat(store._shared.turns._fd).st_ino
        stop = store.subscribe(lambda _queue: None)  # a listener's socket, so rings go out
        try:
            app.enqueue("turns.t")
            store.doorbell.ring()
        finally:
            stop()
        assert os.stat(lock).st_ino == held, "the writer lock was replaced"
        assert _turn_seen_from_another_process(store.path) == "free"
    finally:
        app.close()
