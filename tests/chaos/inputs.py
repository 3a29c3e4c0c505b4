"""Check 9: bad input is refused with a clear error and nothing is written or lost."""

from __future__ import annotations

import asyncio
import json
import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import duly
from duly.core.errors import DulyError


def _count(app: duly.App) -> int:
    return sum(sum(s.counts.values()) for s in app.stats(exact=True))


def _refused(app: duly.App, fn: Any, *words: str) -> str:
    before = _count(app)
    try:
        fn()
    except DulyError as exc:
        message = str(exc)
        assert all(w.lower() in message.lower() for w in words), (message, words)
        assert _count(app) == before, f"a refused call wrote something: {message}"
        return type(exc).__name__
    raise AssertionError(f"accepted: {fn}")


def bad_input(app: duly.App) -> dict[str, Any]:
    """Every case of check 9; returns case -> the error (or outcome) it got."""
    e = app.enqueue
    out: dict[str, Any] = {}
    big = "x" * (10 * 1024 * 1024)
    cases: list[tuple[str, Any, tuple[str, ...]]] = [
        ("object argument", lambda: e("work", [object()]), ("argument 0", "not JSON")),
        ("set argument", lambda: e("work", [{1, 2}]), ("set",)),
        ("bytes argument", lambda: e("work", [b"\xff"]), ("bytes",)),
        ("datetime kwarg", lambda: e("work", [], {"when": datetime.now(UTC)}), ("when",)),
        ("non-string dict key", lambda: e("work", [{1: "a"}]), ("key",)),
        ("10 MB payload", lambda: e("work", [big]), ("bytes", "limit")),
        ("lone surrogate in argument", lambda: e("work", ["\udcff"]), ("UTF-8",)),
        ("lone surrogate in task name", lambda: e("w\udcffork", []), ("task name",)),
        ("lone surrogate in queue", lambda: e("work", [], queue="q\ud800"), ("queue",)),
        ("lone surrogate in key", lambda: e("work", [], key="k\udfff"), ("key",)),
        ("NUL in argument", lambda: e("work", ["a\x00b"]), ("NUL",)),
        ("NUL in a keyword name", lambda: e("work", [], {"a\x00": 1}), ("keyword", "NUL")),
        ("lone surrogate in a keyword name", lambda: e("work", [], {"k\udcff": 1}), ("keyword", "UTF-8")),
        ("NaN argument", lambda: e("work", [math.nan]), ("nan",)),
        ("infinity argument", lambda: e("work", [{"x": [math.inf]}]), ("inf",)),
        ("-infinity kwarg", lambda: e("work", [], {"v": -math.inf}), ("inf",)),
        ("NaN priority", lambda: e("work", [], priority=math.nan), ("priority",)),
        ("float priority", lambda: e("work", [], priority=1.5), ("priority",)),
        ("huge priority", lambda: e("work", [], priority=10**18), ("priority",)),
        ("too negative priority", lambda: e("work", [], priority=-(10**7)), ("priority",)),
        ("negative delay", lambda: e("work", [], run_in=-5), ("run_in",)),
        ("infinite delay", lambda: e("work", [], run_in=math.inf), ("run_in",)),
        ("NaN delay", lambda: e("work", [], run_in=math.nan), ("run_in",)),
        ("huge delay", lambda: e("work", [], run_in=10**12), ("run_in",)),
        ("unparseable delay", lambda: e("work", [], run_in="soon"), ("run_in",)),
        ("naive run_at", lambda: e("work", [], run_at=datetime(2030, 1, 1)), ("time zone",)),
        ("garbage run_at", lambda: e("work", [], run_at="yesterday-ish"), ("run_at",)),
        ("expiry before run time", lambda: e("work", [], run_in=60, expires_in=30), ("expires", "run time")),
        ("expiry in the past", lambda: e("work", [], expires_at=datetime.now(UTC) - timedelta(hours=1)), ("expires_at",)),
        ("zero max_attempts", lambda: e("work", [], max_attempts=0), ("max_attempts",)),
        ("empty task name", lambda: e("", []), ("task name",)),
        ("control chars in queue", lambda: e("work", [], queue="a\nb"), ("control",)),
        ("overlong queue", lambda: e("work", [], queue="q" * 500), ("queue",)),
        ("unknown key mode", lambda: e("work", [], key="k", mode="upsert"), ("mode",)),
        ("unknown option", lambda: e("work", [], priorty=3), ("priorty",)),
        ("malformed cron", lambda: app.schedule("work", name="bad-cron", cron="61 * * * *"), ("cron",)),
        ("cron with 3 fields", lambda: app.schedule("work", name="bad-cron2", cron="* * *"), ("cron",)),
        ("cron as text", lambda: app.schedule("work", name="bad-cron3", cron="every day"), ("cron",)),
        ("nonexistent time zone", lambda: app.schedule("work", name="bad-tz", cron="0 * * * *", tz="Mars/Olympus_Mons"),
         ("Mars/Olympus_Mons",)),
        ("negative every", lambda: app.schedule("work", name="bad-every", every=-1), ("every",)),
    ]  # fmt: skip
    triggers_before = len(app.store.list_triggers())
    for name, fn, words in cases:
        out[name] = _refused(app, fn, *words)
    assert len(app.store.list_triggers()) == triggers_before, "a refused trigger was stored"

    # names with quotes, SQL and HTML are data: stored verbatim, and the tables are intact
    for name in (
        'it\'s "quoted"',
        "'; DROP TABLE duly_jobs; --",
        "<script>alert(1)</script>",
        "queue; SELECT 1",
    ):
        job = app.enqueue(name, [name], queue=name, key=name)
        got = app.get_job(job.id)
        assert (got.task, got.queue, got.key, got.args) == (name, name, name, [name])
        assert [j.id for j in app.jobs(queue=name)] == [job.id]
    out["names with quotes, SQL, HTML"] = "stored verbatim"

    # an unknown task name is accepted (the worker may be deployed later); running it fails
    # the attempt with a clear UnknownTask error, and the worker carries on
    job = app.enqueue("no.such.task", [1], max_attempts=1, queue="unknown-q")
    ok = app.enqueue("tick", [], queue="unknown-q")
    worker = app.worker(queues=["unknown-q"], concurrency=2, scheduler=False)
    asyncio.run(worker.run_once())
    worker.close()
    failed = app.get_job(job.id)
    assert failed.state is duly.JobState.FAILED and "no task named 'no.such.task'" in (
        failed.last_error or ""
    ), failed
    assert app.get_job(ok.id).state is duly.JobState.SUCCEEDED
    out["unknown task name"] = "accepted; its attempt fails with UnknownTask"

    # extremes that are valid are stored and read back as sent
    lo = app.enqueue("work", [], priority=-1_000_000, run_in=0)
    hi = app.enqueue("work", [], priority=1_000_000, run_at=datetime(9999, 12, 31, tzinfo=UTC))
    assert (app.get_job(lo.id).priority, app.get_job(hi.id).priority) == (-1_000_000, 1_000_000)
    assert app.get_job(hi.id).run_at == datetime(9999, 12, 31, tzinfo=UTC)
    out["extreme priorities and run_at 9999-12-31"] = "stored and read back"
    return out


# ---- the JSON API under random input (POST /api/jobs) -------------------------------------

API_TOKEN = "chaos-api-token"
#: Every answer POST /api/jobs may give to a request that is authenticated: created,
#: the live holder of a key (mode ignore), malformed body, duplicate key, body too large,
#: invalid field. Never 500.
API_STATUSES = {200, 201, 400, 409, 413, 422}


def _api_bodies() -> Any:
    """Request bodies: JSON objects with fields of every type, then mangled."""
    from hypothesis import strategies as st

    leaf = st.one_of(
        st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    )  # fmt: skip
    value = st.recursive(leaf, lambda k: st.lists(k, max_size=3) | st.dictionaries(st.text(max_size=5), k, max_size=3),
                         max_leaves=8)  # fmt: skip
    name = st.text(max_size=24) | st.sampled_from(
        ["work", "tick", "'; DROP TABLE duly_jobs; --", "<script>alert(1)</script>", 'q"uo\'te',
         "x\u0000y", "\udcff", "é" * 300]
    )  # fmt: skip
    number = (
        st.integers(min_value=-(10**13), max_value=10**13)
        | st.floats(allow_nan=True)
        | st.text(max_size=6)
    )
    when = st.sampled_from(["2030-01-01T00:00:00Z", "2030-01-01T00:00:00", "9999-12-31T23:59:59+00:00",
                            "1970-01-01T00:00:00Z", "yesterday", "", "2030-02-30T00:00:00Z"]) | value  # fmt: skip
    fields = st.fixed_dictionaries(
        {},
        optional={
            "task": name | value, "args": st.lists(value, max_size=3) | value,
            "kwargs": st.dictionaries(st.text(max_size=6), value, max_size=3) | value,
            "queue": name | value, "priority": number | value, "run_in": number, "run_at": when,
            "expires_in": number, "expires_at": when, "max_attempts": number | value,
            "key": name | value, "mode": st.sampled_from(["new", "ignore", "replace", "bogus"]) | value,
            "bogus_field": value,
        },
    )  # fmt: skip
    as_json = fields.map(lambda d: json.dumps(d, allow_nan=True).encode())
    # bodies that are mostly right, so that many are accepted and the refusals are subtle
    finite = st.recursive(
        st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=10),
        lambda k: st.lists(k, max_size=3) | st.dictionaries(st.text(max_size=5), k, max_size=3), max_leaves=6,
    )  # fmt: skip
    plausible = st.fixed_dictionaries(
        {"task": st.sampled_from(["work", "tick", "'; DROP TABLE duly_jobs; --", "<b>x</b>", 'q"uo\'te'])},
        optional={
            "args": st.lists(finite, max_size=3), "kwargs": st.dictionaries(st.text(max_size=6), finite, max_size=2),
            "queue": st.sampled_from(["default", "mail", "<i>q</i>", "q'; --"]) | st.text(max_size=8),
            "priority": st.integers(-(10**6) - 5, 10**6 + 5), "run_in": st.integers(-2, 10**6) | st.floats(-1, 1e6),
            "expires_in": st.integers(-5, 10**6), "max_attempts": st.integers(-1, 50),
            "key": st.sampled_from(["k1", "k2", "k3"]) | st.text(max_size=5),
            "mode": st.sampled_from(["new", "ignore", "new", "ignore", "replace"]),
        },
    ).map(lambda d: json.dumps(d).encode())  # fmt: skip
    # expiry before the run time, with the fields that make it so
    expiry = st.tuples(st.integers(1, 10**6), st.integers(-10, 10**6)).map(
        lambda t: json.dumps(
            {"task": "work", "run_in": t[0], "expires_in": min(t[1], t[0] - 1)}
        ).encode()
    )
    # a field given twice (at the top, or inside kwargs): refused, whatever the values
    dup = st.tuples(st.sampled_from(["task", "priority", "queue", "kwargs"]), value, value).map(
        lambda t: f'{{"task": "work", "{t[0]}": {json.dumps(t[1])}, "{t[0]}": {json.dumps(t[2])}}}'.encode()
    ) | st.tuples(st.text(min_size=1, max_size=5), value).map(
        lambda t: ('{"task": "work", "kwargs": {%s: 1, %s: %s}}' % (json.dumps(t[0]), json.dumps(t[0]),
                                                                    json.dumps(t[1]))).encode()
    )  # fmt: skip
    # invalid UTF-8 spliced into an otherwise valid body
    bad_utf8 = st.tuples(as_json, st.integers(0, 200), st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80"])).map(
        lambda t: t[0][: t[1]] + t[2] + t[0][t[1]:]
    )  # fmt: skip
    raw = st.binary(max_size=80)
    big = st.sampled_from(_BIG_BODIES)
    return st.one_of(
        plausible, plausible, plausible, as_json, as_json, expiry, dup, bad_utf8, raw, big
    )


_BIG_BODIES = [
    b'{"task": "work", "args": ["' + b"x" * 1_100_000 + b'"]}',  # over the 1 MiB body limit
    b'{"task": "work", "args": ["' + b"x" * 1_000_000 + b'"]}',  # just under it: accepted
    b"[" * 200_000 + b"]" * 200_000,  # nested too deeply for a parser
    b'{"task": "work", "args": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
    b'{"task": "work", "args": [' + b"9" * 5_000 + b"]}",  # an integer of 5,000 digits
    b'{"task": "work", "args": [1e999]}',  # a float that overflows to infinity
    '{"task": "work"}'.encode("utf-16"),
    b"\xef\xbb\xbf" + b'{"task": "work"}',  # UTF-8 with a byte-order mark
    b'{"task": "work", "args": [NaN]}',
    b'{"task": "work", "kwargs": {"x": -Infinity}}',
    b'{"task": "work", "priority": Infinity}',
]


def api_consistency(app: duly.App, max_examples: int) -> dict[str, Any]:
    """Drive POST /api/jobs (the dashboard's app over real HTTP, authenticated) with random
    bodies: every answer is one of API_STATUSES with a JSON error naming the problem; a refused
    body changes nothing; an accepted one is one job more, readable, as sent."""
    import httpx
    from hypothesis import HealthCheck, given, settings

    from duly.web.server import serve_in_thread

    server = serve_in_thread(app, port=0, token=API_TOKEN)
    http = httpx.Client(base_url=server.url, timeout=60,
                        headers={"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"})  # fmt: skip
    seen: Counter[int] = Counter()

    @settings(max_examples=max_examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(body=_api_bodies())
    def run(body: bytes) -> None:
        before = _count(app)
        r = http.post("/api/jobs", content=body)
        seen[r.status_code] += 1
        assert r.status_code in API_STATUSES, (r.status_code, r.text[:500], body[:300])
        answer = r.json()
        after = _count(app)
        try:
            sent: Any = json.loads(body, object_pairs_hook=_pairs, parse_constant=_constant)
        except (ValueError, RecursionError):  # malformed: any 400 (or 413) will do
            sent = None
        if isinstance(sent, _Dup):
            assert r.status_code == 400 and repr(sent.key) in answer["error"], (answer, body[:200])
        if len(body) > 1_048_576:
            assert r.status_code == 413
        if r.status_code >= 300:
            assert isinstance(answer.get("error"), str) and answer["error"], answer
            assert after == before, (
                f"a refused body ({r.status_code}) changed the store: {body[:200]!r}"
            )
            return
        job = app.get_job(answer["job"]["id"])
        assert isinstance(sent, dict) and answer["job"]["id"] == job.id, (answer, body[:200])
        if r.status_code == 201:
            assert job.task == sent["task"], (job.task, body[:200])
            # one job more; mode replace may instead rewrite the key's holder in place
            grew = after - before
            replaced = sent.get("mode") == "replace" and sent.get("key") is not None
            assert answer["created"] is True and (grew == 1 or replaced and grew == 0), (
                after,
                before,
            )
            assert job.args == sent.get("args", []) and job.kwargs == sent.get("kwargs", {})
        else:  # 200: the live holder of the key (any task), mode ignore, untouched
            assert answer["created"] is False and after == before and job.key == sent.get("key")

    try:
        run()
    finally:
        http.close()
        server.stop()
    return {str(k): v for k, v in sorted(seen.items())}


def _constant(name: str) -> Any:
    raise ValueError(name)


class _Dup:
    def __init__(self, key: str) -> None:
        self.key = key


def _pairs(pairs: list[tuple[str, Any]]) -> Any:
    """The test's own reading of a body: a duplicate key anywhere makes the whole body a _Dup."""
    keys = [k for k, _v in pairs]
    for k, v in pairs:
        if isinstance(v, _Dup):
            return v
    dup = next((k for k in keys if keys.count(k) > 1), None)
    return _Dup(dup) if dup is not None else dict(pairs)
