"""Claims, leases and fencing (seed 001 scenarios), rescue of dead workers' jobs."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

import duly
from duly.core.model import Finish, Held
from duly.core.states import JobState, Outcome
from tests.conftest import T0, Backend
from tests.helpers import claim, claim_one, fail, held, succeed


def test_claim_records_worker_attempt_and_lease(app: duly.App) -> None:
    job = app.enqueue("t", run_in=0)
    got = claim_one(app, worker="host:1")
    assert got.id == job.id
    assert (got.state, got.attempt, got.worker_id) == (JobState.RUNNING, 1, "host:1")
    assert got.started_at == T0
    assert got.lease_expires_at == T0 + timedelta(seconds=60)
    assert claim(app) == []


def test_a_claimed_job_reads_back_as_stored(app: duly.App, clock: duly.VirtualClock) -> None:
    """A claim builds its jobs from fewer columns than a read: every field must agree."""
    app.enqueue("t", args=[1, "x"], kwargs={"k": [1.5]}, priority=3, expires_in="1h", key="k1")
    first = claim_one(app, worker="w9")
    fail(app, first, retry_in=0)  # a second attempt carries errors and last_error
    got = claim_one(app, worker="w10")
    stored = app.store.get_job(got.id)
    assert stored is not None and got.attempt == 2 and got.last_error
    assert got == stored, [(f, getattr(got, f), getattr(stored, f)) for f in got.__slots__
                           if getattr(got, f) != getattr(stored, f)]  # fmt: skip


def test_a_claimed_job_reads_back_as_stored_under_the_real_clock(backend: Backend) -> None:
    app = backend.app(duly.SystemClock())
    app.enqueue("t", args=[[]], kwargs={})
    got = claim_one(app, worker="w1")
    assert got == app.store.get_job(got.id)


def test_claim_order_priority_then_run_at_then_id_seed_001_15(app: duly.App, clock: duly.VirtualClock) -> None:
    late = app.enqueue("t", args=["late"], run_at=T0 + timedelta(minutes=2))
    early = app.enqueue("t", args=["early"], run_at=T0 + timedelta(minutes=1))
    tie_a = app.enqueue("t", args=["tie-a"], run_at=T0 + timedelta(minutes=1))
    urgent = app.enqueue("t", args=["urgent"], run_at=T0 + timedelta(minutes=2), priority=5)
    clock.advance(minutes=3)
    order = [j.id for j in claim(app, 10)]
    assert order == [urgent.id, early.id, tie_a.id, late.id]


def test_claims_by_queue(app: duly.App) -> None:
    a = app.enqueue("t", queue="a")
    app.enqueue("t", queue="b")
    assert [j.id for j in claim(app, 10, queues=["a", "c"])] == [a.id]


def test_claim_batches_up_to_limit(app: duly.App) -> None:
    app.enqueue_many(duly.Enqueue("t", args=[i]) for i in range(25))
    assert len(claim(app, 10)) == 10
    assert len(claim(app, 10)) == 10
    assert len(claim(app, 10)) == 5
    assert claim(app, 10) == []


def test_future_job_is_not_claimed_until_due_seed_000_5(app: duly.App, clock: duly.VirtualClock) -> None:
    app.enqueue("h", run_in="5m")
    assert claim(app) == []
    clock.advance(minutes=5)
    assert len(claim(app)) == 1


def test_claim_fail_claim_numbers_attempts_seed_001_3(app: duly.App) -> None:
    job = app.enqueue("t", max_attempts=3)
    first = claim_one(app, "test")
    assert first.attempt == 1
    fail(app, first, retry_in=0)
    second = claim_one(app, "test2")
    assert (second.id, second.attempt, second.errors, second.attempts_left) == (job.id, 2, 1, 2)


def test_exactly_max_attempts_claims_seed_001_5(app: duly.App) -> None:
    app.enqueue("t", max_attempts=3)
    for n in range(1, 4):
        job = claim_one(app)
        assert job.attempt == n and job.attempts_left == 3 - (n - 1)
        fail(app, job, retry_in=0 if n < 3 else None)
    assert claim(app) == []
    assert app.jobs()[0].state is JobState.FAILED


def test_expired_lease_is_rescued_and_the_old_holder_fenced_out_seed_001_7(
    app: duly.App, clock: duly.VirtualClock
) -> None:
    job = app.enqueue("t", max_attempts=2)
    victim = claim_one(app, "test")
    clock.advance(seconds=60)
    assert app.store.rescue() == []  # lease ends at T0+60: still held at exactly that time
    clock.advance(seconds=1)
    assert app.store.rescue() == [Held(job.id, 1)]
    thief = claim_one(app, "test2")
    assert (thief.id, thief.attempt, thief.errors) == (job.id, 2, 1)
    # the old holder is fenced out of every write
    assert fail(app, victim, retry_in=0) != []
    assert succeed(app, victim) != []
    assert app.store.heartbeat("test", [held(victim)]).stale == {job.id}
    with pytest.raises(duly.StaleAttempt):
        app.store.set_progress(held(victim), 1, 2)
    assert app.get_job(job.id).state is JobState.RUNNING
    assert app.get_job(job.id).worker_id == "test2"
    succeed(app, thief, result="ok")
    attempts = app.attempts(job.id)
    assert [(a.attempt, a.worker_id, a.outcome) for a in attempts] == [
        (1, "test", Outcome.LOST),
        (2, "test2", Outcome.SUCCEEDED),
    ]
    assert attempts[0].error_type == "LeaseExpired"


def test_taken_over_attempt_keeps_its_row_and_the_new_holder_has_its_own_seed_001_8(
    app: duly.App, clock: duly.VirtualClock
) -> None:
    """The seed marks the victim's log row ``stolen_by`` the thief. duly records the victim's
    attempt as ``lost`` when the lease is rescued (the thief is not known yet); the attempt
    that took over is the next row, naming its own worker, with its own log."""
    job = app.enqueue("t")
    victim = claim_one(app, "victim")
    clock.advance(seconds=61)
    app.store.rescue()
    rescued_at = clock.now()
    clock.advance(seconds=1)
    thief = claim_one(app, "thief")
    assert fail(app, victim, retry_in=0, log="victim's late log") != []  # fenced out
    assert succeed(app, thief, log="thief's log") == []
    lost, won = app.attempts(job.id)
    assert (lost.attempt, lost.worker_id, lost.outcome, lost.finished_at, lost.log) == (
        1, "victim", Outcome.LOST, rescued_at, None,
    )
    assert lost.error_type == "LeaseExpired" and "victim" in (lost.error_message or "")
    assert (won.attempt, won.worker_id, won.outcome, won.started_at, won.log) == (
        2, "thief", Outcome.SUCCEEDED, rescued_at + timedelta(seconds=1), "thief's log",
    )


def test_lost_attempts_count_and_exhaust_the_job(app: duly.App, clock: duly.VirtualClock) -> None:
    job = app.enqueue("t", max_attempts=1)
    claim_one(app)
    clock.advance(minutes=2)
    app.store.rescue()
    after = app.get_job(job.id)
    assert after.state is JobState.FAILED and "LeaseExpired" in (after.last_error or "")
    assert after.finished_at == clock.now()


def test_heartbeat_extends_the_lease(app: duly.App, clock: duly.VirtualClock) -> None:
    app.enqueue("t")
    job = claim_one(app)
    for _ in range(5):
        clock.advance(seconds=50)
        assert app.store.heartbeat("w1", [held(job)]).stale == frozenset()
    assert app.store.rescue() == []
    assert app.get_job(job.id).lease_expires_at == clock.now() + timedelta(seconds=60)


def test_fencing_holds_in_1000_trials_of_takeover(app: duly.App, clock: duly.VirtualClock) -> None:
    """A lease taken over by another worker fences the old holder out, 1,000 times out of 1,000."""
    ids = app.enqueue_many(duly.Enqueue("t", max_attempts=3) for _ in range(1000))
    olds = {j.id: j for j in claim(app, 1000, "old")}
    assert set(olds) == set(ids)
    clock.advance(seconds=61)
    assert len(app.store.rescue()) == 1000
    news = {j.id: j for j in claim(app, 1000, "new")}
    outcomes = [Outcome.SUCCEEDED, Outcome.FAILED, Outcome.RESCHEDULED, Outcome.SNOOZED, Outcome.CANCELLED]
    stale = app.store.finish(
        [Finish(j.id, j.attempt, outcomes[i % len(outcomes)], retry_in=5) for i, j in enumerate(olds.values())]
    )
    assert len(stale) == 1000
    assert app.store.heartbeat("old", [held(j) for j in olds.values()]).stale == set(ids)
    for job in app.jobs(limit=1000):
        assert (job.state, job.worker_id, job.attempt) == (JobState.RUNNING, "new", 2)
    assert app.store.finish([Finish(j.id, j.attempt, Outcome.SUCCEEDED) for j in news.values()]) == []


def test_outcomes_move_the_job_as_documented(app: duly.App, clock: duly.VirtualClock) -> None:
    a, b, c, d = (app.enqueue("t", args=[i]) for i in range(4))
    jobs = {j.id: j for j in claim(app, 4)}
    at = T0 + timedelta(days=1)
    app.store.finish([
        Finish(a.id, 1, Outcome.RESCHEDULED, run_at=at),
        Finish(b.id, 1, Outcome.SNOOZED, retry_in=30),
        Finish(c.id, 1, Outcome.INTERRUPTED),
        Finish(d.id, 1, Outcome.CANCELLED),
    ])  # fmt: skip
    ja, jb, jc, jd = (app.get_job(x.id) for x in (a, b, c, d))
    assert (ja.state, ja.run_at, ja.errors) == (JobState.SCHEDULED, at, 0)
    assert (jb.state, jb.run_at) == (JobState.SCHEDULED, T0 + timedelta(seconds=30))
    assert (jc.state, jc.run_at, jc.errors) == (JobState.QUEUED, T0, 0)
    assert jd.state is JobState.CANCELLED and jd.finished_at == T0
    assert len(jobs) == 4


def test_progress_is_persisted(app: duly.App) -> None:
    app.enqueue("t")
    job = claim_one(app)
    app.set_progress(job.id, job.attempt, 3, 10)
    got = app.get_job(job.id)
    assert (got.progress_done, got.progress_total) == (3, 10)


def test_cancel_of_a_running_job_is_a_request_seen_by_heartbeat(app: duly.App) -> None:
    app.enqueue("t")
    job = claim_one(app)
    after = app.cancel(job.id)
    assert after.state is JobState.RUNNING and after.cancel_requested
    assert app.store.heartbeat("w1", [held(job)]).cancel_requested == {job.id}
    app.store.finish([Finish(job.id, job.attempt, Outcome.CANCELLED)])
    assert app.get_job(job.id).state is JobState.CANCELLED


def test_claimed_then_cancelled_job_completed_by_holder_seed_001_21(app: duly.App) -> None:
    app.enqueue("t")
    job = claim_one(app)
    app.cancel(job.id)
    assert succeed(app, job) == []
    assert app.get_job(job.id).state is JobState.SUCCEEDED
    assert claim(app) == []


def test_claimed_then_cancelled_job_failed_by_holder_is_never_claimable_seed_001_21(
    app: duly.App, clock: duly.VirtualClock
) -> None:
    app.enqueue("t", max_attempts=5)
    job = claim_one(app)
    app.cancel(job.id)
    assert fail(app, job, retry_in=0) == []
    assert app.get_job(job.id).state is JobState.CANCELLED
    clock.advance(hours=1)
    assert claim(app) == []


def test_finish_and_claim_writes_the_outcomes_then_claims(app: duly.App) -> None:
    """The worker's combined step (one transaction on SQLite): outcomes first, so a job
    that the same batch sends back to the queue due now is claimable by the claim."""
    done, again, gone, waiting = (app.enqueue("t") for _ in range(4))
    a, b, c = claim(app, limit=3)
    assert {a.id, b.id, c.id} == {done.id, again.id, gone.id}
    by_id = {j.id: j for j in (a, b, c)}
    app.store.cancel(gone.id)
    fail(app, by_id[gone.id], retry_in=0)  # ends cancelled: its next outcome below is stale
    from duly.core.model import ClaimParams

    stale, jobs = app.store.finish_and_claim(
        [
            Finish(done.id, by_id[done.id].attempt, Outcome.SUCCEEDED, result_json="7"),
            Finish(again.id, by_id[again.id].attempt, Outcome.FAILED, retry_in=0.0),
            Finish(gone.id, by_id[gone.id].attempt, Outcome.SUCCEEDED),
        ],
        ClaimParams("w-both", 10),
    )
    assert [(s.job_id, s.outcome) for s in stale] == [(gone.id, Outcome.SUCCEEDED)]
    stored = app.store.get_job(done.id)
    assert stored is not None and (stored.state, stored.result) == (JobState.SUCCEEDED, 7)
    assert sorted(j.id for j in jobs) == sorted([again.id, waiting.id])
    assert {j.id: j.attempt for j in jobs}[again.id] == 2
    assert [x.outcome for x in app.store.attempts(again.id)][:1] == ["failed"]


def test_finish_and_claim_with_nothing_to_finish_or_claim(app: duly.App) -> None:
    from duly.core.model import ClaimParams

    app.enqueue("t")
    assert app.store.finish_and_claim([], ClaimParams("w", 0)) == ([], [])
    stale, jobs = app.store.finish_and_claim([], ClaimParams("w", 5))
    assert stale == [] and len(jobs) == 1


def test_one_finish_batch_mixing_successes_and_other_outcomes(app: duly.App) -> None:
    """Plain successes and the other outcomes go by different statements in one transaction:
    results, logs, progress, stale items and exact repeats are all as for single calls."""
    ids = [app.enqueue("t").id for _ in range(4)]
    a, b, c, d = sorted(claim(app, limit=4), key=lambda j: j.id)
    app.store.cancel(d.id)
    fail(app, d, retry_in=0)  # ended cancelled: a later outcome for it is stale
    plain = Finish(a.id, a.attempt, Outcome.SUCCEEDED, result_json='{"n": 1}', log="done a",
                   progress_done=3, progress_total=3)  # fmt: skip
    stale = app.store.finish([
        plain,
        Finish(b.id, b.attempt, Outcome.FAILED, retry_in=30.0, log="b failed"),
        Finish(c.id, c.attempt, Outcome.SUCCEEDED),
        Finish(d.id, d.attempt, Outcome.SUCCEEDED),
        plain,  # an exact repeat in one batch is stale
    ])  # fmt: skip
    assert [(s.job_id, s.outcome) for s in stale] == [(d.id, Outcome.SUCCEEDED), (a.id, Outcome.SUCCEEDED)]
    ja, jb, jc = (app.store.get_job(i) for i in ids[:3])
    assert ja is not None and jb is not None and jc is not None
    assert (ja.state, ja.result, ja.progress_done, ja.progress_total) == (JobState.SUCCEEDED, {"n": 1}, 3, 3)
    assert (jb.state, jb.errors) == (JobState.RETRYING, 1) and jc.state is JobState.SUCCEEDED
    assert [(x.outcome, x.log) for x in app.store.attempts(a.id)] == [("succeeded", "done a")]
    assert [(x.outcome, x.log) for x in app.store.attempts(b.id)] == [("failed", "b failed")]


def test_a_batch_of_successes_keeps_each_result_log_progress_and_attempt(app: duly.App) -> None:
    """The usual batch, every job still held: more jobs than one statement takes (SQLite
    writes 500 rows a statement), results of any text, logs and progress, each kept; each
    attempt recorded with the worker and the start of its claim."""
    n = 1_201
    app.enqueue_many([duly.Enqueue("t")] * n)
    jobs = sorted(claim(app, limit=n, worker="w-batch"), key=lambda j: j.id)
    assert len(jobs) == n
    special = {
        jobs[0].id: Finish(jobs[0].id, jobs[0].attempt, Outcome.SUCCEEDED, result_json='"d\u00e9j\u00e0 \u2713"'),
        jobs[600].id: Finish(jobs[600].id, jobs[600].attempt, Outcome.SUCCEEDED, result_json='["ünï", 2]',
                             log="line one\nline two", progress_done=5, progress_total=8),  # fmt: skip
        jobs[300].id: Finish(jobs[300].id, jobs[300].attempt, Outcome.SUCCEEDED,
                             result_json=json.dumps({"q": 'a "quoted" \\ back, {brace} [x]', "n": None}),
                             log='say "hi", {x} \\ [y]\t'),  # fmt: skip
    }
    batch = [special.get(j.id) or Finish(j.id, j.attempt, Outcome.SUCCEEDED) for j in jobs]
    assert app.store.finish(batch) == []
    first, middle, last = (app.store.get_job(jobs[k].id) for k in (0, 600, n - 1))
    assert first is not None and middle is not None and last is not None
    assert (first.state, first.result) == (JobState.SUCCEEDED, "déjà ✓")
    assert (middle.result, middle.progress_done, middle.progress_total) == (["ünï", 2], 5, 8)
    assert (last.state, last.result) == (JobState.SUCCEEDED, None)
    for k in (0, 600, n - 1):
        [attempt] = app.store.attempts(jobs[k].id)
        assert (attempt.outcome, attempt.worker_id, attempt.started_at) == ("succeeded", "w-batch", jobs[k].started_at)
        assert attempt.finished_at is not None
    assert app.store.attempts(jobs[600].id)[0].log == "line one\nline two"
    assert app.store.get_job(jobs[300].id).result == {"q": 'a "quoted" \\ back, {brace} [x]', "n": None}
    assert app.store.attempts(jobs[300].id)[0].log == 'say "hi", {x} \\ [y]\t'
    [stats] = app.stats(exact=True)
    assert stats[JobState.SUCCEEDED] == n


def test_a_claim_lost_in_a_server_crash_does_not_let_its_holder_end_the_next_attempt(
    backend: Backend, clock: duly.VirtualClock
) -> None:
    """PostgreSQL commits claims without waiting for the disk, so a server crash may lose
    one: the job waits again with its old attempt count and its next claim hands the same
    attempt number out again. The first holder (still running it somewhere) presents the
    attempt's start from its own claim, which the new claim never repeats: its heartbeat,
    progress and outcome are refused as stale, and the new holder's go through."""
    if backend.name == "sqlite":
        pytest.skip("SQLite commits each claim before it returns (its workers share its disk)")
    import psycopg
    from psycopg import sql

    app = backend.app(clock)
    app.enqueue("t")
    first = claim_one(app, worker="w1")
    # the claim's commit never reached the disk: after the restart the job waits as before it
    with psycopg.connect(backend.url, autocommit=True) as conn:
        conn.execute(sql.SQL("""UPDATE {} SET state = 'queued', attempt = attempt - 1, worker_id = NULL,
                                   started_at = NULL, lease_expires_at = NULL WHERE id = %s""")
                     .format(sql.Identifier(backend.prefix + "jobs")), (first.id,))  # fmt: skip
    clock.advance(timedelta(seconds=1))
    second = claim_one(app, worker="w2")
    assert (second.id, second.attempt) == (first.id, first.attempt) and second.started_at != first.started_at
    old = Held(first.id, first.attempt, first.started_at)
    assert app.store.heartbeat("w1", [old]).stale == {first.id}
    with pytest.raises(duly.StaleAttempt):
        app.store.set_progress(old, 1, 2)
    stale = Finish(first.id, first.attempt, Outcome.SUCCEEDED, started_at=first.started_at)
    assert app.store.finish([stale]) == [stale]
    failed = Finish(first.id, first.attempt, Outcome.FAILED, retry_in=5.0, started_at=first.started_at)
    assert app.store.finish([failed]) == [failed]  # the general statement fences alike
    assert app.store.get_job(first.id).state is JobState.RUNNING  # type: ignore[union-attr]
    new = Held(second.id, second.attempt, second.started_at)
    assert app.store.heartbeat("w2", [new]).stale == frozenset()
    app.store.set_progress(new, 1, 2)
    assert app.store.finish([Finish(second.id, second.attempt, Outcome.SUCCEEDED, started_at=second.started_at)]) == []
    done = app.store.get_job(first.id)
    assert done is not None and done.state is JobState.SUCCEEDED and done.progress_done == 1
    assert [(a.attempt, a.worker_id, a.outcome) for a in app.store.attempts(first.id)] == [(1, "w2", Outcome.SUCCEEDED)]
