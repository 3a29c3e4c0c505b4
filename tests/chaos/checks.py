"""The fault-injection checks of issue 6, each a function of its sizes.

``tests/chaos/test_chaos.py`` runs them at CI sizes (``pytest -m chaos``) and
``scripts/chaos_full.py`` at full sizes. Each check raises AssertionError on a broken promise
and otherwise returns its figures (jobs, faults injected, lost, duplicated, time to recover).
"""

from __future__ import annotations

import random
import signal
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import duly
from duly._faults import EXIT_CODE, POINTS
from duly.core.model import Finish, Held
from duly.core.states import JobState, Outcome
from duly.core.triggers import MISFIRE_GRACE_SECONDS
from tests.apps.chaosapp import CRON_TRIGGERS
from tests.chaos.harness import Fleet, Place, children, drain, read_crash_log, rss_kib, wait_until
from tests.chaos.ledger import Verdict, check

#: The crash points a worker meets on every job, and the scheduler's.
JOB_POINTS = ("claim.committed", "handler.before", "finish.before", "finish.in_transaction")
FIRE_POINT = "fire.between_slot_and_job"
assert (*JOB_POINTS, FIRE_POINT) == POINTS, "a crash point the checks do not know"


def _payloads(n: int, tag: str) -> list[str]:
    return [f"{tag}-{i}-{uuid.uuid4().hex[:8]}" for i in range(n)]


def _enqueue_bulk(place: Place, n: int, tag: str, ms: float = 0.0) -> list[str]:
    app = place.app()
    payloads = _payloads(n, tag)
    ids: list[int] = []
    for i in range(0, n, 5000):
        chunk = payloads[i : i + 5000]
        ids += app.enqueue_many(
            [duly.Enqueue("work", [p], {"ms": ms} if ms else {}) for p in chunk]
        )
    place.ledger.enqueued_many(zip(payloads, ids))
    return payloads


def _verdict(place: Place, paused: set[int] = frozenset()) -> Verdict:  # type: ignore[assignment]
    v = check(
        place.ledger, place.states(), paused_pids=paused, attempt_outcomes=place.attempt_outcomes()
    )
    problems = v.problems + place.consistency()
    assert not problems, "\n".join(problems)
    return v


# ---- 1. SIGKILL random workers under a supervisor --------------------------------------


def sigkill_workers(
    place: Place, jobs: int, processes: int, every: float, duration: float
) -> dict[str, Any]:
    """``jobs`` jobs drained by ``processes`` workers under ``duly worker --processes``;
    SIGKILL a random worker every ``every`` s for ``duration`` s."""
    _enqueue_bulk(place, jobs, "kill", ms=2)
    fleet = Fleet(place)
    try:
        sup = fleet.start("--processes", str(processes), "--concurrency", "8")
        wait_until(lambda: len(children(sup.pid)) == processes, 30, "the supervisor's workers")
        kills = 0
        t_end = time.monotonic() + duration
        while time.monotonic() < t_end and place.live():
            time.sleep(every)
            kids = children(sup.pid)
            if kids:
                fleet.kill(sup, pid=random.choice(kids))
                kills += 1
        t0 = time.monotonic()
        wait_until(
            lambda: place.live() == 0,
            120 + jobs / 100,
            "the supervisor's workers to drain the queue",
        )
        recover = time.monotonic() - t0
        fleet.stop(sup)
        restarts = len(fleet.grep("action=restart")) or len(fleet.grep('"restart"'))
        v = _verdict(place)
        with place.sql() as q:
            running = q("SELECT count(*) FROM {jobs} WHERE state = 'running'")[0][0]
        assert running == 0
    finally:
        fleet.cleanup()
    return {**v.figures(), "faults": kills, "restarts": restarts, "recover_s": round(recover, 1)}


# ---- 2. crash points ---------------------------------------------------------------------


def crash_points(
    make_place: Any, jobs: int, crashes: int, points: tuple[str, ...] = POINTS
) -> dict[str, Any]:
    """For each crash point: ``jobs`` jobs, two workers armed to crash there until ``crashes``
    crashes happened (restarted at once), then the final drain with no faults. The
    scheduler's point (``fire.between_slot_and_job``) is ``fire_crashes``."""
    out: dict[str, Any] = {}
    for point in points:
        place: Place = make_place(point)
        if point == FIRE_POINT:
            try:
                out[point] = fire_crashes(place, crashes)
            finally:
                place.close()
            continue
        crash_log = place.dir / "crashes.log"
        _enqueue_bulk(place, jobs, point, ms=1)
        fleet = Fleet(place)
        n = 0
        try:
            armed = lambda: place.env(
                DULY_CRASH_AT=point,
                DULY_CRASH_AFTER=str(random.randint(0, 3)),
                DULY_CRASH_LOG=str(crash_log),
            )
            procs = [fleet.start("--concurrency", "4", env=armed()) for _ in range(2)]
            deadline = time.monotonic() + 60 + jobs / 20
            while n < crashes and place.live() and time.monotonic() < deadline:
                time.sleep(0.05)
                for i, p in enumerate(procs):
                    code = p.popen.poll()
                    if code is None:
                        continue
                    assert code == EXIT_CODE, (
                        f"worker exited {code}, not by a crash; log:\n{p.log()}"
                    )
                    place.ledger.fault("crash", p.pid, point)
                    n += 1
                    procs[i] = fleet.start(
                        "--concurrency", "4", env=armed() if n < crashes else None
                    )
            t0 = time.monotonic()
            for p in procs:
                if p.alive():
                    fleet.stop(p)
            # An armed worker may crash as it stops (its last claim or its shutdown flush
            # passes the point): the crash log, written by the crash itself, says so. Its
            # crash is a fault like the others, recorded before the drain reruns its jobs.
            recorded = {pid for _kind, pid, _detail, _at in place.ledger.faults("crash")}
            for _point, pid, _held in read_crash_log(place, crash_log):
                if pid not in recorded:
                    place.ledger.fault("crash", pid, point)
                    recorded.add(pid)
            drain(place, fleet, 120)
            recover = time.monotonic() - t0
            crashed = read_crash_log(place, crash_log)
            assert len(crashed) >= n, (crashed, n)  # the other armed worker may crash as it stops
            v = _verdict(place)
            outcomes = place.attempt_outcomes()
            rerun = 0
            for _point, _pid, held in crashed:
                for job_id, attempt in held:
                    # the crashed attempt is recorded lost; the job ran again as attempt + 1
                    assert outcomes.get((job_id, attempt)) == "lost", (
                        point,
                        job_id,
                        attempt,
                        outcomes.get((job_id, attempt)),
                    )
                    assert (job_id, attempt + 1) in outcomes, (point, job_id, attempt)
                    rerun += 1
            out[point] = {
                **v.figures(),
                "faults": len(crashed),
                "jobs_in_crashed_hands": rerun,
                "recover_s": round(recover, 1),
            }
        finally:
            fleet.cleanup()
            place.close()
    return out


def fire_crashes(place: Place, crashes: int) -> dict[str, Any]:
    """The scheduler's crash point: ``crashes`` schedulers in turn, each armed to crash at the
    first slot it fires (after its slot row, before its job), on the catch-up ``all`` trigger
    alone; then a clean scheduler. Each crash must leave no slot row (the row and its job
    commit together or not at all), and the clean scheduler fires every slot, the crashed
    ones included, exactly once."""
    crash_log = place.dir / "crashes.log"
    fleet = Fleet(place)
    args = ("--queues", "none-served", "--concurrency", "1")
    crashed_slots: list[datetime] = []
    try:
        for n in range(crashes):
            p = fleet.start(*args, env=place.env(DULY_CHAOS_CRON="all", DULY_CRASH_AT=FIRE_POINT,
                                                 DULY_CRASH_LOG=str(crash_log)))  # fmt: skip
            code = wait_until(lambda: p.popen.poll(), 60, f"scheduler {n} to crash at {FIRE_POINT}")
            assert code == EXIT_CODE, f"scheduler exited {code}, not by a crash; log:\n{p.log()}"
            place.ledger.fault("crash", p.pid, FIRE_POINT)
            lines = read_crash_log(place, crash_log)
            assert len(lines) == n + 1 and lines[-1][:2] == (FIRE_POINT, p.pid), lines
            crashed_slots.append(_crash_slot(crash_log.read_text().splitlines()[-1]))
            with place.sql() as q:
                orphans = q("SELECT count(*) FROM {slots} WHERE job_id IS NULL")[0][0]
                jobs = q("SELECT count(*) FROM {jobs} WHERE trigger_id IS NOT NULL")[0][0]
            assert orphans == 0 and jobs == 0, (
                f"a crash left {orphans} slot rows without job, {jobs} jobs"
            )
        t0 = time.monotonic()
        clean = fleet.start(*args, env=place.env(DULY_CHAOS_CRON="all"))
        last = max(crashed_slots)
        with place.sql() as q:
            (trigger_id,) = q("SELECT id FROM {triggers} WHERE name = 'every-second'")[0]
            fired = lambda: q("SELECT s.slot_at FROM {slots} s JOIN {jobs} j ON j.id = s.job_id "
                              "WHERE s.trigger_id = ?", (trigger_id,))  # fmt: skip
            wait_until(lambda: {_as_dt(r[0]) for r in fired()} >= set(crashed_slots), 30,
                       "the clean scheduler to fire the crashed slots")  # fmt: skip
            recover = time.monotonic() - t0
            fleet.stop(clean)
            jobs = q("SELECT run_at FROM {jobs} WHERE trigger_id = ?", (trigger_id,))
            slots = q("SELECT slot_at, job_id FROM {slots} WHERE trigger_id = ?", (trigger_id,))
    finally:
        fleet.cleanup()
    runs = Counter(_as_dt(r[0]) for r in jobs)
    assert all(n == 1 for n in runs.values()), runs.most_common(3)
    assert len(slots) == len(jobs) and all(j is not None for _s, j in slots)
    times = sorted(runs)
    assert all(b - a == timedelta(seconds=1) for a, b in zip(times, times[1:])), "a slot missed"
    assert times[0] <= min(crashed_slots) and times[-1] >= last
    return {"faults": len(crashed_slots), "slots_in_crashed_hands": len(set(crashed_slots)),
            "slots": len(times), "doubled": 0, "missed": 0, "recover_s": round(recover, 1)}  # fmt: skip


def _crash_slot(line: str) -> datetime:
    """The slot of a crash line ``fire.between_slot_and_job PID (TRIGGER,'ISO')``."""
    detail = line.split(" ", 2)[2]
    return datetime.fromisoformat(detail.split("'")[1]).astimezone(UTC)


# ---- 3. a paused worker ------------------------------------------------------------------


def paused_worker(place: Place, rounds: int, jobs_per_round: int) -> dict[str, Any]:
    """A worker holding jobs is SIGSTOPped past their leases, a second worker takes them, then
    the first is resumed: its completions (a third of the jobs), failures (a third) and
    heartbeats (the last third, still running) must change nothing."""
    app = place.app()
    fleet = Fleet(place)
    stale_seen = 0
    try:
        for r in range(rounds):
            payloads = _payloads(jobs_per_round, f"pause{r}")
            specs = []
            for i, p in enumerate(payloads):
                kind = i % 3
                specs.append(duly.Enqueue("work", [p], {"ms": 2500 if kind < 2 else 6000,
                                                         "fail_on_attempt": 1 if kind == 1 else 0}))  # fmt: skip
            ids = app.enqueue_many(specs)
            place.ledger.enqueued_many(zip(payloads, ids))
            a = fleet.start("--concurrency", str(jobs_per_round))
            with place.sql() as q:
                wait_until(lambda: q("SELECT count(*) FROM {jobs} WHERE state = 'running'")[0][0] == len(ids), 30,
                           "worker A to hold every job")  # fmt: skip
            fleet.kill(a, signal.SIGSTOP, "stop")
            time.sleep(2.3)  # past the 2 s leases: A can no longer heartbeat
            b = fleet.start("--concurrency", str(jobs_per_round))
            with place.sql() as q:
                wait_until(lambda: q("SELECT count(*) FROM {jobs} WHERE attempt = 2 AND state = 'running'")[0][0] == len(ids),
                           30, "worker B to take every job")  # fmt: skip
            fleet.kill(a, signal.SIGCONT, "cont")
            wait_until(lambda: place.live() == 0, 60, "worker B to finish")
            for p in (a, b):
                fleet.stop(p)
            stale_seen += sum(
                1 for line in a.log().splitlines() if "job.stale" in line or "stale" in line
            )
            for job_id in ids:
                job = app.get_job(job_id)
                att = app.attempts(job_id)
                assert job.state is JobState.SUCCEEDED and job.attempt == 2, (
                    job.state,
                    job.attempt,
                )
                assert [(x.attempt, x.outcome) for x in att] == [
                    (1, Outcome.LOST),
                    (2, Outcome.SUCCEEDED),
                ], att
                assert str(b.pid) in (job.worker_id or "") or att[1].worker_id == job.worker_id
        v = _verdict(place, paused={p.pid for p in fleet.procs})
    finally:
        fleet.cleanup()
    assert stale_seen > 0, "the resumed worker never noticed it had lost its leases"
    return {
        **v.figures(),
        "trials": rounds * jobs_per_round,
        "faults": rounds,
        "stale_writes_refused": stale_seen,
    }


def paused_worker_virtual(
    app: duly.App, clock: duly.VirtualClock, trials: int, seed: int = 6
) -> dict[str, Any]:
    """The same promise in-process under a virtual clock, ``trials`` times: the old holder's
    completion, failure, reschedule, heartbeat or progress, before or after the new holder's
    own outcome, changes nothing."""
    rng = random.Random(seed)
    ids = app.enqueue_many(duly.Enqueue("t", [i], max_attempts=5) for i in range(trials))
    olds = {j.id: j for j in app.store.claim(_claim("old", trials))}
    clock.advance(seconds=61)
    assert len(app.store.rescue()) == trials
    news = {j.id: j for j in app.store.claim(_claim("new", trials))}
    assert set(olds) == set(news) == set(ids)
    claimed_at = clock.now()
    clock.advance(seconds=10)
    old_writes = [
        Outcome.SUCCEEDED,
        Outcome.FAILED,
        Outcome.RESCHEDULED,
        Outcome.SNOOZED,
        Outcome.CANCELLED,
    ]
    new_writes = [Outcome.SUCCEEDED, Outcome.FAILED, None]  # None: still running
    plan = {
        i: (
            rng.choice(old_writes + ["heartbeat", "progress"]),
            rng.choice(new_writes),
            rng.random() < 0.5,
        )
        for i in ids
    }
    refused = 0

    def stale_write(job_id: int) -> None:
        nonlocal refused
        what, _new, _first = plan[job_id]
        old = olds[job_id]
        if what == "heartbeat":
            assert app.store.heartbeat("old", [Held(old.id, old.attempt)]).stale == {old.id}
        elif what == "progress":
            try:
                app.store.set_progress(Held(old.id, old.attempt), 1, 2)
                raise AssertionError("a stale holder's progress was accepted")
            except duly.StaleAttempt:
                pass
        else:
            assert app.store.finish([Finish(old.id, old.attempt, what, retry_in=5)]) != []
        refused += 1

    for job_id in ids:
        if plan[job_id][2]:
            stale_write(job_id)
    for job_id in ids:
        new = news[job_id]
        outcome = plan[job_id][1]
        if outcome is not None:
            assert app.store.finish([Finish(new.id, new.attempt, outcome, retry_in=30)]) == []
    for job_id in ids:
        if not plan[job_id][2]:
            stale_write(job_id)
    for job in _all_jobs(app, ids):
        outcome = plan[job.id][1]
        want = {
            Outcome.SUCCEEDED: JobState.SUCCEEDED,
            Outcome.FAILED: JobState.RETRYING,
            None: JobState.RUNNING,
        }[outcome]
        assert (job.state, job.attempt) == (want, 2), (job.id, job.state, job.attempt, want)
        if want is JobState.RUNNING:  # the old holder's heartbeat did not extend the new lease
            assert job.worker_id == "new" and job.lease_expires_at == claimed_at + timedelta(
                seconds=60
            ), job
        atts = app.store.attempts(job.id)
        assert [(a.attempt, a.worker_id, a.outcome) for a in atts][:1] == [
            (1, "old", Outcome.LOST)
        ], atts
    return {"trials": trials, "stale_writes_refused": refused}


def _claim(worker: str, n: int) -> Any:
    from duly.core.model import ClaimParams

    return ClaimParams(worker, n, None)


def _all_jobs(app: duly.App, ids: list[int]) -> list[duly.Job]:
    from duly.core.model import JobFilter

    out = []
    for i in range(0, len(ids), 1000):
        chunk = ids[i : i + 1000]
        out += app.store.list_jobs(JobFilter(ids=chunk, limit=len(chunk)))
    return out


# ---- 4. PostgreSQL restarted under load ------------------------------------------------


#: application_name of the workers' PostgreSQL sessions (libpq's PGAPPNAME), so that their
#: backends, and only theirs, can be terminated.
WORKER_APPNAME = "duly-chaos-worker"


def postgres_restarts(
    place: Place,
    server: Any,
    restarts: int,
    between: float,
    workers: int = 2,
    terminations: int = 0,
) -> dict[str, Any]:
    """Workers and an enqueuer run while ``server`` (pgserver) is restarted ``restarts`` times
    and, alternating with the restarts, every backend of the workers is killed with
    ``pg_terminate_backend`` ``terminations`` times; after each fault the workers must
    complete a job within 10 s by themselves, and nothing is lost. Every second restart is
    a crash (``-m immediate``: no shutdown checkpoint, recovery from the WAL), which loses
    the claims committed without waiting for the disk: the attempts handed out again must
    fence their first holders out."""
    from pgserver._commands import pg_ctl  # type: ignore[import-not-found]
    import psycopg

    app = place.app()
    fleet = Fleet(place)
    stop = threading.Event()
    counts: Counter[str] = Counter()

    def enqueuer() -> None:
        n = 0
        while not stop.is_set():
            payload = f"pg-{n}-{uuid.uuid4().hex[:6]}"
            n += 1
            try:
                job = app.enqueue("work", [payload], {"ms": 2})
            except Exception as exc:  # noqa: BLE001 - unknown: it may or may not have committed
                place.ledger.enqueued(payload, None, "unknown", repr(exc)[:200])
                counts["unknown"] += 1
                time.sleep(0.05)
                continue
            place.ledger.enqueued(payload, job.id, "ok")
            counts["ok"] += 1
            time.sleep(0.002)

    def restart(mode: str) -> int:
        pg_ctl(["-w", "-m", mode, "-l", str(server.log), "restart"], pgdata=server.pgdata,
               user=server.system_user, timeout=60)  # fmt: skip
        return 0

    def terminate() -> int:
        """Terminate every backend of the workers (there must be some); how many."""
        with psycopg.connect(place.url, autocommit=True) as conn:
            sessions = lambda: conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (WORKER_APPNAME,)
            ).fetchall()
            pids = wait_until(sessions, 10, "the workers' PostgreSQL sessions")
            for (pid,) in pids:
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
            gone = lambda: not {r[0] for r in sessions()} & {pid for (pid,) in pids}
            wait_until(gone, 10, "the terminated backends to go")
        return len(pids)

    plan: list[str] = []  # alternating: restart, terminate, restart, ...
    for i in range(max(restarts, terminations)):
        plan += ["pg_restart"] * (i < restarts) + ["pg_terminate_backend"] * (i < terminations)
    thread = threading.Thread(target=enqueuer, daemon=True)
    recoveries: dict[str, list[float]] = {"pg_restart": [], "pg_terminate_backend": []}
    terminated = 0
    worker_env = place.env(PGAPPNAME=WORKER_APPNAME)
    try:
        procs = [fleet.start("--concurrency", "8", env=worker_env) for _ in range(workers)]
        thread.start()
        time.sleep(between)  # load before the first fault
        restarted = 0
        for kind in plan:
            if kind == "pg_restart":
                restart("immediate" if restarted % 2 else "fast")
                restarted += 1
            else:
                terminated += terminate()
            t_up = time.time()
            place.ledger.fault(kind, None)

            def resumed() -> bool:
                rows = place.ledger.rows("SELECT count(*) FROM runs WHERE event = 'end' AND at > ? AND pid IN (%s)"
                                         % ",".join(str(p.pid) for p in procs), (t_up,))  # fmt: skip
                return bool(rows[0][0])

            wait_until(resumed, 10, f"the workers to complete a job within 10 s of {kind}")
            recoveries[kind].append(time.time() - t_up)
            time.sleep(between)  # load between faults
        stop.set()
        thread.join(30)
        for p in procs:
            assert p.alive(), f"worker {p.pid} died: {p.log()[-3000:]}"
        wait_until(lambda: place.live() == 0, 60, "the workers to drain")
        for p in procs:
            fleet.stop(p)
        drain(place, fleet, 60)
        v = _verdict(place)
    finally:
        stop.set()
        fleet.cleanup()
    every = recoveries["pg_restart"] + recoveries["pg_terminate_backend"]
    return {**v.figures(), "faults": len(plan), "restarts": restarts, "terminations": terminations,
            "backends_terminated": terminated, "recover_s": round(max(every), 2),
            "recover_each_restart_s": [round(r, 2) for r in recoveries["pg_restart"]],
            "recover_each_termination_s": [round(r, 2) for r in recoveries["pg_terminate_backend"]]}  # fmt: skip


def stop_private_postgres(server: Any) -> None:
    """Stop a pgserver that ``postgres_restarts`` restarted, then release it. pgserver's own
    cleanup only stops the postmaster it started, which the first restart replaced: without
    this, every run left a PostgreSQL running."""
    import subprocess

    from pgserver._commands import pg_ctl  # type: ignore[import-not-found]

    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user, timeout=60)
    except subprocess.CalledProcessError:
        pass  # not running
    server.cleanup()


# ---- 5. many processes on one SQLite file -------------------------------------------------


def _enqueue_loop(
    url: str, prefix: str, ledger_path: str, seconds: float, tag: str
) -> dict[str, Any]:
    """Child body: enqueue one job at a time for ``seconds``, recording every outcome."""
    from tests.apps.chaosapp import register
    from tests.chaos.ledger import Ledger

    app = register(duly.App(url, prefix=prefix))
    book = Ledger(ledger_path)
    end = time.monotonic() + seconds
    n, locked, errors = 0, 0, 0
    while time.monotonic() < end:
        payload = f"{tag}-{n}"
        n += 1
        try:
            job = app.enqueue("work", [payload], {"ms": 1})
        except Exception as exc:  # noqa: BLE001
            book.enqueued(payload, None, "error", repr(exc)[:300])
            errors += 1
            locked += "locked" in str(exc)
            continue
        book.enqueued(payload, job.id, "ok")
    app.close()
    return {"enqueues": n, "errors": errors, "locked": locked}


def sqlite_many_processes(
    place: Place, enqueuers: int, workers: int, seconds: float
) -> dict[str, Any]:
    import multiprocessing

    assert place.backend == "sqlite"
    mp = multiprocessing.get_context("spawn")
    fleet = Fleet(place)
    try:
        procs = [fleet.start("--concurrency", "4") for _ in range(workers)]
        with mp.Pool(enqueuers) as pool:
            results = pool.starmap(
                _enqueue_loop,
                [
                    (place.url, place.prefix, place.ledger.path, seconds, f"e{i}")
                    for i in range(enqueuers)
                ],
            )
        t0 = time.monotonic()
        wait_until(lambda: place.live() == 0, 120, "the workers to drain")
        recover = time.monotonic() - t0
        for p in procs:
            fleet.stop(p)
        locked_logs = fleet.grep("locked")
        assert not locked_logs, locked_logs[:5]
        assert sum(r["locked"] for r in results) == 0, results
        assert sum(r["errors"] for r in results) == 0, results
        v = _verdict(place)
        acked = {
            j for (j,) in place.ledger.rows("SELECT job_id FROM enqueues WHERE outcome = 'ok'")
        }
        missing = acked - set(place.states())
        assert not missing, (
            f"acknowledged enqueues missing from the database: {sorted(missing)[:10]}"
        )
    finally:
        fleet.cleanup()
    return {**v.figures(), "processes": enqueuers + workers, "seconds": seconds,
            "database_is_locked": 0, "integrity_check": "ok", "recover_s": round(recover, 1)}  # fmt: skip


# ---- 6. many processes enqueue one key ---------------------------------------------------


def _key_child(
    url: str, prefix: str, key: str, mode: str, n: int, barrier: Any
) -> list[tuple[str, Any]]:
    app = duly.App(url, prefix=prefix)
    app.store  # noqa: B018 - connect before the race
    barrier.wait(60)
    out: list[tuple[str, Any]] = []
    for _ in range(n):
        try:
            out.append(("id", app.enqueue("work", ["k"], key=key, mode=mode).id))
        except duly.DuplicateKey as exc:
            out.append(("duplicate", exc.job_id))
        except Exception as exc:  # noqa: BLE001 - anything else is a failure of the check
            out.append(("error", repr(exc)))
    app.close()
    return out


def _rollback_child(url: str, prefix: str, key: str, backend: str, barrier: Any) -> str:
    """Hold ``key`` in a transaction that rolls back while the others race."""
    app = duly.App(url, prefix=prefix)
    app.store  # noqa: B018
    if backend == "sqlite":
        import sqlite3

        conn: Any = sqlite3.connect(
            url.removeprefix("sqlite:///"), isolation_level=None, timeout=30
        )
        barrier.wait(60)  # SQLite: the write lock is taken after the barrier, or no one reaches it
        conn.execute("BEGIN IMMEDIATE")
    else:
        import psycopg

        conn = psycopg.connect(url)
        barrier.wait(60)
    app.enqueue("work", ["rolled-back"], key=key, mode="ignore", conn=conn)
    time.sleep(0.3)
    conn.rollback()
    conn.close()
    app.close()
    return "rolled back"


def one_key(place: Place, processes: int, per_process: int) -> dict[str, Any]:
    """``processes`` processes × ``per_process`` enqueues of one key, in mode ignore, then mode
    new, then racing a transaction that holds the key and rolls back."""
    import multiprocessing

    mp = multiprocessing.get_context("forkserver")
    mp.set_forkserver_preload(["duly", "tests.chaos.checks"])
    figures: dict[str, Any] = {"processes": processes, "enqueues": 0}
    with mp.Manager() as manager:
        for mode in ("ignore", "new", "rollback"):
            key = f"{mode}-{uuid.uuid4().hex[:6]}"
            racers = processes - (1 if mode == "rollback" else 0)
            barrier = manager.Barrier(processes)
            with mp.Pool(processes) as pool:
                calls = [pool.apply_async(_key_child, (place.url, place.prefix, key, "ignore" if mode == "rollback" else mode,
                                                        per_process, barrier)) for _ in range(racers)]  # fmt: skip
                if mode == "rollback":
                    calls.append(
                        pool.apply_async(
                            _rollback_child, (place.url, place.prefix, key, place.backend, barrier)
                        )
                    )
                results = [c.get(180) for c in calls]
            answers = [a for r in results[:racers] for a in r]
            figures["enqueues"] += len(answers)
            with place.sql() as q:
                rows = q("SELECT id, args FROM {jobs} WHERE key = ?", (key,))
            assert len(rows) == 1, f"mode {mode}: {len(rows)} jobs hold key {key}"
            job_id = rows[0][0]
            errors = [a for a in answers if a[0] == "error"]
            assert not errors, errors[:5]
            if mode in ("ignore", "rollback"):
                assert {a for a in answers} == {("id", job_id)}, Counter(answers).most_common(5)
            else:
                assert Counter(a[0] for a in answers)["id"] == 1, Counter(answers).most_common(5)
                assert {a for a in answers if a[0] == "duplicate"} == {("duplicate", job_id)}
            figures[f"jobs_{mode}"] = len(rows)
    return figures


# ---- 7. schedulers killed and restarted ------------------------------------------------

#: A slot fired within this many seconds of its time is on time (duly.core.triggers).
GRACE = timedelta(seconds=MISFIRE_GRACE_SECONDS)


def schedulers(
    place: Place,
    count: int,
    seconds: float,
    kill_every: float,
    crash_rate: float = 0.0,
    outages: int = 1,
    outage_s: float = 8.0,
) -> dict[str, Any]:
    """``count`` schedulers (workers serving no queue) with three triggers, cron every second,
    one per catch-up policy (tests.apps.chaosapp.CRON_TRIGGERS), killed and restarted at random
    for ``seconds``; ``outages`` times, every scheduler is killed and none runs for
    ``outage_s`` (longer than the misfire grace), so that slots come due with nobody there.
    With ``crash_rate``, schedulers are also armed to crash between a slot's row and its job
    (and at least one must). Then, per trigger: exactly one job per slot, a slot row for each
    job; ``all`` fills every slot; ``skip`` fires no late slot and misses some in each outage;
    ``latest`` fires the last missed slot of each outage late, and only it; for every policy
    jobs + the trigger's missed count = the slots that came due."""
    fleet = Fleet(place)
    crash_log = place.dir / "crashes.log"
    env = lambda: place.env(DULY_CHAOS_CRON="1", **({"DULY_CRASH_AT": "fire.between_slot_and_job",
                            "DULY_CRASH_RATE": str(crash_rate), "DULY_CRASH_LOG": str(crash_log)} if crash_rate else {}))  # fmt: skip
    args = ("--queues", "none-served", "--concurrency", "1")
    kills = 0
    downs: list[tuple[datetime, datetime]] = []
    t_start = datetime.now(UTC)
    try:
        procs = [fleet.start(*args, env=env()) for _ in range(count)]
        t0 = time.monotonic()
        end = t0 + seconds
        outage_at = [seconds * (i + 1) / (outages + 1) for i in range(outages)]
        while time.monotonic() < end:
            time.sleep(kill_every)  # the pace of the faults
            if outage_at and time.monotonic() - t0 >= outage_at[0]:
                outage_at.pop(0)
                down = datetime.now(UTC)
                for p in procs:
                    fleet.kill(p, kind="outage")
                time.sleep(outage_s)  # the outage itself: nobody schedules
                procs = [fleet.start(*args, env=env()) for _ in range(count)]
                downs.append((down, datetime.now(UTC)))
                continue
            i = random.randrange(count)
            if procs[i].alive():
                fleet.kill(procs[i])
                kills += 1
            for j, p in enumerate(procs):
                if not p.alive():
                    procs[j] = fleet.start(*args, env=env())
        t_stop = datetime.now(UTC)
        # one clean scheduler fires whatever is due, then everything stops
        for p in procs:
            fleet.kill(p)
        for p in procs:
            wait_until(lambda: not p.alive(), 10, "a killed scheduler to go")
        clean = fleet.start(*args, env=place.env(DULY_CHAOS_CRON="1"))
        names = tuple(CRON_TRIGGERS)

        def caught_up() -> bool:
            with place.sql() as q:
                rows = q("SELECT next_fire_at FROM {triggers} WHERE name IN (?, ?, ?)", names)
            return len(rows) == 3 and all(
                _as_dt(r[0]) > t_stop + timedelta(seconds=2) for r in rows
            )

        wait_until(caught_up, 30, "the clean scheduler to fire every due slot")
        fleet.stop(clean)
        crashes = len(read_crash_log(place, crash_log))
        with place.sql() as q:
            triggers = q("SELECT id, name, catch_up, missed, next_fire_at FROM {triggers} "
                         "WHERE name IN (?, ?, ?)", names)  # fmt: skip
            per: dict[str, Any] = {}
            for trigger_id, name, policy, missed, next_fire in triggers:
                jobs = q("SELECT run_at FROM {jobs} WHERE trigger_id = ?", (trigger_id,))
                slots = q("SELECT s.slot_at, s.job_id, j.created_at FROM {slots} s "
                          "LEFT JOIN {jobs} j ON j.id = s.job_id WHERE s.trigger_id = ?", (trigger_id,))  # fmt: skip
                per[name] = (policy, missed, _as_dt(next_fire), jobs, slots)
    finally:
        fleet.cleanup()
    if crash_rate:
        assert crashes >= 1, "armed at fire.between_slot_and_job, no scheduler ever crashed there"
    figures: dict[str, Any] = {}
    for name, (policy, missed, next_fire, jobs, slots) in sorted(per.items()):
        assert policy == CRON_TRIGGERS[name], (name, policy)
        runs = Counter(_as_dt(r[0]) for r in jobs)
        doubled = {k: n for k, n in runs.items() if n > 1}
        assert not doubled, f"{name}: slots with more than one job: {sorted(doubled.items())[:5]}"
        assert all(j is not None for _s, j, _c in slots), f"{name}: a slot row without its job"
        assert len(slots) == len(jobs), (name, len(slots), len(jobs))
        delay = {_as_dt(s): _as_dt(c) - _as_dt(s) for s, _j, c in slots}
        times = sorted(delay)
        assert times and times[0] <= t_start + timedelta(seconds=15), (name, times[:1], t_start)
        assert times[-1] >= t_stop - timedelta(seconds=2), (name, times[-1:], t_stop)
        # every slot that came due either got its job or was counted missed
        due = round((next_fire - times[0]).total_seconds())
        assert len(jobs) + missed == due, (name, len(jobs), missed, due)
        gaps = [(a, b) for a, b in zip(times, times[1:]) if (b - a) != timedelta(seconds=1)]
        late = [s for s in times if delay[s] > GRACE]
        if policy == "all":
            assert not gaps and missed == 0, (
                f"slots missed (catch-up 'all' must fill them): {gaps[:5]}"
            )
            assert len(late) >= len(downs), (name, "the outages' slots were not caught up late")
        elif policy == "skip":
            # a slot is fired only on time (within the grace, plus the transaction's own time)
            over = [(s, delay[s]) for s in times if delay[s] > GRACE + timedelta(seconds=1.5)]
            assert not over, f"{name}: late slots fired: {over[:5]}"
        else:  # latest: each run of missed slots ends with its last slot fired late
            early = [(b, delay[b]) for _a, b in gaps if delay[b] <= GRACE]
            assert not early, f"{name}: a gap not closed by its latest slot fired late: {early[:5]}"
        if policy != "all":
            for down, up in downs:
                inside = [(a, b) for a, b in gaps if a < up and b > down]
                assert inside, f"{name}: no slot missed in the outage {down:%T}-{up:%T}"
        figures[f"{policy}: slots fired"] = len(times)
        figures[f"{policy}: missed (counted by the trigger)"] = missed
        figures[f"{policy}: fired late"] = len(late)
        figures[f"{policy}: doubled"] = 0
    return {"faults": kills + crashes + len(downs), "kills": kills, "outages": len(downs),
            "crashes_between_slot_and_job": crashes, **figures}  # fmt: skip


def _as_dt(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(value))


# ---- 8. handlers that misbehave ----------------------------------------------------------


def bad_handlers(place: Place) -> dict[str, Any]:
    """hang (thread isolation, timeout), leak and os._exit and unpicklable state (process
    isolation): each attempt ends with its outcome and the worker keeps serving."""
    app = place.app()
    fleet = Fleet(place)
    out: dict[str, Any] = {}
    try:
        for isolation, cases in (
            ("thread", [("hang", [], "timed_out", "TimeoutError")]),
            ("process", [("hang", [], "timed_out", "TimeoutError"), ("leak", [], "timed_out", "TimeoutError"),
                         ("exit", [3], "failed", "ChildDied"), ("unpicklable_error", [], "failed", "Unpicklable"),
                         ("unpicklable_result", [], "failed", None), ("leak_once", [200], "succeeded", None)]),
        ):  # fmt: skip
            worker = fleet.start("--concurrency", "2", "--isolation", isolation)
            for task, args, want, error_type in cases:
                bad = app.enqueue(task, args)
                payloads = _payloads(3, f"{isolation}-{task}")
                good = [app.enqueue("work", [p]) for p in payloads]
                place.ledger.enqueued_many((p, g.id) for p, g in zip(payloads, good))
                wait_until(
                    lambda: app.get_job(bad.id).state.value not in ("queued", "running"),
                    30,
                    f"{task} to end",
                )
                wait_until(lambda: all(app.get_job(g.id).state is JobState.SUCCEEDED for g in good), 30,
                           f"the jobs after {task}")  # fmt: skip
                job = app.get_job(bad.id)
                att = app.attempts(bad.id)
                assert worker.alive(), f"the worker died on {task}: {worker.log()[-3000:]}"
                got = (
                    "timed_out" if att and att[-1].outcome is Outcome.TIMED_OUT else job.state.value
                )
                assert got == want, (isolation, task, got, want, att)
                if error_type:
                    assert att[-1].error_type == error_type or error_type in (
                        job.last_error or ""
                    ), (task, att[-1])
                out[f"{isolation}:{task}"] = f"{got} ({att[-1].error_type or 'no error'})"
            out[f"{isolation}:worker_rss_mib"] = rss_kib(worker.pid) // 1024
            fleet.stop(worker)
        _verdict(place)
    finally:
        fleet.cleanup()
    return out
