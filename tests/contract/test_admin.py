"""Operating verbs of the store on both backends: worker registry, paused queues,
retention pruning, throughput, counts, oldest due job, run now."""

from __future__ import annotations

from datetime import timedelta

import pytest

import duly
from duly.core import defaults
from duly.core.admin import WorkerRegistration
from duly.core.model import ClaimParams
from duly.core.states import JobState
from tests.conftest import T0, Backend
from tests.helpers import claim, claim_one, fail, succeed


def _reg(worker_id: str = "w1", queues: list[str] | None = None) -> WorkerRegistration:
    return WorkerRegistration(worker_id, "host-a", 4242, queues, 8)


def test_worker_registry_register_touch_list_remove(app: duly.App, clock: duly.VirtualClock) -> None:
    store = app.store
    store.register_worker(_reg("w1", ["a", "b"]))
    store.register_worker(_reg("w2"))
    app.enqueue("t")
    claim(app, worker="w1")
    clock.advance(30)
    assert store.touch_worker("w1") is True
    workers = {w.id: w for w in store.list_workers(dead_after=60)}
    assert set(workers) == {"w1", "w2"}
    w1 = workers["w1"]
    assert (w1.hostname, w1.pid, w1.queues, w1.concurrency) == ("host-a", 4242, ["a", "b"], 8)
    assert w1.started_at == T0 and w1.last_seen_at == T0 + timedelta(seconds=30)
    assert w1.alive and w1.running == 1
    assert workers["w2"].queues is None and workers["w2"].running == 0
    clock.advance(45)  # w2 last seen 75 s ago, w1 45 s ago
    alive = {w.id: w.alive for w in store.list_workers(dead_after=60)}
    assert alive == {"w1": True, "w2": False}
    store.remove_worker("w1")
    assert [w.id for w in store.list_workers(dead_after=60)] == ["w2"]
    assert store.touch_worker("w1") is False


def test_register_again_refreshes_the_row(app: duly.App, clock: duly.VirtualClock) -> None:
    app.store.register_worker(_reg("w1"))
    clock.advance(100)
    app.store.register_worker(WorkerRegistration("w1", "host-b", 7, ["x"], 2))
    (w,) = app.store.list_workers(dead_after=60)
    assert (w.hostname, w.pid, w.queues, w.concurrency, w.alive) == ("host-b", 7, ["x"], 2, True)


def test_forget_workers_long_dead(app: duly.App, clock: duly.VirtualClock) -> None:
    app.store.register_worker(_reg("old"))
    clock.advance(3600)
    app.store.register_worker(_reg("new"))
    assert app.store.forget_workers(clock.now() - timedelta(seconds=60)) == 1
    assert [w.id for w in app.store.list_workers(60)] == ["new"]


def test_paused_queue_is_not_claimed_and_resumes(app: duly.App) -> None:
    store = app.store
    a = app.enqueue("t", queue="a")
    b = app.enqueue("t", queue="b")
    assert store.pause_queue("a") is True
    assert store.pause_queue("a") is False
    assert [p.name for p in store.paused_queues()] == ["a"]
    got = store.claim(ClaimParams("w1", 10, None, (), exclude_queues=["a"]))
    assert [j.id for j in got] == [b.id]
    assert store.claim(ClaimParams("w1", 10, ["a", "b"], (), exclude_queues=["a"])) == []
    assert store.resume_queue("a") is True
    assert store.resume_queue("a") is False
    assert store.paused_queues() == []
    got = store.claim(ClaimParams("w1", 10, None, (), exclude_queues=[]))
    assert [j.id for j in got] == [a.id]


def test_queue_counts_match_stats_and_show_paused(app: duly.App, clock: duly.VirtualClock) -> None:
    for _ in range(3):
        app.enqueue("t", queue="a")
    app.enqueue("t", queue="a", run_in=3600)
    app.enqueue("t", queue="b")
    job = claim_one(app)
    succeed(app, job)
    job = claim_one(app)
    fail(app, job, retry_in=60)
    claim_one(app)  # running
    app.store.pause_queue("paused-only")
    counts = {c.queue: c for c in app.store.queue_counts()}
    stats = {s.queue: s for s in app.stats()}
    assert set(counts) == {"a", "b", "paused-only"}
    for q in ("a", "b"):
        assert counts[q].counts == stats[q].counts, q
        assert counts[q].estimated == frozenset() and not counts[q].paused
    assert counts["a"][JobState.SCHEDULED] == 1
    assert counts["paused-only"].paused and counts["paused-only"].total == 0


def test_a_queue_whose_only_jobs_are_running_is_listed_and_counted(app: duly.App) -> None:
    """The (queue, state, run_at) index leaves running jobs out (migration 6): their queue
    is still a known queue, counted, and found by the job list's filters."""
    app.enqueue("t", queue="busy")
    job = claim_one(app)
    assert app.store.queue_names() == ["busy"]
    counts = {c.queue: c for c in app.store.queue_counts()}
    assert counts["busy"][JobState.RUNNING] == 1 and counts["busy"].total == 1
    assert [j.id for j in app.jobs(queue="busy")] == [job.id]
    assert [j.id for j in app.jobs(queue="busy", state="running")] == [job.id]
    assert [j.id for j in app.jobs(task="t")] == [job.id]
    assert [j.id for j in app.jobs(task="t", state="running")] == [job.id]
    assert app.jobs(task="t", state="queued") == []


def test_prune_deletes_old_finished_jobs_in_batches(app: duly.App, clock: duly.VirtualClock) -> None:
    old = [app.enqueue("t") for _ in range(3)]
    for _ in old:
        job = claim_one(app)
        succeed(app, job, log="done")
    waiting = app.enqueue("t", run_in=timedelta(days=30))
    clock.advance(timedelta(days=8))
    recent = app.enqueue("t")
    fail(app, claim_one(app), retry_in=None)
    before = clock.now() - timedelta(days=7)
    assert app.store.count_prunable(before) == 3
    assert app.store.prune(before, batch=2) == 2
    assert app.store.prune(before, batch=2) == 1
    assert app.store.prune(before, batch=2) == 0
    for job in old:
        assert app.store.get_job(job.id) is None
        assert app.store.attempts(job.id) == []
    assert app.get_job(waiting.id).state is JobState.SCHEDULED
    assert app.get_job(recent.id).state is JobState.FAILED
    assert len(app.attempts(recent.id)) == 1


def test_throughput_per_minute_queue_and_state(app: duly.App, clock: duly.VirtualClock) -> None:
    for q in ("a", "a", "b"):
        app.enqueue("t", queue=q)
    succeed(app, claim_one(app))
    clock.advance(60)
    succeed(app, claim_one(app))
    fail(app, claim_one(app), retry_in=None)
    points = app.store.throughput(T0 - timedelta(minutes=5))
    got = sorted((p.queue, p.minute, p.state.value, p.count) for p in points)
    m0, m1 = T0, T0 + timedelta(minutes=1)
    assert got == [("a", m0, "succeeded", 1), ("a", m1, "succeeded", 1), ("b", m1, "failed", 1)]
    assert app.store.throughput(m1 + timedelta(seconds=1)) == []


def test_recent_attempt_durations(app: duly.App, clock: duly.VirtualClock) -> None:
    app.enqueue("t", queue="a")
    job = claim_one(app)
    clock.advance(2.5)
    succeed(app, job)
    rows = app.store.recent_attempt_durations(T0, 100)
    assert rows == [("a", "succeeded", pytest.approx(2.5))]


def test_oldest_due_per_queue(app: duly.App, clock: duly.VirtualClock) -> None:
    app.enqueue("t", queue="a")
    clock.advance(10)
    app.enqueue("t", queue="a")
    app.enqueue("t", queue="b", run_in=60)
    assert app.store.oldest_due() == {"a": T0}
    clock.advance(120)
    assert app.store.oldest_due() == {"a": T0, "b": T0 + timedelta(seconds=70)}


def test_run_now_makes_a_waiting_job_due(app: duly.App, clock: duly.VirtualClock) -> None:
    later = app.enqueue("t", run_in=3600)
    job = app.store.run_now(later.id)
    assert job is not None and job.state is JobState.QUEUED and job.run_at == T0
    assert [j.id for j in claim(app, 5)] == [later.id]
    assert app.store.run_now(later.id) is None  # running: not waiting
    assert app.store.run_now(999_999) is None


def test_postgres_counts_above_the_cap_are_estimates(
    backend: Backend, app: duly.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend.name != "postgres":
        pytest.skip("PostgreSQL only: SQLite counts waiting jobs exactly")
    for _ in range(30):
        app.enqueue("t", queue="big")
    monkeypatch.setattr(defaults, "COUNT_EXACT_LIVE", 5)
    (counts,) = app.store.queue_counts()
    assert JobState.QUEUED in counts.estimated and JobState.SCHEDULED in counts.estimated
    assert counts[JobState.QUEUED] >= 5  # the cap at least, the planner's estimate above it
    assert JobState.SUCCEEDED not in counts.estimated and counts[JobState.SUCCEEDED] == 0


def finish_a_minute_apart(
    app: duly.App, clock: duly.VirtualClock, n: int, queue: str, fail_every: int | None = None
) -> None:
    """``n`` jobs of ``queue`` run and end a minute apart: every ``fail_every``-th (from the
    first) fails for good, the others succeed."""
    for i in range(n):
        app.enqueue("t", queue=queue)
        job = claim_one(app)
        if fail_every is not None and i % fail_every == 0:
            fail(app, job, retry_in=None)
        else:
            succeed(app, job)
        clock.advance(60)


def test_big_finished_counts_are_estimated_small_ones_exact(
    app: duly.App, clock: duly.VirtualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    finish_a_minute_apart(app, clock, 20, "q", fail_every=7)
    monkeypatch.setattr(defaults, "COUNT_EXACT_FINAL", 5)
    (counts,) = app.store.queue_counts()
    assert counts.estimated == frozenset({JobState.SUCCEEDED})
    assert 5 <= counts[JobState.SUCCEEDED] <= 100  # an estimate: at least the cap
    assert counts[JobState.FAILED] == 3  # under the cap: exact
    assert app.store.queue_names() == ["q"]


def test_stats_are_bounded_by_default_and_exact_on_request(
    app: duly.App, clock: duly.VirtualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    finish_a_minute_apart(app, clock, 12, "q", fail_every=4)
    app.enqueue("t", queue="q", run_in=3600)  # scheduled
    app.enqueue("t", queue="r")
    claim_one(app)  # running in r, its lease runs out below
    app.enqueue("t", queue="r")  # queued
    clock.advance(timedelta(hours=2))  # the scheduled one is due now; r's lease has lapsed
    app.enqueue("t", queue="q", run_in=60)  # scheduled
    exact = {s.queue: s for s in app.stats(exact=True)}
    fast = {s.queue: s for s in app.stats()}
    assert set(fast) == set(exact) == {"q", "r"}
    for q in ("q", "r"):  # small counts: the bounded stats are exact
        assert fast[q].counts == exact[q].counts and fast[q].estimated == frozenset(), q
        assert fast[q].lease_expired == exact[q].lease_expired, q
    assert exact["r"].lease_expired == 1 and exact["r"].waiting == 2
    assert (exact["q"][JobState.SUCCEEDED], exact["q"][JobState.FAILED]) == (9, 3)
    monkeypatch.setattr(defaults, "STATS_EXACT_FINAL", 5)
    fast = {s.queue: s for s in app.stats()}
    assert fast["q"].estimated == frozenset({JobState.SUCCEEDED})  # over the limit: estimated
    assert fast["q"][JobState.FAILED] == 3 and fast["q"][JobState.QUEUED] == 1
    assert {s.queue: s for s in app.stats(exact=True)}["q"][JobState.SUCCEEDED] == 9


def test_stats_count_exactly_past_the_dashboards_limit(
    app: duly.App, clock: duly.VirtualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dashboard's limit (COUNT_EXACT_FINAL) is not App.stats()'s: a planner estimate of
    a freshly filled table can be far too low, so stats count up to STATS_EXACT_FINAL."""
    finish_a_minute_apart(app, clock, 30, "default")
    monkeypatch.setattr(defaults, "COUNT_EXACT_FINAL", 5)
    (counts,) = app.store.queue_counts()
    assert JobState.SUCCEEDED in counts.estimated  # the dashboard's count
    (stats,) = app.stats()
    assert stats[JobState.SUCCEEDED] == 30 and stats.estimated == frozenset()


def test_list_jobs_between_ids(app: duly.App) -> None:
    from duly.core.model import JobFilter

    ids = [app.enqueue("t", args=[i]).id for i in range(6)]
    got = app.store.list_jobs(JobFilter(before_id=ids[4], after_id=ids[1], text="t"))
    assert [j.id for j in got] == [ids[3], ids[2]]
