"""The fault-injection suite at CI sizes: ``pytest -m chaos`` (issue 6; full sizes:
``scripts/chaos_full.py``, figures in docs/reliability.md).

Each check runs on SQLite and PostgreSQL (the ``backend`` fixture) unless marked. Real worker
processes (``tests.apps.chaosapp``) record every start and end in a ledger outside the queue's
database; the checker (``tests.chaos.ledger.check``) reports lost, unexpected, duplicated and
concurrent runs after a final drain with no faults.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import duly
from duly._faults import POINTS
from duly.core.errors import DulyError
from tests.chaos import checks
from tests.chaos.harness import Place
from tests.chaos.inputs import API_TOKEN, api_consistency, bad_input
from tests.conftest import Backend

pytestmark = pytest.mark.chaos


@pytest.fixture
def place(backend: Backend, tmp_path: Path) -> Iterator[Place]:
    p = Place.make(
        backend.name, tmp_path / "place", backend.url if backend.name == "postgres" else None
    )
    try:
        yield p
    finally:
        p.close()


def test_1_sigkill_random_workers_under_a_supervisor(place: Place) -> None:
    figures = checks.sigkill_workers(place, jobs=4000, processes=3, every=0.7, duration=5.0)
    print(figures)
    assert figures["faults"] >= 3


def test_2_each_crash_point_in_turn(backend: Backend, tmp_path: Path) -> None:
    def make(point: str) -> Place:
        return Place.make(
            backend.name, tmp_path / point, backend.url if backend.name == "postgres" else None
        )

    figures = checks.crash_points(make, jobs=150, crashes=2)
    print(figures)
    # every crash point in duly, the scheduler's included, was reached and crashed there
    assert set(figures) == set(POINTS)
    assert all(f["faults"] >= 2 for f in figures.values()), figures


def test_3_paused_worker_changes_nothing_real_processes(place: Place) -> None:
    print(checks.paused_worker(place, rounds=1, jobs_per_round=12))


def test_3_paused_worker_changes_nothing_1000_trials(
    app: duly.App, clock: duly.VirtualClock
) -> None:
    print(checks.paused_worker_virtual(app, clock, trials=1000))


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[Any]:
    """A PostgreSQL of our own (pgserver), so that restarting it disturbs nobody."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pgserver = pytest.importorskip("pgserver")
        server = pgserver.get_server(tempfile.mkdtemp(prefix="duly-chaos-pg-"), cleanup_mode="stop")
    try:
        yield server
    finally:
        checks.stop_private_postgres(server)


def test_4_postgres_restarted_and_backends_terminated_under_load(
    private_postgres: Any, tmp_path: Path
) -> None:
    place = Place.make("postgres", tmp_path / "place", private_postgres.get_uri())
    try:
        figures = checks.postgres_restarts(
            place, private_postgres, restarts=2, terminations=2, between=2.0
        )
    finally:
        place.close()
    print(figures)
    assert figures["recover_s"] < 10 and figures["faults"] == 4
    assert figures["backends_terminated"] >= 2 and figures["lost"] == 0


def test_5_many_processes_on_one_sqlite_file(tmp_path: Path) -> None:
    place = Place.make("sqlite", tmp_path / "place")
    try:
        print(checks.sqlite_many_processes(place, enqueuers=3, workers=3, seconds=8.0))
    finally:
        place.close()


def test_6_many_processes_enqueue_one_key(place: Place) -> None:
    print(checks.one_key(place, processes=32, per_process=5))


def test_7_schedulers_killed_and_restarted(place: Place) -> None:
    if place.backend == "postgres":
        from duly.store.postgres.store import PostgresStore

        if not hasattr(PostgresStore, "fire"):
            pytest.skip("the PostgreSQL trigger store is not there yet")
    figures = checks.schedulers(place, count=3, seconds=16.0, kill_every=1.0, crash_rate=0.2,
                                outages=1, outage_s=8.0)  # fmt: skip
    print(figures)
    # 3 triggers x ~24 slots at 0.2 a pass: no crash at all has odds of about 1e-7
    assert figures["crashes_between_slot_and_job"] >= 1 and figures["outages"] == 1


def test_8_handlers_that_misbehave(place: Place) -> None:
    print(checks.bad_handlers(place))


def test_9_bad_input_is_refused_and_nothing_lost(place: Place) -> None:
    print(bad_input(place.app()))


# ---- 9. the enqueue API under random input ----------------------------------------------

json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
)  # fmt: skip
json_value = st.recursive(
    json_leaf,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=12,
)
not_json = st.sampled_from([object(), {1, 2}, b"\xff", 1j, (lambda: 0)])
arg = st.one_of(json_value, json_value, json_value, not_json)
names = st.text(min_size=0, max_size=30) | st.sampled_from(
    ["default", "'; DROP TABLE x; --", "<b>q</b>", 'q"uote']
)
options = st.fixed_dictionaries(
    {},
    optional={
        "queue": names,
        "priority": st.integers(min_value=-(10**7), max_value=10**7) | st.floats() | st.booleans(),
        "run_in": st.floats(min_value=-10, max_value=1e10)
        | st.integers(min_value=-10, max_value=10**10),
        "expires_in": st.floats(min_value=-10, max_value=1e6),
        "max_attempts": st.integers(min_value=-2, max_value=2_000_000),
        "key": st.text(max_size=12) | st.sampled_from(["k1", "k2"]),
        "mode": st.sampled_from(["new", "ignore", "replace", "bogus"]),
    },
)


def _jsonish(value: Any) -> Any:
    """What reading a stored value gives back: tuples become lists."""
    return json.loads(json.dumps(value))


def enqueue_consistency(app: duly.App, max_examples: int) -> dict[str, int]:
    """Drive ``app.enqueue_result`` with random input; every accepted job is readable and equal
    to what was sent, every refused call changes nothing."""
    seen = {"accepted": 0, "refused": 0}

    @settings(max_examples=max_examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(task=names, args=st.lists(arg, max_size=3), kwargs=st.dictionaries(st.text(max_size=6), arg, max_size=2),
           opts=options)  # fmt: skip
    def run(task: str, args: list[Any], kwargs: dict[str, Any], opts: dict[str, Any]) -> None:
        count = sum(sum(s.counts.values()) for s in app.stats(exact=True))
        try:
            result = app.enqueue_result(task, args, kwargs, **opts)
        except DulyError:
            seen["refused"] += 1
            assert sum(sum(s.counts.values()) for s in app.stats(exact=True)) == count
            return
        seen["accepted"] += 1
        job = app.get_job(result.job.id)
        if not result.created:  # mode ignore: the live holder of the key, untouched
            assert job.key == opts.get("key") and job.id == result.job.id
            return
        assert job.task == task
        assert job.args == _jsonish(args) and job.kwargs == _jsonish(kwargs), (
            job.args,
            args,
            job.kwargs,
            kwargs,
        )
        assert job.queue == opts.get("queue", "default")
        assert job.priority == opts.get("priority", 0)
        assert job.key == opts.get("key")

    run()
    assert before_after_ok(app)
    return seen


def before_after_ok(app: duly.App) -> bool:
    for job in app.jobs(limit=1000):
        for v in (job.args, job.kwargs):
            json.dumps(v, allow_nan=False)  # raises on a stored NaN or infinity (a text "NaN" is data)
            assert all(math.isfinite(x) for x in _floats(v))
    return True


def _floats(v: Any) -> Iterator[float]:
    if isinstance(v, float):
        yield v
    elif isinstance(v, list):
        for x in v:
            yield from _floats(x)
    elif isinstance(v, dict):
        for x in v.values():
            yield from _floats(x)


def test_9_hypothesis_enqueue_keeps_the_store_consistent(backend: Backend) -> None:
    seen = enqueue_consistency(backend.app(), max_examples=150)
    print(seen)
    assert seen["accepted"] and seen["refused"]


def test_9_hypothesis_json_api_keeps_the_store_consistent(backend: Backend) -> None:
    seen = api_consistency(backend.app(), max_examples=150)
    print(seen)
    assert "500" not in seen and seen.get("201") and seen.get("400") and seen.get("422")


def test_9_json_api_refuses_duplicate_keys(backend: Backend) -> None:
    """Python's json keeps the last of two equal keys; the API refuses the body instead."""
    import httpx

    from duly.web.server import serve_in_thread

    app = backend.app()
    server = serve_in_thread(app, port=0, token=API_TOKEN)
    cases = [
        (b'{"task": "work", "priority": 1, "priority": 99}', "priority"),
        (b'{"task": "work", "task": "other"}', "task"),
        (b'{"task": "work", "kwargs": {"eur": 5, "eur": 500}}', "eur"),
        (b'{"task": "work", "args": [{"a": 1, "b": 2, "a": 3}]}', "a"),
    ]
    try:
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {API_TOKEN}"}
        ) as http:
            for body, key in cases:
                r = http.post("/api/jobs", content=body)
                assert r.status_code == 400, (body, r.status_code, r.text)
                assert f"duplicate key '{key}'" in r.json()["error"], r.json()
            assert app.jobs() == []
            ok = http.post("/api/jobs", content=b'{"task": "work", "kwargs": {"eur": 5}}')
            assert ok.status_code == 201 and app.get_job(ok.json()["job"]["id"]).kwargs == {
                "eur": 5
            }
    finally:
        server.stop()
