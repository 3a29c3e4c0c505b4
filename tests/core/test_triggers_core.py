"""The pure trigger rules of ``duly.core.triggers``: cron parsing (aliases, six fields with
seconds first, malformed expressions, zones), fire times across both daylight-saving
transitions, catch-up plans, event matching; and property tests against croniter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from duly.core.errors import InvalidOption
from duly.core.triggers import (
    ALIASES,
    MISFIRE_GRACE_SECONDS,
    CatchUp,
    TriggerKind,
    TriggerSpec,
    cron_next,
    event_matches,
    first_fire,
    next_after,
    normalise_cron,
    plan,
    upcoming,
    validate,
    zone,
)

NOW = datetime(2026, 1, 7, 9, 0, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def local(dt: datetime, tz: str) -> str:
    """``dt`` on the zone's wall clock, with its offset: '2026-03-08 03:30 -04:00'."""
    return dt.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %z")


def cron(expr: str, tz: str | None = None, **kw: Any) -> TriggerSpec:
    return validate(TriggerSpec(name="t", kind=TriggerKind.CRON, task="t", spec=expr, timezone=tz, **kw), NOW)


def every(seconds: float, **kw: Any) -> TriggerSpec:
    return validate(TriggerSpec(name="t", kind=TriggerKind.EVERY, task="t", spec=str(seconds), **kw), NOW)


def chain(expr: str, tz: str | None, after: datetime, n: int) -> list[datetime]:
    """``n`` successive fire times after ``after``, each from the previous one."""
    out = []
    for _ in range(n):
        after = cron_next(expr, tz, after)
        out.append(after)
    return out


@cache
def transitions(tz_name: str, year: int) -> list[datetime]:
    """The instants (UTC) the zone's offset changes in ``year``, to the minute."""
    tz = ZoneInfo(tz_name)
    found = []
    t = datetime(year, 1, 1, tzinfo=UTC)
    off = t.astimezone(tz).utcoffset()
    step = timedelta(hours=6)  # no zone changes its offset twice within 6 hours
    while t.year == year:
        nxt = t + step
        if nxt.astimezone(tz).utcoffset() != off:
            lo, hi = t, nxt  # the change is in (lo, hi]: bisect it to the minute
            while hi - lo > timedelta(minutes=1):
                mid = lo + (hi - lo) / 2
                mid = mid.replace(second=0, microsecond=0)
                if mid.astimezone(tz).utcoffset() == off:
                    lo = mid
                else:
                    hi = mid
            off = nxt.astimezone(tz).utcoffset()
            if hi.year == year:
                found.append(hi)
        t = nxt
    return found


# ---- parsing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "after", "expected"),
    [
        ("@hourly", utc(2026, 1, 7, 9, 10), utc(2026, 1, 7, 10)),
        ("@daily", utc(2026, 1, 7, 9, 10), utc(2026, 1, 8)),
        ("@midnight", utc(2026, 1, 7, 9, 10), utc(2026, 1, 8)),
        ("@weekly", utc(2026, 1, 7, 9, 10), utc(2026, 1, 11)),  # the next Sunday
        ("@monthly", utc(2026, 1, 7, 9, 10), utc(2026, 2, 1)),
        ("@yearly", utc(2026, 1, 7, 9, 10), utc(2027, 1, 1)),
        ("@annually", utc(2026, 1, 7, 9, 10), utc(2027, 1, 1)),
        ("@minutely", utc(2026, 1, 7, 9, 10, 30), utc(2026, 1, 7, 9, 11)),
    ],
)
def test_aliases(alias: str, after: datetime, expected: datetime) -> None:
    assert normalise_cron(alias) == ALIASES[alias]
    assert normalise_cron(f"  {alias.upper()} ") == ALIASES[alias]
    assert cron_next(normalise_cron(alias), None, after) == expected


def test_six_fields_put_seconds_first() -> None:
    assert chain("*/10 * * * * *", None, utc(2026, 1, 7, 9, 0, 5), 3) == [
        utc(2026, 1, 7, 9, 0, 10), utc(2026, 1, 7, 9, 0, 20), utc(2026, 1, 7, 9, 0, 30)
    ]  # fmt: skip
    # "30 0 * * * *" is second 30 of minute 0 of every hour, not minute 30 of hour 0
    assert chain("30 0 * * * *", None, utc(2026, 1, 7, 9, 10), 2) == [
        utc(2026, 1, 7, 10, 0, 30), utc(2026, 1, 7, 11, 0, 30)
    ]  # fmt: skip
    assert chain("0 12 * * *", None, utc(2026, 1, 7, 9), 2) == [utc(2026, 1, 7, 12), utc(2026, 1, 8, 12)]
    assert normalise_cron("  */5   * * *  * ") == "*/5 * * * *"


def test_after_is_exclusive_and_microseconds_count() -> None:
    assert cron_next("0 * * * *", None, utc(2026, 1, 7, 10)) == utc(2026, 1, 7, 11)
    assert cron_next("0 * * * *", None, utc(2026, 1, 7, 10) - timedelta(microseconds=1)) == utc(2026, 1, 7, 10)
    assert cron_next("* * * * * *", None, utc(2026, 1, 7, 10) + timedelta(microseconds=1)) == utc(2026, 1, 7, 10, 0, 1)


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("61 * * * *", "invalid cron expression '61 \\* \\* \\* \\*'"),
        ("* 24 * * *", "invalid cron expression"),
        ("* * * 13 *", "invalid cron expression"),
        ("*/0 * * * *", "step '0'"),
        ("a b c d e", "invalid cron expression 'a b c d e'"),
        ("* * * *", "expected 5 fields"),
        ("* * * * * * *", "expected 5 fields"),
        ("", "expected 5 fields"),
        ("@reboot", "expected 5 fields .*@hourly"),
        ("@every 5m", "expected 5 fields"),
        ("0 0 31 2 *", "never fires"),
        ("0 0 30 2 *", "never fires"),
    ],
)
def test_malformed_cron_expressions_name_the_problem(expr: str, message: str) -> None:
    with pytest.raises(InvalidOption, match=message):
        normalise_cron(expr)
    with pytest.raises(InvalidOption, match="invalid cron expression"):
        cron(expr)


def test_leap_day_is_valid_and_fires_in_leap_years() -> None:
    assert cron_next(normalise_cron("0 0 29 2 *"), None, NOW) == utc(2028, 2, 29)


@pytest.mark.parametrize("name", ["Mars/Olympus", "Europe/Pariss", "../etc/passwd", "", 5])
def test_unknown_zones_are_refused_naming_the_zone(name: Any) -> None:
    if name == "":
        assert zone(name) == ZoneInfo("UTC")  # empty means UTC, like None
        return
    with pytest.raises(InvalidOption, match=f"unknown time zone {name!r}"):
        zone(name)
    with pytest.raises(InvalidOption, match="unknown time zone"):
        cron("0 * * * *", tz=name)


def test_validate_names_what_is_wrong() -> None:
    def spec(kind: str, text: Any, **kw: Any) -> TriggerSpec:
        return TriggerSpec(name="x", kind=TriggerKind(kind), task="t", spec=text, **kw)

    cases: list[tuple[TriggerSpec, str]] = [
        (spec("at", "tomorrow"), "not an ISO 8601 time"),
        (spec("at", "2030-01-07T09:00:00"), "has no UTC offset"),
        (spec("in", "soon"), "invalid duration"),
        (spec("every", "0.5s"), "at least 1 s"),
        (spec("every", "1h", start_at=NOW, end_at=NOW), "end is not after start"),
        (spec("event", ""), "needs an event name"),
        (spec("event", "x", filter=["a"]), "filter must be a dict"),
        (spec("event", "x", debounce=0), "debounce must be a positive"),
        (spec("cron", "@hourly", catch_up_limit=0), "catch_up_limit must be an integer >= 1, got 0"),
        (TriggerSpec(name="", kind=TriggerKind.CRON, task="t", spec="@hourly"), "non-empty name"),
        (spec("cron", "@hourly", catch_up="bogus"), "catch_up must be one of 'skip', 'latest', 'all'"),
        (spec("cron", "@hourly", catch_up_limit="5"), "catch_up_limit must be an integer >= 1, got '5'"),
        (spec("cron", "@hourly", start_at="2030-01-07"), "start '2030-01-07' has no UTC offset"),
        (spec("cron", "@hourly", end_at="soon"), "end 'soon' is not an ISO 8601 time"),
        (TriggerSpec(name="x", kind="yearly", task="t", spec="1"), "kind must be one of 'at', 'in'"),  # type: ignore[arg-type]
    ]
    for t, message in cases:
        with pytest.raises(InvalidOption, match=message):
            validate(t, NOW)


def test_start_and_end_may_be_iso_text() -> None:
    t = cron("@hourly", start_at="2026-01-07T12:00:00+01:00", end_at="2026-01-07T14:30:00+01:00")
    assert (t.start_at, t.end_at) == (utc(2026, 1, 7, 11), utc(2026, 1, 7, 13, 30))
    assert upcoming(t, NOW) == [utc(2026, 1, 7, h) for h in (11, 12, 13)]


def test_in_becomes_at_and_every_is_stored_in_seconds() -> None:
    t = validate(TriggerSpec(name="x", kind=TriggerKind.IN, task="t", spec="1h30m"), NOW)
    assert t.kind is TriggerKind.AT and first_fire(t, NOW) == NOW + timedelta(minutes=90)
    t = validate(TriggerSpec(name="x", kind=TriggerKind.AT, task="t", spec="2026-01-07T10:00:00+01:00"), NOW)
    assert first_fire(t, NOW) == utc(2026, 1, 7, 9)
    assert every(90).spec == "90.0" and first_fire(every(90), NOW) == NOW + timedelta(seconds=90)


# ---- time zones and daylight saving time -----------------------------------------------

SPRING = {"Europe/Paris": utc(2026, 3, 29, 1), "America/New_York": utc(2026, 3, 8, 7)}
AUTUMN = {"Europe/Paris": utc(2026, 10, 25, 1), "America/New_York": utc(2026, 11, 1, 6)}
#: A wall time each zone skips in spring and repeats in autumn.
SKIPPED = {"Europe/Paris": "02:30", "America/New_York": "02:30"}
REPEATED = {"Europe/Paris": "02:30", "America/New_York": "01:30"}


def test_the_transitions_are_where_the_tests_think() -> None:
    for tz, spring in SPRING.items():
        assert transitions(tz, 2026) == [spring, AUTUMN[tz]]


def daily(wall: str) -> str:
    hour, minute = wall.split(":")
    return f"{int(minute)} {int(hour)} * * *"


@pytest.mark.parametrize("tz", sorted(SPRING))
def test_spring_forward_a_skipped_daily_time_fires_one_gap_later_that_day(tz: str) -> None:
    day_before = SPRING[tz] - timedelta(days=1, hours=6)
    fires = chain(daily(SKIPPED[tz]), tz, day_before, 3)
    offset_before, offset_after = (local(SPRING[tz] + timedelta(hours=h), tz)[-5:] for h in (-1, 1))
    assert [local(f, tz) for f in fires] == [
        f"{(SPRING[tz] - timedelta(days=1)).date()} 02:30 {offset_before}",
        f"{SPRING[tz].date()} 03:30 {offset_after}",  # no slot lost
        f"{(SPRING[tz] + timedelta(days=1)).date()} 02:30 {offset_after}",
    ]
    # the same slots through the scheduler's rules: first_fire, then next_after / plan
    t = cron(daily(SKIPPED[tz]), tz)
    first = first_fire(t, day_before)
    assert first == fires[0] and next_after(t, fires[0]) == fires[1]
    assert plan(validate_all(t), fires[0], fires[2]).slots == fires


def validate_all(t: TriggerSpec) -> TriggerSpec:
    t.catch_up = CatchUp.ALL
    return t


@pytest.mark.parametrize("tz", sorted(SPRING))
@pytest.mark.parametrize("minutes_after_jump", [0, 10, 29, 30, 59])
def test_spring_forward_a_trigger_created_just_after_the_jump_keeps_that_days_slot(
    tz: str, minutes_after_jump: int
) -> None:
    now = SPRING[tz] + timedelta(minutes=minutes_after_jump)
    expected = SPRING[tz] + timedelta(minutes=30)  # 02:30 skipped -> 03:30 local
    nxt = first_fire(cron(daily(SKIPPED[tz]), tz), now)
    assert nxt == (expected if now < expected else expected + timedelta(days=1) - timedelta(hours=1))


@pytest.mark.parametrize("tz", sorted(AUTUMN))
def test_fall_back_a_repeated_daily_time_fires_once(tz: str) -> None:
    start = AUTUMN[tz] - timedelta(days=1, hours=6)
    fires = chain(daily(REPEATED[tz]), tz, start, 3)
    assert [f.astimezone(ZoneInfo(tz)).strftime("%H:%M") for f in fires] == [REPEATED[tz]] * 3
    assert [f.date() for f in fires] == sorted({f.date() for f in fires})  # one a day
    # on the day itself it fires at the first occurrence (summer time), never at the second
    assert fires[1] < AUTUMN[tz] <= fires[1] + timedelta(hours=1)
    second = fires[1] + timedelta(hours=1)  # the same wall time again, in winter time
    assert second not in fires and cron_next(daily(REPEATED[tz]), tz, fires[1]) == fires[2]
    # asked from inside the repeated hour, the next fire is the next day's
    assert cron_next(daily(REPEATED[tz]), tz, second - timedelta(minutes=1)) == fires[2]


@pytest.mark.parametrize("tz", sorted(SPRING))
@pytest.mark.parametrize("season", ["spring", "autumn"])
def test_every_15_minutes_never_fires_an_instant_twice(tz: str, season: str) -> None:
    jump = (SPRING if season == "spring" else AUTUMN)[tz]
    fires = chain("*/15 * * * *", tz, jump - timedelta(hours=3), 30)
    assert len(set(fires)) == len(fires)
    assert all(b > a for a, b in pairwise(fires))
    gaps = {b - a for a, b in pairwise(fires)}
    if season == "spring":  # the skipped hour's slots land on the real ones: one instant each
        assert gaps == {timedelta(minutes=15)}
    else:  # the repeated hour pauses (its wall times fired once, in summer time)
        assert gaps == {timedelta(minutes=15), timedelta(minutes=75)}


def test_zone_offsets_are_applied() -> None:
    assert cron_next("30 2 * * *", "Europe/Paris", utc(2026, 1, 7)) == utc(2026, 1, 7, 1, 30)
    assert cron_next("0 9 * * *", "Asia/Kolkata", utc(2026, 1, 7)) == utc(2026, 1, 7, 3, 30)
    assert cron_next("0 9 * * *", None, utc(2026, 1, 7)) == utc(2026, 1, 7, 9)


# ---- catch-up plans ----------------------------------------------------------------------


def hourly(policy: str, limit: int = 100) -> TriggerSpec:
    return cron("@hourly", catch_up=CatchUp(policy), catch_up_limit=limit)


def test_plan_after_downtime_for_each_policy() -> None:
    due, now = utc(2026, 1, 7, 10), utc(2026, 1, 7, 12, 30)  # 10:00, 11:00, 12:00 missed
    missed = [utc(2026, 1, 7, h) for h in (10, 11, 12)]
    nxt = utc(2026, 1, 7, 13)
    skip = plan(hourly("skip"), due, now)
    assert (skip.slots, skip.missed, skip.next_fire_at) == ([], 3, nxt)
    latest = plan(hourly("latest"), due, now)
    assert (latest.slots, latest.missed, latest.next_fire_at) == (missed[-1:], 2, nxt)
    every_one = plan(hourly("all"), due, now)
    assert (every_one.slots, every_one.missed, every_one.next_fire_at) == (missed, 0, nxt)
    limited = plan(hourly("all", limit=2), due, now)
    assert (limited.slots, limited.missed, limited.next_fire_at) == (missed[-2:], 1, nxt)


@pytest.mark.parametrize("policy", ["skip", "latest", "all"])
def test_plan_on_time_fires_the_slot_whatever_the_policy(policy: str) -> None:
    due = utc(2026, 1, 7, 10)
    for late in (0.0, 1.0, MISFIRE_GRACE_SECONDS):
        p = plan(hourly(policy), due, due + timedelta(seconds=late))
        assert (p.slots, p.missed, p.next_fire_at) == ([due], 0, utc(2026, 1, 7, 11))
    p = plan(hourly(policy), due, due - timedelta(seconds=1))  # not yet due
    assert (p.slots, p.missed, p.next_fire_at) == ([], 0, due)


def test_plan_with_slots_both_late_and_on_time() -> None:
    # every 2 s; due at t; now = t + 9 s: t, t+2 are late (> 5 s), t+4, t+6, t+8 on time
    t = NOW
    slots = [t + timedelta(seconds=s) for s in (0, 2, 4, 6, 8)]
    now = t + timedelta(seconds=9)
    # latest: one job for the missed slots (the latest of them), and the on-time ones as usual
    for policy, fired, missed in (("skip", slots[2:], 2), ("latest", slots[1:], 1), ("all", slots, 0)):
        p = plan(every(2, catch_up=CatchUp(policy)), t, now)
        assert (p.slots, p.missed, p.next_fire_at) == (fired, missed, t + timedelta(seconds=10)), policy
    p = plan(every(2, catch_up=CatchUp.ALL, catch_up_limit=2), t, now)
    assert (p.slots, p.missed) == (slots[-2:], 3)


def test_plan_stops_at_the_end_and_at_the_scan_limit() -> None:
    t = every(600, start_at=NOW, end_at=NOW + timedelta(minutes=25), catch_up=CatchUp.ALL)
    p = plan(t, NOW, NOW + timedelta(hours=5))
    assert p.slots == [NOW + timedelta(minutes=m) for m in (0, 10, 20)] and p.next_fire_at is None
    p = plan(every(1, catch_up=CatchUp.ALL), NOW, NOW + timedelta(hours=1), scan_limit=3)
    assert p.slots == [NOW + timedelta(seconds=s) for s in (0, 1, 2)] and p.missed == 0


def test_first_fire_and_upcoming() -> None:
    t = every(600, start_at=NOW + timedelta(minutes=5), end_at=NOW + timedelta(minutes=40))
    assert upcoming(t, NOW) == [NOW + timedelta(minutes=m) for m in (5, 15, 25, 35)]
    assert first_fire(t, NOW + timedelta(minutes=6)) == NOW + timedelta(minutes=15)
    assert first_fire(t, NOW + timedelta(minutes=36)) is None  # past its end
    assert upcoming(every(3600), NOW, 2, first=NOW + timedelta(minutes=7)) == [
        NOW + timedelta(minutes=7), NOW + timedelta(minutes=67)
    ]  # fmt: skip
    assert first_fire(cron("@hourly", start_at=NOW + timedelta(hours=5)), NOW) == NOW + timedelta(hours=5)
    assert first_fire(cron("@hourly"), NOW) == NOW + timedelta(hours=1)  # strictly after now


# ---- events ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("order.created", "order.created", True),
        ("order.created", "order.created.v2", False),
        ("order.created", "Order.created", False),  # case matters
        ("order.*", "order.created", True),
        ("order.*", "order.", True),
        ("order.*", "orders.created", False),
        ("*.created", "invoice.created", True),
        ("*", "anything.at.all", True),
        ("order.?", "order.a", True),
        ("order.?", "order.ab", False),
        ("order.[cu]*", "order.updated", True),
        ("order.[!cu]*", "order.updated", False),
    ],
)
def test_event_name_globs(pattern: str, name: str, matches: bool) -> None:
    assert event_matches(pattern, None, name, {"any": "data"}) is matches


def test_event_filters() -> None:
    data = {"status": "paid", "amount": 10, "tags": ["a"]}
    assert event_matches("o.*", {"status": "paid"}, "o.x", data)
    assert event_matches("o.*", {"status": "paid", "amount": 10}, "o.x", data)
    assert not event_matches("o.*", {"status": "paid", "amount": 11}, "o.x", data)
    assert event_matches("o.*", {"status": ["new", "paid"]}, "o.x", data)  # a list: any of
    assert not event_matches("o.*", {"status": ["new", "void"]}, "o.x", data)
    assert not event_matches("o.*", {"missing": "x"}, "o.x", data)
    assert event_matches("o.*", {"missing": None}, "o.x", data)  # absent equals None
    assert not event_matches("o.*", {"status": "paid"}, "p.x", data)  # the name first
    assert not event_matches("o.*", {"status": "paid"}, "o.x", ["paid"])  # data not a dict
    assert not event_matches("o.*", {"status": "paid"}, "o.x", None)
    assert event_matches("o.*", {}, "o.x", None) and event_matches("o.*", None, "o.x", 42)


# ---- properties --------------------------------------------------------------------------


def _field(lo: int, hi: int) -> st.SearchStrategy[str]:
    value = st.integers(lo, hi)
    return st.one_of(
        st.just("*"),
        value.map(str),
        st.integers(1, max(1, (hi - lo) // 2)).map(lambda n: f"*/{n}"),
        st.tuples(value, value).map(lambda ab: f"{min(ab)}-{max(ab)}"),
        st.tuples(value, value, st.integers(1, 5)).map(lambda abn: f"{min(abn[:2])}-{max(abn[:2])}/{abn[2]}"),
        st.lists(value, min_size=2, max_size=4, unique=True).map(lambda xs: ",".join(map(str, sorted(xs)))),
    )


CRON = st.tuples(
    st.one_of(st.none(), _field(0, 59)),  # seconds (six fields) or none (five)
    _field(0, 59), _field(0, 23), _field(1, 28), _field(1, 12), _field(0, 6),
).map(lambda f: " ".join(x for x in f if x is not None))  # fmt: skip
INSTANTS = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1)).map(
    lambda d: d.replace(tzinfo=UTC)
)


@settings(max_examples=200, deadline=None)
@given(expr=CRON, after=INSTANTS)
def test_cron_next_in_utc_agrees_with_croniter(expr: str, after: datetime) -> None:
    expr = normalise_cron(expr)
    six = len(expr.split()) == 6
    naive = croniter(expr, after.replace(tzinfo=None), second_at_beginning=six)
    fires = chain(expr, "UTC", after, 5)
    assert fires == [naive.get_next(datetime).replace(tzinfo=UTC) for _ in range(5)]
    assert fires[0] > after and all(b > a for a, b in pairwise(fires))
    assert chain(expr, None, after, 5) == fires  # no zone is UTC


ZONES = ["Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Sydney", "Australia/Lord_Howe"]
RECENT = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2031, 1, 1)).map(
    lambda d: d.replace(tzinfo=UTC)
)


@settings(max_examples=200, deadline=None)
@given(expr=CRON, tz_name=st.sampled_from(ZONES), after=RECENT)
def test_cron_next_in_a_zone_agrees_with_croniter_between_offset_changes(
    expr: str, tz_name: str, after: datetime
) -> None:
    """croniter on the zone's wall clock, each wall time placed with the zone's offset, is
    what cron_next does too, except where the clocks change: a wall time the change skips
    or repeats follows duly's documented rule (tested against its definition below), and so
    do slots asked for just after a change. So the fire times are compared up to the first
    change of the zone's offset after ``after`` (all of them in a zone without DST, such as
    Asia/Kolkata), from an ``after`` at least 3 hours past the previous change."""
    expr = normalise_cron(expr)
    tz = ZoneInfo(tz_name)
    fires = chain(expr, tz_name, after, 5)
    years = range(after.year - 1, fires[-1].year + 1)
    changes = sorted(c for y in years for c in transitions(tz_name, y) if c > after - timedelta(hours=3))
    cutoff = changes[0] if changes else None
    naive = croniter(expr, after.astimezone(tz).replace(tzinfo=None), second_at_beginning=len(expr.split()) == 6)
    expected = [naive.get_next(datetime).replace(tzinfo=tz).astimezone(UTC) for _ in range(5)]
    compared = [f for f in fires if cutoff is None or (after < cutoff and f < cutoff)]
    assert compared == expected[: len(compared)]
    if tz_name == "Asia/Kolkata":  # no change at all: every fire time agrees
        assert fires == expected


DST_ZONES = ["Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Antarctica/Troll"]
MINUTES = st.lists(st.integers(0, 59), min_size=1, max_size=4, unique=True).map(sorted)
HOURS = st.lists(st.integers(0, 5), min_size=2, max_size=4, unique=True).map(sorted)  # near the jumps


def slots_by_definition(minutes: list[int], hours: list[int], tz: ZoneInfo, after: datetime) -> list[datetime]:
    """Every matching wall time of the days around ``after``, placed on the timeline (a skipped
    one forward by the jump, a repeated one at its first occurrence), sorted: the documented
    rule that cron_next must follow."""
    first_day = (after - timedelta(days=1)).astimezone(tz).date()
    walls = (
        datetime.combine(first_day + timedelta(days=d), datetime.min.time()).replace(hour=h, minute=m)
        for d in range(4) for h in hours for m in minutes
    )  # fmt: skip
    return sorted({w.replace(tzinfo=tz, fold=0).astimezone(UTC) for w in walls})


@settings(max_examples=200, deadline=None)
@given(
    tz_name=st.sampled_from(DST_ZONES),
    season=st.integers(0, 1),
    minutes=MINUTES,
    hours=HOURS,
    shift=st.integers(-4 * 3600, 4 * 3600),
)
def test_cron_next_across_dst_follows_the_documented_rule(
    tz_name: str, season: int, minutes: list[int], hours: list[int], shift: int
) -> None:
    tz = ZoneInfo(tz_name)
    after = transitions(tz_name, 2026)[season] + timedelta(seconds=shift)
    expr = f"{','.join(map(str, minutes))} {','.join(map(str, hours))} * * *"
    expected = [s for s in slots_by_definition(minutes, hours, tz, after) if s > after]
    fires = chain(expr, tz_name, after, 3)
    assert fires == expected[:3]
    assert len(set(fires)) == 3


def test_plan_after_very_long_downtime_jumps_to_the_next_future_slot() -> None:
    from datetime import UTC, datetime, timedelta

    from duly.core.triggers import CatchUp, TriggerKind, TriggerSpec, normalise_cron, plan

    now = datetime(2030, 1, 1, tzinfo=UTC)
    every_second = TriggerSpec("s", TriggerKind.CRON, "t", spec=normalise_cron("* * * * * *"), catch_up=CatchUp.LATEST)
    p = plan(every_second, now - timedelta(days=10), now, scan_limit=1000)
    assert len(p.slots) == 1 and p.missed == 999
    assert p.next_fire_at == now + timedelta(seconds=1)
