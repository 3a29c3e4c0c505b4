"""Retries, expiry, cancel / retry / delete, history and stats (seeds 000 and 001)."""

from __future__ import annotations

from datetime import timedelta

import pytest

import duly
from duly.core.model import ErrorInfo, Finish, Held
from duly.core.states import JobState, Outcome
from tests.conftest import T0
from tests.helpers import claim, claim_one, fail, succeed

HOUR = 3600.0


def test_fixed_retry_runs_max_attempts_times_an_hour_apart_seed_000_8(
    app: duly.App, clock: duly.VirtualClock
) -> None:
    job = app.enqueue("h", max_attempts=3)
    seen = []
    while (due := claim(app)) or app.store.next_run_at():
        if not due:
            clock.set(app.store.next_run_at())  # type: ignore[arg-type]
            continue
        seen.append(clock.now())
        fail(app, due[0], retry_in=HOUR if due[0].errors + 1 < due[0].max_attempts else None)
    assert seen == [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)]
    assert app.get_job(job.id).state is JobState.FAILED


def test_retry_is_measured_from_the_failure_seed_000_9(app: duly.App, clock: duly.VirtualClock) -> None:
    job = app.enqueue("h")
    clock.advance(minutes=30)
    fail(app, claim_one(app), retry_in=HOUR)
    after = app.get_job(job.id)
    assert (after.run_at, after.errors, after.state) == (T0 + timedelta(minutes=90), 1, JobState.RETRYING)


def test_single_attempt_fails_for_good_seed_000_10(app: duly.App) -> None:
    job = app.enqueue("h", max_attempts=1)
    fail(app, claim_one(app), retry_in=None)
    assert app.get_job(job.id).state is JobState.FAILED
    assert claim(app) == []


def test_retry_landing_past_expiry_expires_seed_000_11(app: duly.App, clock: duly.VirtualClock) -> None:
    job = app.enqueue("h", expires_at=T0 + timedelta(minutes=90), max_attempts=5)
    fail(app, claim_one(app), retry_in=HOUR)
    assert app.get_job(job.id).state is JobState.RETRYING
    clock.advance(hours=1)
    fail(app, claim_one(app), retry_in=HOUR)  # next start T0+2h >= expiry
    final = app.get_job(job.id)
    assert final.state is JobState.EXPIRED and final.finished_at == clock.now()
    assert [a.outcome for a in app.attempts(job.id)] == [Outcome.FAILED, Outcome.FAILED]


def test_job_not_started_before_expiry_never_runs_seed_000_12(app: duly.App, clock: duly.VirtualClock) -> None:
    job = app.enqueue("h", expires_at=T0 + timedelta(hours=1))
    clock.advance(hours=2)
    assert claim(app) == []
    app.store.rescue()
    assert app.get_job(job.id).state is JobState.EXPIRED
    assert app.attempts(job.id) == []


def test_expiry_boundary_is_inclusive_seed_000_13(app: duly.App, clock: duly.VirtualClock) -> None:
    app.enqueue("h", expires_at=T0 + timedelta(minutes=1))
    clock.advance(minutes=1)
    assert claim(app) == []
    clock_before = app.enqueue("h", expires_at=T0 + timedelta(minutes=1, seconds=1))
    assert [j.id for j in claim(app)] == [clock_before.id]


def test_due_jobs_run_in_start_order_seed_000_16(app: duly.App, clock: duly.VirtualClock) -> None:
    b = app.enqueue("h", args=["b"], run_at=T0 + timedelta(minutes=1))
    a = app.enqueue("h", args=["a"], run_at=T0)
    clock.advance(minutes=2)
    assert [j.id for j in claim(app, 5)] == [a.id, b.id]


def test_virtual_clock_never_moves_backwards_seed_000_18(clock: duly.VirtualClock) -> None:
    clock.advance(hours=5)
    clock.set(T0 + timedelta(hours=3))
    assert clock.now() == T0 + timedelta(hours=5)
    with pytest.raises(ValueError):
        clock.advance(seconds=-1)


def test_per_attempt_log_seed_001_13(app: duly.App) -> None:
    job = app.enqueue("t")
    first = claim_one(app, "test")
    fail(app, first, retry_in=0, message="reason", log="failing\n")
    second = claim_one(app, "test")
    succeed(app, second, result={"ok": True}, log="succeeding\n")
    a1, a2 = app.attempts(job.id)
    assert (a1.attempt, a1.worker_id, a1.outcome, a1.error_message, a1.log) == (
        1, "test", Outcome.FAILED, "reason", "failing\n",
    )
    assert a1.error_type == "RuntimeError" and a1.traceback == "Traceback ..."
    assert (a2.attempt, a2.outcome, a2.log, a2.error_message) == (2, Outcome.SUCCEEDED, "succeeding\n", None)
    final = app.get_job(job.id)
    assert final.result == {"ok": True} and final.last_error == "RuntimeError: reason"


def test_running_attempt_is_listed_seed_001_14(app: duly.App) -> None:
    job = app.enqueue("t")
    claim_one(app)
    (a,) = app.attempts(job.id)
    assert a.outcome is Outcome.RUNNING and a.finished_at is None
    with pytest.raises(duly.JobNotFound):
        app.attempts(10_000_000)


def test_stats_seed_001_10_11(app: duly.App, clock: duly.VirtualClock) -> None:
    ids = app.enqueue_many(duly.Enqueue("t") for _ in range(10))
    future = app.enqueue("t", run_in="1h")

    def counts() -> dict[JobState, int]:
        (q,) = app.stats()
        return {s: n for s, n in q.counts.items() if n}

    assert counts() == {JobState.QUEUED: 10, JobState.SCHEDULED: 1}
    claimed = claim_one(app)
    assert claimed.id != future.id
    assert counts() == {JobState.QUEUED: 9, JobState.SCHEDULED: 1, JobState.RUNNING: 1}
    for i in ids:
        if i != claimed.id:
            app.cancel(i)
    assert counts() == {JobState.SCHEDULED: 1, JobState.RUNNING: 1, JobState.CANCELLED: 9}
    fail(app, claimed, retry_in=60)
    assert counts() == {JobState.SCHEDULED: 1, JobState.RETRYING: 1, JobState.CANCELLED: 9}


def test_expired_claim_counts_as_waiting_in_stats_seed_001_12(app: duly.App, clock: duly.VirtualClock) -> None:
    """A claim whose lease ran out is still stored ``running`` (until a rescue records the
    attempt lost), and stats count it apart: waiting, not claimed."""
    app.enqueue("t")
    claim_one(app)
    clock.advance(seconds=60)  # the lease ends at T0+60: still held at exactly that time
    (q,) = app.stats()
    assert (q[JobState.RUNNING], q.lease_expired, q.claimed, q.waiting) == (1, 0, 1, 0)
    clock.advance(seconds=1)
    (q,) = app.stats()
    assert (q[JobState.RUNNING], q.lease_expired, q.claimed, q.waiting) == (1, 1, 0, 1)
    app.store.rescue()
    (q,) = app.stats()
    assert (q[JobState.RUNNING], q[JobState.RETRYING], q.lease_expired, q.claimed, q.waiting) == (0, 1, 0, 0, 1)


def test_future_job_is_not_counted_due_until_its_time_seed_001_19(app: duly.App, clock: duly.VirtualClock) -> None:
    app.enqueue("t", run_in="1h")

    def due_and_scheduled() -> tuple[int, int]:
        (q,) = app.stats()
        return q[JobState.QUEUED], q[JobState.SCHEDULED]

    assert due_and_scheduled() == (0, 1)
    clock.advance(minutes=59, seconds=59)
    assert due_and_scheduled() == (0, 1)
    clock.advance(seconds=1)
    assert due_and_scheduled() == (1, 0)


def test_succeeded_job_ends_and_is_never_claimed_again_seed_000_6(app: duly.App, clock: duly.VirtualClock) -> None:
    """The seed removes a job whose handler returns OK; duly keeps it as ``succeeded``, with
    its history, until pruned (docs/concepts.md)."""
    job = app.enqueue("h", args=["data"])
    assert succeed(app, claim_one(app), result="done") == []
    after = app.get_job(job.id)
    assert (after.state, after.result, after.finished_at) == (JobState.SUCCEEDED, "done", T0)
    clock.advance(days=1)
    app.store.rescue()
    assert claim(app) == []
    assert [a.outcome for a in app.attempts(job.id)] == [Outcome.SUCCEEDED]


def test_exhausted_job_is_not_claimable_and_ends_failed_seed_001_6(app: duly.App, clock: duly.VirtualClock) -> None:
    """The seed leaves such a job in the table forever, counted as waiting (a quirk); duly ends
    it ``failed``: kept (not deleted), never claimed again, not counted as waiting."""
    job = app.enqueue("t", max_attempts=2)
    fail(app, claim_one(app), retry_in=0)
    fail(app, claim_one(app), retry_in=None)
    clock.advance(days=1)
    app.store.rescue()
    assert claim(app) == []
    after = app.get_job(job.id)
    assert (after.state, after.errors, after.attempts_left) == (JobState.FAILED, 2, 0)
    (q,) = app.stats()
    assert (q[JobState.FAILED], q.waiting, q.claimed) == (1, 0, 0)


def test_stats_per_queue_cover_every_state(app: duly.App) -> None:
    app.enqueue("t", queue="a")
    app.enqueue("t", queue="b")
    stats = {s.queue: s for s in app.stats()}
    assert set(stats) == {"a", "b"}
    assert set(stats["a"].counts) == set(JobState)


def test_cancel_waiting_job_never_runs_seed_001_4(app: duly.App) -> None:
    a = app.enqueue("t")
    b = app.enqueue("t")
    assert app.cancel(a.id).state is JobState.CANCELLED
    assert [j.id for j in claim(app, 5)] == [b.id]
    with pytest.raises(duly.InvalidTransition, match="cancelled"):
        app.cancel(a.id)
    with pytest.raises(duly.JobNotFound):
        app.cancel(123456789)


# ---- a cancel requested while the job runs is never lost ----------------------------------

ERR = ErrorInfo("RuntimeError", "boom", "Traceback ...")

#: Outcomes that, without a cancel request, would make the job wait for another run.
WAITS_AGAIN = {
    "fail-with-retry": Finish(0, 0, Outcome.FAILED, error=ERR, retry_in=60),
    "timeout-with-retry": Finish(0, 0, Outcome.TIMED_OUT, error=ERR, retry_in=60),
    "reschedule": Finish(0, 0, Outcome.RESCHEDULED, retry_in=3600),
    "reschedule-at": Finish(0, 0, Outcome.RESCHEDULED, run_at=T0 + timedelta(days=1)),
    "snooze": Finish(0, 0, Outcome.SNOOZED, retry_in=30),
    "interrupt": Finish(0, 0, Outcome.INTERRUPTED),
}


def _as(item: Finish, job: duly.Job) -> Finish:
    return Finish(job.id, job.attempt, item.outcome, error=item.error, retry_in=item.retry_in, run_at=item.run_at)


@pytest.mark.parametrize("how", list(WAITS_AGAIN))
def test_cancel_requested_then_an_outcome_that_would_wait_again_ends_cancelled(
    app: duly.App, clock: duly.VirtualClock, how: str
) -> None:
    job = app.enqueue("t", max_attempts=5)
    running = claim_one(app)
    app.cancel(job.id)
    clock.advance(seconds=5)
    assert app.store.finish([_as(WAITS_AGAIN[how], running)]) == []
    after = app.get_job(job.id)
    assert (after.state, after.finished_at, after.cancel_requested) == (JobState.CANCELLED, clock.now(), False)
    (attempt,) = app.attempts(job.id)
    assert attempt.outcome is WAITS_AGAIN[how].outcome  # the attempt keeps what really happened
    clock.advance(days=2)
    assert claim(app) == []


@pytest.mark.parametrize("with_stale", [False, True], ids=["all-held", "one-stale"])
def test_cancel_request_holds_in_a_finish_batch(app: duly.App, with_stale: bool) -> None:
    """Both ways a batch is written: every item held (SQLite: one executemany), or one item
    stale (SQLite: item by item). PostgreSQL writes both as one statement."""
    asked, other, gone = (app.enqueue("t", args=[i]) for i in range(3))
    held = {j.id: j for j in claim(app, 3)}
    app.cancel(asked.id)
    batch = [
        Finish(asked.id, held[asked.id].attempt, Outcome.FAILED, error=ERR, retry_in=60),
        Finish(other.id, held[other.id].attempt, Outcome.FAILED, error=ERR, retry_in=60),
    ]
    stale = Finish(gone.id, held[gone.id].attempt + 1, Outcome.FAILED, error=ERR, retry_in=60)
    if with_stale:
        batch.insert(1, stale)
    assert app.store.finish(batch) == ([stale] if with_stale else [])
    assert app.get_job(asked.id).state is JobState.CANCELLED
    assert app.get_job(other.id).state is JobState.RETRYING  # no cancel asked: retries as before
    assert app.get_job(gone.id).state is JobState.RUNNING
    assert [a.outcome for a in app.attempts(asked.id)] == [Outcome.FAILED]


def test_cancel_requested_then_lease_expires_rescue_ends_cancelled(
    app: duly.App, clock: duly.VirtualClock
) -> None:
    job = app.enqueue("t", max_attempts=5)
    claim_one(app, "dead-worker")
    app.cancel(job.id)
    clock.advance(seconds=61)
    assert app.store.rescue() == [Held(job.id, 1)]
    after = app.get_job(job.id)
    assert (after.state, after.finished_at, after.cancel_requested) == (JobState.CANCELLED, clock.now(), False)
    (lost,) = app.attempts(job.id)
    assert (lost.attempt, lost.worker_id, lost.outcome, lost.error_type) == (
        1, "dead-worker", Outcome.LOST, "LeaseExpired",
    )
    clock.advance(hours=1)
    app.store.rescue()
    assert claim(app) == []
    assert app.get_job(job.id).state is JobState.CANCELLED


def test_cancel_request_leaves_ending_outcomes_as_they_are(app: duly.App, clock: duly.VirtualClock) -> None:
    """Success, a failure with no retry and a last lost attempt end the job anyway; a retry
    that would land past the expiry ends it cancelled (what was asked), not expired."""
    ok, no_retry, last, expiring = (
        app.enqueue("t", args=["ok"]),
        app.enqueue("t", args=["no-retry"]),
        app.enqueue("t", args=["last"], max_attempts=1),
        app.enqueue("t", args=["expiring"], expires_at=T0 + timedelta(minutes=1)),
    )
    held = {j.id: j for j in claim(app, 4)}
    for job in (ok, no_retry, last, expiring):
        app.cancel(job.id)
    assert app.store.finish([
        Finish(ok.id, held[ok.id].attempt, Outcome.SUCCEEDED, "1"),
        Finish(no_retry.id, held[no_retry.id].attempt, Outcome.FAILED, error=ERR),
        Finish(expiring.id, held[expiring.id].attempt, Outcome.FAILED, error=ERR, retry_in=3600),
    ]) == []  # fmt: skip
    clock.advance(seconds=61)
    assert app.store.rescue() == [Held(last.id, held[last.id].attempt)]
    got = {j.args[0]: app.get_job(j.id).state for j in (ok, no_retry, last, expiring)}
    assert got == {
        "ok": JobState.SUCCEEDED, "no-retry": JobState.FAILED, "last": JobState.FAILED,
        "expiring": JobState.CANCELLED,
    }  # fmt: skip


def test_retry_brings_back_failed_cancelled_and_expired_jobs(app: duly.App, clock: duly.VirtualClock) -> None:
    failed = app.enqueue("t", max_attempts=1)
    fail(app, claim_one(app), retry_in=None)
    cancelled = app.enqueue("t")
    app.cancel(cancelled.id)
    expired = app.enqueue("t", expires_in="1m")
    clock.advance(minutes=2)
    app.store.rescue()
    for job in (failed, cancelled, expired):
        again = app.retry(job.id)
        assert (again.state, again.errors, again.run_at) == (JobState.QUEUED, 0, clock.now())
    assert app.get_job(expired.id).expires_at is None
    assert len(claim(app, 5)) == 3
    with pytest.raises(duly.InvalidTransition, match="running"):
        app.retry(failed.id)


def test_retry_refused_when_the_key_is_taken_again(app: duly.App) -> None:
    old = app.enqueue("t", key="k")
    app.cancel(old.id)
    new = app.enqueue("t", key="k")
    with pytest.raises(duly.DuplicateKey) as info:
        app.retry(old.id)
    assert info.value.job_id == new.id
    assert app.get_job(old.id).state is JobState.CANCELLED


def test_delete_removes_job_and_history(app: duly.App) -> None:
    job = app.enqueue("t")
    fail(app, claim_one(app), retry_in=0)
    app.delete(job.id)
    with pytest.raises(duly.JobNotFound):
        app.get_job(job.id)
    assert app.store.attempts(job.id) == []
    with pytest.raises(duly.JobNotFound):
        app.delete(job.id)


def test_list_jobs_filters_and_pages(app: duly.App) -> None:
    for i in range(30):
        app.enqueue("even" if i % 2 == 0 else "odd", args=[f"needle-{i}"], queue="a" if i < 10 else "b")
    page1 = app.jobs(task="even", limit=5)
    page2 = app.jobs(task="even", limit=5, before_id=page1[-1].id)
    assert len(page1) == 5 and len(page2) == 5 and page1[-1].id > page2[0].id
    assert {j.task for j in page1 + page2} == {"even"}
    assert [j.args for j in app.jobs(text="needle-17")] == [["needle-17"]]
    assert len(app.jobs(queue="a", limit=100)) == 10
    assert len(app.jobs(state="queued", limit=100)) == 30
    assert app.jobs(state="scheduled") == []
