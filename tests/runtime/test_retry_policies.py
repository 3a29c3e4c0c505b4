"""Retry policies end to end (issue 2, point 7), on both backends, under the virtual clock:
a list of delays, the default exponential policy with jitter, and a retry that lands exactly
at ``expires_at`` (seed 000 scenarios 11 and 13: ``start' >= expiry`` gives up)."""

from __future__ import annotations

from datetime import timedelta

import pytest

import duly
from duly.core.retry import Exponential, as_policy
from duly.core.states import JobState
from duly.testing import drain
from tests.conftest import T0
from tests.helpers import claim, claim_one, fail


def gaps(app: duly.App, job_id: int) -> list[float]:
    """Seconds between the starts of a job's attempts (each gap is one retry delay)."""
    starts = [a.started_at for a in app.attempts(job_id)]
    return [(b - a).total_seconds() for a, b in zip(starts, starts[1:]) if a and b]


@pytest.mark.parametrize("retry", [[10, "1m", "5m"], duly.Delays([10, "1m", "5m"])], ids=["list", "Delays"])
def test_a_list_of_delays_is_followed_and_its_last_delay_repeats(app: duly.App, retry: object) -> None:
    @app.task(retry=retry, max_attempts=5)
    def always_fails() -> None:
        raise RuntimeError("down")

    job = always_fails.enqueue()
    drain(app)
    assert gaps(app, job.id) == [10, 60, 300, 300]
    final = app.get_job(job.id)
    assert final.state is JobState.FAILED and final.errors == 5


def test_default_policy_is_exponential_with_jitter_within_its_documented_bounds(app: duly.App) -> None:
    # docs/concepts.md: Exponential(base=2, factor=2, cap=3600, jitter=0.1): 2 s, 4 s, 8 s ... ±10 %
    @app.task(max_attempts=5)
    def always_fails(n: int) -> None:
        raise RuntimeError(n)

    assert always_fails.defaults.retry == Exponential(base=2, factor=2, cap=3600, jitter=0.1)
    first, second = always_fails.enqueue(1), always_fails.enqueue(2)
    drain(app)
    a, b = gaps(app, first.id), gaps(app, second.id)
    for delays in (a, b):
        assert len(delays) == 4
        for delay, nominal in zip(delays, [2, 4, 8, 16], strict=True):
            assert nominal * 0.9 - 1e-6 <= delay <= nominal * 1.1 + 1e-6, (delays, nominal)
    assert a != b  # jitter: two jobs failing alike do not retry in lockstep


def test_default_policy_is_capped_at_an_hour_plus_jitter() -> None:
    policy = as_policy(None)
    delays = [policy.delay(failures, None) for failures in range(1, 200)]
    assert all(d is not None and 0 < d <= 3600 * 1.1 for d in delays)
    capped = [d for d in delays[20:] if d is not None]
    assert all(3600 * 0.9 <= d <= 3600 * 1.1 for d in capped) and len(set(capped)) > 1


def test_retry_landing_exactly_at_expiry_expires_seed_000_11_13(app: duly.App, clock: duly.VirtualClock) -> None:
    job = app.enqueue("h", expires_at=T0 + timedelta(hours=1), max_attempts=5)
    fail(app, claim_one(app), retry_in=3600)  # the retry would start at T0+1h == expiry
    final = app.get_job(job.id)
    assert final.state is JobState.EXPIRED and final.finished_at == T0
    assert claim(app) == []
    clock.advance(hours=2)
    assert claim(app) == [] and app.get_job(job.id).state is JobState.EXPIRED


def test_retry_landing_just_before_expiry_still_runs_seed_000_11(app: duly.App, clock: duly.VirtualClock) -> None:
    job = app.enqueue("h", expires_at=T0 + timedelta(hours=1, microseconds=1), max_attempts=5)
    fail(app, claim_one(app), retry_in=3600)
    assert app.get_job(job.id).state is JobState.RETRYING
    clock.advance(hours=1)
    assert claim_one(app).id == job.id


def test_worker_retry_landing_exactly_at_expiry_expires_seed_000_11_13(app: duly.App) -> None:
    calls = []

    @app.task(retry="1h", max_attempts=5)
    def fails() -> None:
        calls.append(1)
        raise RuntimeError

    job = fails.options(expires_at=T0 + timedelta(hours=2)).enqueue()
    drain(app)
    # runs at T0 and T0+1h; the retry after the second failure lands on T0+2h == expiry
    assert len(calls) == 2
    final = app.get_job(job.id)
    assert final.state is JobState.EXPIRED and final.finished_at == T0 + timedelta(hours=1)
    assert [a.outcome.value for a in app.attempts(job.id)] == ["failed", "failed"]
