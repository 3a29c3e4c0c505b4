"""Triggers as pure rules: parsing, next fire times (with time zones), catch-up, event matching.

Kinds: ``at`` (an ISO 8601 time), ``in`` (a duration from creation), ``every`` (a duration,
optional start/end), ``cron`` (5 fields, or 6 with seconds first; ``@hourly`` …; a time zone per
trigger), ``event`` (an event name pattern, a filter, optional debounce), ``webhook`` (fired by
an HTTP POST to its secret URL), ``manual`` (fires only when asked).

Cron and daylight saving time: fire times are computed on the trigger's local wall clock and
then placed on the real timeline. When clocks go forward, a wall time in the skipped hour is
shifted forward by the gap (a 02:30 daily job fires at 03:30 on that day: no slot is lost).
When clocks go back, a wall time in the repeated hour fires once, at its first occurrence
(no double fire); sub-hourly schedules therefore pause during the repeated hour.
"""

from __future__ import annotations

import enum
import fnmatch
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from collections.abc import Sequence
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from duly.core.durations import parse_duration, to_seconds
from duly.core.errors import InvalidOption
from duly.core.model import EnqueueParams
from duly.core.options import about, check_max_attempts, check_name, check_priority, check_seconds


E = TypeVar("E", bound=enum.Enum)


class TriggerKind(str, enum.Enum):
    AT = "at"
    IN = "in"
    EVERY = "every"
    CRON = "cron"
    EVENT = "event"
    WEBHOOK = "webhook"
    MANUAL = "manual"

    def __str__(self) -> str:
        return self.value


class CatchUp(str, enum.Enum):
    SKIP = "skip"  # missed slots make no job; only the next future slot fires
    LATEST = "latest"  # one job for all the missed slots (the default)
    ALL = "all"  # one job per missed slot, up to the trigger's limit

    def __str__(self) -> str:
        return self.value


ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
    "@minutely": "* * * * *",
}
#: A slot fired within this many seconds after its time counts as on time, not missed.
MISFIRE_GRACE_SECONDS = 5.0


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise InvalidOption(f"unknown time zone {name!r}; use an IANA name such as 'Europe/Paris'", field="tz") from None


def normalise_cron(expr: str) -> str:
    text = " ".join(expr.split())
    text = ALIASES.get(text.lower(), text)
    fields = text.split(" ")
    if len(fields) not in (5, 6):
        raise InvalidOption(
            f"invalid cron expression {expr!r}: expected 5 fields (minute hour day month weekday), "
            "6 with seconds first, or @hourly/@daily/@weekly/@monthly/@yearly"
        )
    # croniter is imported where it is used: it (and dateutil) would add some 40 ms to the
    # start of every process that imports duly, most of which never read a cron expression.
    from croniter import CroniterBadCronError, CroniterBadDateError, croniter

    try:  # a time must exist too: "0 0 31 2 *" parses but never fires
        it = croniter(text, datetime(2000, 1, 1), second_at_beginning=len(fields) == 6)
        it.get_next(datetime)
    except CroniterBadDateError:
        raise InvalidOption(f"invalid cron expression {expr!r}: it never fires (no such date)") from None
    except (CroniterBadCronError, ValueError, KeyError) as exc:
        raise InvalidOption(f"invalid cron expression {expr!r}: {exc}") from None
    return text


def _local_to_utc(naive: datetime, tz: ZoneInfo) -> datetime:
    """A wall time in ``tz`` on the real timeline; gaps shift forward, overlaps take the first."""
    aware = naive.replace(tzinfo=tz, fold=0)
    return aware.astimezone(UTC)


#: More than any change of a zone's UTC offset.
_SHIFT = timedelta(hours=3)
_US = timedelta(microseconds=1)


def _wall(instant: datetime, tz: ZoneInfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None)


def _first(
    expr: str, six: bool, tz: ZoneInfo, start: datetime, after: datetime
) -> tuple[datetime, datetime]:
    """The first wall time of ``expr`` after the wall time ``start`` that lands after ``after``
    on the real timeline: (wall time, UTC time)."""
    from croniter import CroniterBadDateError, croniter

    it = croniter(expr, start, second_at_beginning=six)
    try:
        for _ in range(100_000):
            naive = it.get_next(datetime)
            candidate = _local_to_utc(naive, tz)
            if candidate > after:
                return naive, candidate
    except CroniterBadDateError:
        pass
    raise InvalidOption(f"cron expression {expr!r} has no fire time after {after.isoformat()}")


def _offset_change(tz: ZoneInfo, lo: datetime, hi: datetime) -> datetime:
    """The first instant (to the microsecond) after ``lo`` with ``hi``'s UTC offset."""
    before = lo.astimezone(tz).utcoffset()
    while hi - lo > _US:
        mid = lo + (hi - lo) / 2
        if mid.astimezone(tz).utcoffset() == before:
            lo = mid
        else:
            hi = mid
    return hi


def cron_next(expr: str, tz_name: str | None, after: datetime) -> datetime:
    """The first fire time strictly after ``after`` (UTC)."""
    tz = zone(tz_name)
    six = len(expr.split(" ")) == 6
    naive, best = _first(expr, six, tz, _wall(after, tz), after)
    # Wall times are not in the timeline's order around a jump forward: a skipped wall time
    # lands after the jump, so it comes after later wall times that really exist.
    offset = after.astimezone(tz).utcoffset()
    jump = offset - (after - _SHIFT).astimezone(tz).utcoffset()  # type: ignore[operator]
    if jump > timedelta(0):
        if (after - jump).astimezone(tz).utcoffset() != offset:  # the jump was under ``jump`` ago
            # skipped wall times later than ``after``'s minus the jump still land ahead of it
            best = min(best, _first(expr, six, tz, _wall(after, tz) - jump, after)[1])
    elif _wall(best, tz) != naive:  # the best wall time was skipped by a jump ahead
        # wall times from the end of the jump on land from the jump on, maybe before ``best``
        end = _wall(_offset_change(tz, best - _SHIFT, best), tz)
        best = min(best, _first(expr, six, tz, end - _US, after)[1])
    return best


@dataclass
class TriggerSpec:
    """A trigger's rule and job template, as stored (see ``duly.store`` triggers table)."""

    name: str
    kind: TriggerKind
    task: str
    spec: str = ""  # at: ISO time; in/every: duration; cron: expression; event: name pattern
    timezone: str | None = None
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue: str | None = None
    priority: int | None = None
    max_attempts: int | None = None
    expires_in: float | None = None  # the job expires this long after its slot
    catch_up: CatchUp = CatchUp.LATEST
    catch_up_limit: int = 100
    start_at: datetime | None = None
    end_at: datetime | None = None
    debounce: float | None = None
    filter: dict[str, Any] | None = None
    secret: str | None = None

    def options(self) -> dict[str, Any]:
        return {k: v for k, v in (("queue", self.queue), ("priority", self.priority),
                                  ("max_attempts", self.max_attempts), ("expires_in", self.expires_in))
                if v is not None}  # fmt: skip


def validate(t: TriggerSpec, now: datetime) -> TriggerSpec:
    """Check and normalise a trigger; InvalidOption says what is wrong, and its ``field``
    names the option (as ``app.schedule`` calls it: ``cron``, ``tz``, ``every``, ``in``...)."""
    if not t.name or not isinstance(t.name, str):
        raise InvalidOption("a trigger needs a non-empty name", field="name")
    # the job options are checked now, not at each firing (where a bad one would fail the tick)
    with about("task"):
        check_name(t.task, "task")
    if t.queue is not None:
        with about("queue"):
            check_name(t.queue, "queue")
    if t.priority is not None:
        with about("priority"):
            check_priority(t.priority)
    if t.max_attempts is not None:
        with about("max_attempts"):
            check_max_attempts(t.max_attempts)
    if t.expires_in is not None:
        with about("expires_in"):
            t.expires_in = check_seconds(t.expires_in, "expires_in", positive=True)
    t.kind = _choice(TriggerKind, t.kind, "kind")
    t.catch_up = _choice(CatchUp, t.catch_up, "catch_up")
    limit = t.catch_up_limit
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise InvalidOption(f"catch_up_limit must be an integer >= 1, got {limit!r}", field="catch_up_limit")
    if t.start_at is not None:  # a datetime with its offset, or ISO 8601 text
        t.start_at = _parse_time(t.start_at, "start")
    if t.end_at is not None:
        t.end_at = _parse_time(t.end_at, "end")
    with about(t.kind.value):  # the rule: at, in, every, cron or event
        _validate_rule(t, now)
    if t.debounce is not None:
        try:
            t.debounce = to_seconds(t.debounce)
        except ValueError as exc:
            raise InvalidOption(f"trigger {t.name!r}: debounce: {exc}", field="debounce") from None
        if t.debounce <= 0 or not math.isfinite(t.debounce):
            raise InvalidOption(f"trigger {t.name!r}: debounce must be a positive duration", field="debounce")
    if t.start_at and t.end_at and t.end_at <= t.start_at:
        raise InvalidOption(f"trigger {t.name!r}: end is not after start", field="end")
    return t


def _validate_rule(t: TriggerSpec, now: datetime) -> None:
    if t.kind is TriggerKind.AT:
        at = _parse_time(t.spec, "at")
        t.spec = at.isoformat()
    elif t.kind in (TriggerKind.IN, TriggerKind.EVERY):
        try:
            secs = parse_duration(t.spec) if isinstance(t.spec, str) else to_seconds(t.spec)
        except ValueError as exc:
            raise InvalidOption(f"{t.kind.value} trigger {t.name!r}: {exc}") from None
        if t.kind is TriggerKind.EVERY and secs < 1:
            raise InvalidOption(f"every trigger {t.name!r}: the interval must be at least 1 s")
        if secs < 0 or not math.isfinite(secs):
            raise InvalidOption(f"in trigger {t.name!r}: the delay must not be negative")
        if t.kind is TriggerKind.IN:  # an "in" becomes an "at", fixed at creation
            t.kind, t.spec = TriggerKind.AT, (now + timedelta(seconds=secs)).isoformat()
        else:
            t.spec = str(secs)
    elif t.kind is TriggerKind.CRON:
        t.spec = normalise_cron(t.spec)
        zone(t.timezone)  # its error names "tz"
    elif t.kind is TriggerKind.EVENT:
        if not t.spec:
            raise InvalidOption(f"event trigger {t.name!r} needs an event name (or pattern such as 'order.*')")
        if t.filter is not None and not isinstance(t.filter, dict):
            raise InvalidOption(f"event trigger {t.name!r}: filter must be a dict of field: value", field="filter")


def _choice(enum_type: type[E], value: Any, what: str) -> E:
    try:
        return enum_type(value)
    except ValueError:
        choices = ", ".join(repr(m.value) for m in enum_type)
        raise InvalidOption(f"{what} must be one of {choices}; got {value!r}", field=what) from None


def _parse_time(value: Any, what: str) -> datetime:
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(str(value))
        except ValueError:
            raise InvalidOption(f"{what} {value!r} is not an ISO 8601 time such as 2030-01-07T09:00:00+01:00",
                                field=what) from None
    if dt.tzinfo is None:
        raise InvalidOption(f"{what} {value!r} has no UTC offset; write e.g. 2030-01-07T09:00:00+01:00", field=what)
    return dt.astimezone(UTC)


def first_fire(t: TriggerSpec, now: datetime) -> datetime | None:
    """The first slot of a new (or resumed) trigger from ``now`` on; None for kinds that do
    not fire on time, and once the trigger's end has passed."""
    if t.kind is TriggerKind.AT:
        return _parse_time(t.spec, "at")
    slot: datetime | None = None
    if t.kind is TriggerKind.EVERY:
        step = float(t.spec)
        if t.start_at is None:  # the first slot is one interval from now
            slot = now + timedelta(seconds=step)
        elif t.start_at >= now:
            slot = t.start_at
        else:
            n = math.ceil((now - t.start_at).total_seconds() / step)
            slot = t.start_at + timedelta(seconds=n * step)
    elif t.kind is TriggerKind.CRON:  # the first slot strictly after now (or at/after start)
        base = t.start_at - timedelta(microseconds=1) if t.start_at and t.start_at > now else now
        slot = cron_next(t.spec, t.timezone, base)
    if slot is not None and t.end_at is not None and slot > t.end_at:
        return None
    return slot


def next_after(t: TriggerSpec, slot: datetime) -> datetime | None:
    """The slot that follows ``slot``, or None when the trigger has no more (at, end reached)."""
    if t.kind is TriggerKind.EVERY:
        nxt: datetime | None = slot + timedelta(seconds=float(t.spec))
    elif t.kind is TriggerKind.CRON:
        nxt = cron_next(t.spec, t.timezone, slot)
    else:
        return None
    if nxt is not None and t.end_at is not None and nxt > t.end_at:
        return None
    return nxt


@dataclass(frozen=True)
class FirePlan:
    slots: list[datetime]  # slots that get a job, oldest first
    missed: int  # slots that get none
    next_fire_at: datetime | None


def plan(t: TriggerSpec, due: datetime, now: datetime, scan_limit: int = 100_000) -> FirePlan:
    """What to fire when a scheduler finds ``t`` due at ``now`` with its next slot ``due``."""
    slots: list[datetime] = []
    slot: datetime | None = due
    while slot is not None and slot <= now and len(slots) < scan_limit:
        slots.append(slot)
        slot = next_after(t, slot)
    nxt = slot
    if nxt is not None and nxt <= now:
        # Down for longer than scan_limit slots: jump to the first slot after now (the
        # missed count is then a lower bound).
        nxt = _first_after(t, now)
    if not slots:
        return FirePlan([], 0, nxt)
    grace = timedelta(seconds=MISFIRE_GRACE_SECONDS)
    on_time = [s for s in slots if now - s <= grace]
    late = [s for s in slots if now - s > grace]
    if t.catch_up is CatchUp.SKIP:
        fire = on_time
    elif t.catch_up is CatchUp.LATEST:
        fire = late[-1:] + on_time  # the missed slots make one job; on-time slots fire as usual
    else:
        fire = slots[-t.catch_up_limit :]
    return FirePlan(fire, len(slots) - len(fire), nxt)


def _first_after(t: TriggerSpec, now: datetime) -> datetime | None:
    if t.kind is TriggerKind.CRON:
        nxt: datetime | None = cron_next(t.spec, t.timezone, now)
    elif t.kind is TriggerKind.EVERY:
        start = t.start_at or now
        step = float(t.spec)
        nxt = start + timedelta(seconds=(math.floor((now - start).total_seconds() / step) + 1) * step)
    else:
        return None
    if nxt is not None and t.end_at is not None and nxt > t.end_at:
        return None
    return nxt


def upcoming(
    t: TriggerSpec, after: datetime, count: int = 10, first: datetime | None = None
) -> list[datetime]:
    """The next ``count`` fire times after ``after`` (for the CLI and the dashboard); a stored
    trigger passes its next fire time as ``first`` (an ``every`` trigger without a start
    counts its interval from its previous slot, not from ``after``)."""
    out: list[datetime] = []
    slot = first if first is not None else first_fire(t, after)
    while slot is not None and len(out) < count:
        if slot > after or t.kind is TriggerKind.AT:
            out.append(slot)
        slot = next_after(t, slot)
    return out


def event_matches(pattern: str, flt: dict[str, Any] | None, name: str, data: Any) -> bool:
    """``pattern`` is an event name or a glob (``order.*``); ``flt`` requires fields of the
    event's data (a dict) to equal the given values (a list value means any of them)."""
    if not fnmatch.fnmatchcase(name, pattern):
        return False
    if not flt:
        return True
    if not isinstance(data, dict):
        return False
    for key, want in flt.items():
        have = data.get(key)
        if isinstance(want, list):
            if have not in want:
                return False
        elif have != want:
            return False
    return True


@dataclass
class Trigger:
    """A stored trigger: its rule (``spec``) and its state."""

    id: int
    spec: TriggerSpec
    declared: bool
    paused: bool
    next_fire_at: datetime | None
    missed: int
    last_fire_at: datetime | None
    last_job_id: int | None
    last_manual_at: datetime | None
    last_manual_job_id: int | None
    window_events: list[Any] | None
    created_at: datetime
    updated_at: datetime

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class TriggerState:
    """A trigger's health, computed from the jobs it made (the cozy seed's TriggerState)."""

    status: str | None  # state of its most recent job
    last_execution: datetime | None
    last_executed_job_id: int | None
    last_success: datetime | None
    last_successful_job_id: int | None
    last_failure: datetime | None
    last_failed_job_id: int | None
    last_error: str | None
    last_manual_execution: datetime | None
    last_manual_job_id: int | None


@dataclass(frozen=True)
class Fire:
    """One firing to record atomically: the slots' jobs, the trigger's new state.

    ``expected_next`` guards against a second scheduler recording the same firing (the
    slots' unique key is the hard guarantee). ``slot_at`` None (event, manual) writes no slot.
    """

    trigger_id: int
    expected_next: datetime | None
    jobs: Sequence[tuple[datetime | None, EnqueueParams]]  # (slot time or None, the job)
    next_fire_at: datetime | None
    missed: int = 0
    delete: bool = False  # one-shot triggers remove themselves after firing
    manual: bool = False
    clear_window: bool = False
    #: The debounce window's events the job took (the first ones): the store keeps those
    #: appended since the scheduler read the window, and opens a new window for them.
    window_taken: int = 0
