"""Enqueue: options, JSON-only arguments, caller keys (seed 000 scenarios 1-4), bulk."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

import duly
from duly.core.states import JobState
from tests.conftest import T0, Backend
from tests.helpers import claim_one, fail


def test_enqueue_defaults_seed_000_1_new_job(app: duly.App) -> None:
    job = app.enqueue("mail.send", args=[1], kwargs={"to": "a@b"}, key="j", run_in="10m")
    assert job.attempt == 0 and job.errors == 0
    assert job.max_attempts == 5
    assert job.expires_at is None
    assert (job.task, job.args, job.kwargs) == ("mail.send", [1], {"to": "a@b"})
    assert job.state is JobState.SCHEDULED
    assert job.run_at == T0 + timedelta(minutes=10)
    assert app.get_job(job.id) == job


@pytest.mark.parametrize("real_clock", [False, True], ids=["virtual-clock", "database-clock"])
def test_a_keyless_enqueue_returns_the_job_as_stored(backend: Backend, clock: duly.Clock, real_clock: bool) -> None:
    # PostgreSQL returns only the id and times of a job without a key and builds the rest
    # from what was enqueued: every field must still match the stored row.
    app = backend.app(None if real_clock else clock)
    now = app.clock.now()
    jobs = [
        app.enqueue("a"),
        app.enqueue("b", args=[1, "x", None], kwargs={"k": {"n": [1.5]}}, queue="q", priority=-3),
        app.enqueue("c", run_in="10m", expires_in="1h", max_attempts=2),
        app.enqueue("d", run_at=now - timedelta(days=1), expires_at=now + timedelta(days=400)),
        app.enqueue("e", run_in=0.25),
    ]
    for job in jobs:
        assert app.get_job(job.id) == job
    assert [j.state for j in jobs] == [JobState.QUEUED, JobState.QUEUED, JobState.SCHEDULED, JobState.QUEUED,
                                      JobState.SCHEDULED]  # fmt: skip


def test_task_enqueue_uses_task_defaults(app: duly.App) -> None:
    @app.task(queue="emails", priority=7, max_attempts=2, lease="2m")
    def send(to: str) -> None: ...

    job = send.enqueue("x@y")
    assert (job.queue, job.priority, job.max_attempts, job.lease_seconds) == ("emails", 7, 2, 120)
    assert job.task == f"{__name__}.test_task_enqueue_uses_task_defaults.<locals>.send"
    over = send.options(queue="urgent", priority=9, run_at=T0 + timedelta(hours=1)).enqueue("z")
    assert (over.queue, over.priority, over.run_at) == ("urgent", 9, T0 + timedelta(hours=1))


def test_task_name_can_be_set_and_registering_twice_is_an_error_seed_000_15(app: duly.App) -> None:
    @app.task(name="reports.build")
    def build() -> None: ...

    assert build.name == "reports.build"
    with pytest.raises(duly.DuplicateTask, match="reports.build"):
        app.task(name="reports.build")(lambda: None)


def test_async_tasks_register(app: duly.App) -> None:
    @app.task
    async def fetch() -> int:
        return 1

    assert fetch.is_async
    assert fetch.enqueue().task.endswith("fetch")


def test_unregistered_task_name_can_be_enqueued(app: duly.App) -> None:
    job = app.enqueue("elsewhere.defined", args=["a"])
    assert job.task == "elsewhere.defined" and job.queue == "default"


@pytest.mark.parametrize(
    ("args", "kwargs", "fragment"),
    [
        ([{1, 2}], {}, "argument 0 is a set"),
        ([], {"when": object()}, "argument 'when' is a object"),
        ([float("nan")], {}, "nan"),
        ([], {"x": [1, float("inf")]}, "argument 'x'[1] is inf"),
        (["ok", "bad\x00"], {}, "argument 1 contains a NUL"),
        (["\udcff"], {}, "not valid UTF-8"),
        ([b"bytes"], {}, "argument 0 is a bytes"),
    ],
)
def test_non_json_arguments_are_refused_and_nothing_is_written(
    app: duly.App, args: list[object], kwargs: dict[str, object], fragment: str
) -> None:
    with pytest.raises(duly.InvalidArguments) as info:
        app.enqueue("t", args=args, kwargs=kwargs)
    assert fragment in str(info.value)
    assert app.jobs() == []


class Ambiguous:
    """Like a numpy array: asking for its truth value raises."""

    def __bool__(self) -> bool:
        raise ValueError("the truth value of an array with more than one element is ambiguous")


BAD_SHAPES = [
    ({"args": "abc"}, "args of task 't' must be a list or tuple, got str"),
    ({"args": {"a": 1}}, "args of task 't' must be a list or tuple, got dict"),
    ({"args": {1, 2}}, "args of task 't' must be a list or tuple, got set"),
    ({"args": b"ab"}, "args of task 't' must be a list or tuple, got bytes"),
    ({"args": None}, "args of task 't' must be a list or tuple, got NoneType"),
    ({"args": Ambiguous()}, "args of task 't' must be a list or tuple, got Ambiguous"),
    ({"kwargs": [1]}, "kwargs of task 't' must be a mapping (a dict), got list"),
    ({"kwargs": [("a", 1)]}, "kwargs of task 't' must be a mapping (a dict), got list"),
    ({"kwargs": "a=1"}, "kwargs of task 't' must be a mapping (a dict), got str"),
    ({"kwargs": {1: "x"}}, "kwargs of task 't': keyword 1 is not a string"),
    ({"kwargs": {"ok": 1, None: 2}}, "kwargs of task 't': keyword None is not a string"),
]


@pytest.mark.parametrize(("shape", "message"), BAD_SHAPES)
def test_args_and_kwargs_of_the_wrong_shape_are_refused_naming_them(
    app: duly.App, shape: dict[str, object], message: str
) -> None:
    with pytest.raises(duly.InvalidArguments) as info:
        app.enqueue("t", **shape)  # type: ignore[arg-type]
    assert str(info.value) == message
    assert app.jobs() == []


@pytest.mark.parametrize(("shape", "message"), BAD_SHAPES)
def test_bulk_enqueue_refuses_wrong_shapes_before_writing_anything(
    app: duly.App, shape: dict[str, object], message: str
) -> None:
    items = [duly.Enqueue("t", args=[i]) for i in range(50)] + [duly.Enqueue("t", **shape)]  # type: ignore[arg-type]
    with pytest.raises(duly.InvalidArguments) as info:
        app.enqueue_many(items)
    assert str(info.value) == message
    assert app.jobs() == []


def test_task_enqueue_refuses_wrong_shapes_and_writes_nothing(app: duly.App) -> None:
    @app.task(name="t")
    def t(*args: object, **kwargs: object) -> None: ...

    with pytest.raises(duly.InvalidArguments, match="task 't': argument 0 is a set"):
        t.enqueue({1})
    with pytest.raises(duly.InvalidArguments, match="task 't': argument 'x' is a set"):
        t.options(priority=1).enqueue(x={1})
    with pytest.raises(duly.InvalidArguments, match="args of task 't' must be a list or tuple, got str"):
        t.enqueue_many([(1,), "ab"])  # a string is not a tuple of arguments
    assert app.jobs() == []
    assert app.get_job(t.enqueue(*"ab").id).args == ["a", "b"]  # unpacked by the caller: fine


def test_args_tuple_and_any_mapping_for_kwargs_are_accepted(app: duly.App) -> None:
    from types import MappingProxyType

    job = app.enqueue("t", args=(1, "a"), kwargs=MappingProxyType({"k": [1]}))
    assert (app.get_job(job.id).args, app.get_job(job.id).kwargs) == ([1, "a"], {"k": [1]})
    bulk = app.enqueue_many([duly.Enqueue("t", args=(2,), kwargs=MappingProxyType({"k": 2}))])
    assert (app.get_job(bulk[0]).args, app.get_job(bulk[0]).kwargs) == ([2], {"k": 2})
    assert app.get_job(app.enqueue("t", kwargs=None).id).kwargs == {}


def test_payload_size_limit(backend: Backend, clock: duly.VirtualClock) -> None:
    app = backend.app(clock, max_payload_bytes=1000)
    app.enqueue("t", args=["x" * 900])
    with pytest.raises(duly.InvalidArguments, match="over the limit of 1000 bytes"):
        app.enqueue("t", args=["x" * 1001])
    assert len(app.jobs()) == 1


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"priority": "high"}, "priority must be an integer"),
        ({"priority": 10**9}, "outside"),
        ({"run_in": -5}, "run_in must be zero or more"),
        ({"run_in": "soon"}, "invalid duration 'soon'"),
        ({"run_in": 10**12}, "more than a century"),
        ({"max_attempts": 0}, "max_attempts must be an integer >= 1"),
        ({"queue": ""}, "queue must be a non-empty string"),
        ({"queue": "a\nb"}, "control characters"),
        ({"expires_in": "1m", "run_in": "2m"}, "is not after the run time"),
        ({"run_at": "2030-01-07T10:00:00"}, "has no time zone"),
        ({"mode": "upsert"}, "mode must be one of"),
        ({"colour": "red"}, "unknown enqueue option(s): colour"),
    ],
)
def test_bad_options_name_the_option(app: duly.App, options: dict[str, object], fragment: str) -> None:
    with pytest.raises(duly.InvalidOption) as info:
        app.enqueue("t", **options)
    assert fragment in str(info.value)
    assert app.jobs() == []


def test_names_with_quotes_sql_and_html_are_stored_verbatim(app: duly.App) -> None:
    name = "q'; DROP TABLE jobs; --<script>"
    job = app.enqueue(name, queue=name, args=[name], key=name)
    again = app.get_job(job.id)
    assert (again.task, again.queue, again.args, again.key) == (name, name, [name], name)


def test_key_mode_new_twice_is_an_error_seed_000_2(app: duly.App) -> None:
    first = app.enqueue("h", args=[1], key="j", run_in="1h")
    with pytest.raises(duly.DuplicateKey) as info:
        app.enqueue("h", args=[2], key="j")
    assert info.value.job_id == first.id and "'j'" in str(info.value)
    assert app.get_job(first.id) == first
    assert len(app.jobs()) == 1


def test_key_mode_ignore_returns_existing_untouched_seed_000_3(app: duly.App, clock: duly.VirtualClock) -> None:
    first = app.enqueue("h", args=["old"], key="j", max_attempts=5)
    for _ in range(2):
        fail(app, claim_one(app), retry_in=0)
    before = app.get_job(first.id)
    assert before.errors == 2
    res = app.enqueue_result("h", args=["new"], key="j", mode="ignore", max_attempts=9, run_in="5h")
    assert res.created is False
    assert res.job.id == first.id
    after = app.get_job(first.id)
    assert (after.errors, after.max_attempts, after.args, after.run_at) == (2, 5, ["old"], before.run_at)


def test_key_mode_replace_resets_spec_seed_000_4(app: duly.App) -> None:
    first = app.enqueue("h", args=["old"], key="j", expires_in="1d")
    for _ in range(2):
        fail(app, claim_one(app), retry_in=0)
    t1 = T0 + timedelta(hours=3)
    res = app.enqueue_result("h2", args=["new"], key="j", mode="replace", run_at=t1, max_attempts=3)
    assert res.created is True and res.job.id == first.id
    job = app.get_job(first.id)
    assert (job.task, job.args, job.run_at, job.errors, job.max_attempts, job.expires_at) == (
        "h2", ["new"], t1, 0, 3, None,
    )


def test_key_replace_of_a_running_job_is_refused(app: duly.App) -> None:
    app.enqueue("h", key="j")
    claim_one(app)
    with pytest.raises(duly.InvalidTransition, match="running"):
        app.enqueue("h", key="j", mode="replace")


def test_key_is_free_again_once_the_job_finished(app: duly.App) -> None:
    from tests.helpers import succeed

    first = app.enqueue("h", key="j")
    succeed(app, claim_one(app))
    second = app.enqueue("h", key="j")
    assert second.id != first.id


def test_bulk_enqueue_100k_in_one_call(app: duly.App) -> None:
    ids = app.enqueue_many(duly.Enqueue("bulk.t", args=[i]) for i in range(100_000))
    assert len(ids) == 100_000 and len(set(ids)) == 100_000
    stats = {s.queue: s for s in app.stats()}
    assert stats["default"][JobState.QUEUED] == 100_000
    sample = app.get_job(ids[12345])
    assert sample.args == [12345]


def test_bulk_enqueue_ids_match_their_own_rows_across_statement_chunks(app: duly.App) -> None:
    # SQLite inserts keyless jobs with multi-row statements of up to 500 rows; PostgreSQL by
    # COPY: every returned id must name the row of its own item, options included, in order.
    n = 1_234
    items = [
        duly.Enqueue(
            "bulk.t", args=[i], kwargs={"k": i} if i % 3 else {}, queue=f"q{i % 4}",
            priority=i % 7, run_in=None if i % 5 else 60, expires_in=3600 if i % 11 == 0 else None,
        )
        for i in range(n)
    ]  # fmt: skip
    ids = app.enqueue_many(items)
    assert len(ids) == n and ids == sorted(ids)
    for i, job_id in enumerate(ids):
        job = app.get_job(job_id)
        assert (job.args, job.kwargs, job.queue, job.priority) == ([i], {"k": i} if i % 3 else {}, f"q{i % 4}", i % 7)
        assert (job.run_at > job.created_at) == (i % 5 == 0), i
        assert (job.expires_at is not None) == (i % 11 == 0), i


def test_bulk_enqueue_keeps_values_shared_by_one_statements_rows_but_not_the_next(app: duly.App) -> None:
    # SQLite binds a value once for a statement's 500 rows when all of them share it: runs of
    # items alike (every option shared, then only the args differing, then only the priority),
    # each run straddling a statement's edge, must each keep their own values.
    runs = [
        (700, lambda i: duly.Enqueue("bulk.same", queue="qa", priority=2)),
        (450, lambda i: duly.Enqueue("bulk.args", args=[i], queue="qb")),
        (350, lambda i: duly.Enqueue("bulk.prio", queue="qa", priority=i % 3 - 1, run_in=60, max_attempts=2)),
        (1, lambda i: duly.Enqueue("bulk.one", kwargs={"x": "y"}, expires_in=600)),
    ]
    items = [make(i) for n, make in runs for i in range(n)]
    ids = app.enqueue_many(items)
    assert len(ids) == len(items) and ids == sorted(ids)
    expected = [(it.task, list(it.args), dict(it.kwargs), it.queue or "default", it.priority or 0,
                 it.max_attempts or 5, it.run_in is not None, it.expires_in is not None) for it in items]  # fmt: skip
    stored = []
    for job_id in ids:
        job = app.get_job(job_id)
        stored.append((job.task, job.args, job.kwargs, job.queue, job.priority, job.max_attempts,
                       job.run_at > job.created_at, job.expires_at is not None))  # fmt: skip
    assert stored == expected


def test_bulk_enqueue_validates_everything_before_writing(app: duly.App) -> None:
    items = [duly.Enqueue("t", args=[i]) for i in range(100)] + [duly.Enqueue("t", args=[{1}])]
    with pytest.raises(duly.InvalidArguments, match="argument 0 is a set"):
        app.enqueue_many(items)
    assert app.jobs() == []


def test_bulk_enqueue_with_keys(app: duly.App) -> None:
    app.enqueue("t", key="k1")
    ids = app.enqueue_many(
        [duly.Enqueue("t", key="k1", mode="ignore"), duly.Enqueue("t", key="k2"), duly.Enqueue("t")]
    )
    assert len(set(ids)) == 3 and len(app.jobs()) == 3
    with pytest.raises(duly.DuplicateKey):
        app.enqueue_many([duly.Enqueue("t", key="k3"), duly.Enqueue("t", key="k1")])
    assert len(app.jobs()) == 3  # all or none


def test_enqueue_items_are_frozen_values_whose_constructor_takes_every_field() -> None:
    # Enqueue writes its fields itself (faster than a frozen dataclass's own __init__): each
    # field must be a parameter of that name and default, and the item must stay immutable.
    import dataclasses
    import inspect

    params = inspect.signature(duly.Enqueue).parameters
    fields = dataclasses.fields(duly.Enqueue)
    assert list(params) == [f.name for f in fields]
    for f in fields:
        if f.name == "kwargs":
            assert params[f.name].default is None and duly.Enqueue("t").kwargs == {}
        elif f.default is dataclasses.MISSING:
            assert params[f.name].default is inspect.Parameter.empty
        else:
            assert params[f.name].default == f.default, f.name
    values = dict(task="t", args=(1,), kwargs={"a": 2}, queue="q", priority=3, run_at="2030-01-01T00:00:00Z",
                  run_in=None, expires_at=None, expires_in=60, max_attempts=4, key="k", mode="ignore")  # fmt: skip
    item = duly.Enqueue(**values)
    assert {f.name: getattr(item, f.name) for f in fields} == values
    assert item == duly.Enqueue(*values.values()) and item != duly.Enqueue("t")
    assert duly.Enqueue("t").kwargs is not duly.Enqueue("t").kwargs  # never one shared dict
    with pytest.raises(dataclasses.FrozenInstanceError):
        item.queue = "other"  # type: ignore[misc]
    assert dataclasses.replace(item, queue="r").queue == "r" and item.queue == "q"
    assert "queue='q'" in repr(item)


def test_task_enqueue_many(app: duly.App) -> None:
    @app.task(queue="bulkq")
    def add(a: int, b: int) -> int:
        return a + b

    ids = add.enqueue_many([(1, 2), (3, 4), add.options(priority=5).spec(5, 6)])
    jobs = {j.id: j for j in app.jobs()}
    assert [jobs[i].args for i in ids] == [[1, 2], [3, 4], [5, 6]]
    assert jobs[ids[2]].priority == 5 and jobs[ids[0]].queue == "bulkq"


def test_result_and_args_round_trip_as_json(app: duly.App) -> None:
    payload = {"nested": {"list": [1, 2.5, None, True, "é"]}}
    job = app.enqueue("t", kwargs=payload)
    assert app.get_job(job.id).kwargs == json.loads(json.dumps(payload))
