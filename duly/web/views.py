"""What the pages and the JSON API show, built once as JSON-ready data: the pages render
it with templates, the API returns it as it is."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from duly._admin import throughput_since
from duly.app import App
from duly.core.errors import InvalidOption
from duly.core.model import JobFilter
from duly.core.states import FINAL, RETRYABLE, JobState, parse_state
from duly.web import serialize

#: Jobs per page of the job list.
PAGE_SIZE = 50
#: Ids one search request looks through (a text search scans rows: this bounds its cost).
SEARCH_WINDOW = 100_000


def overview_data(app: App, minutes: int = 30) -> dict[str, Any]:
    counts = app.queue_counts()
    latency = app.queue_latency()
    workers = app.workers()
    now = app.store.now()
    start = throughput_since(now, minutes)
    series = {s.value: [0] * minutes for s in FINAL}
    for p in app.throughput(minutes):
        i = int((p.minute - start) // timedelta(minutes=1))
        if 0 <= i < minutes:
            series[p.state.value][i] += p.count
    totals = {s.value: sum(c.counts.get(s, 0) for c in counts) for s in JobState}
    return {
        "now": now.isoformat(),
        "queues": [serialize.counts(c, latency.get(c.queue)) for c in counts],
        "totals": totals,
        "estimated": sorted({s.value for c in counts for s in c.estimated}),
        "workers": {"alive": sum(w.alive for w in workers), "dead": sum(not w.alive for w in workers)},
        "throughput": {"minutes": minutes, "start": start.isoformat(), "series": series},
    }


def _int_param(params: Mapping[str, str], name: str, lo: int, hi: int, default: int | None) -> int | None:
    raw = params.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        n = int(raw)
    except ValueError:
        raise InvalidOption(f"{name} must be an integer, got {raw!r}") from None
    if not lo <= n <= hi:
        raise InvalidOption(f"{name} must be between {lo} and {hi}, got {n}")
    return n


def job_filters(params: Mapping[str, str]) -> dict[str, Any]:
    """The job list's filters from query parameters (empty ones are dropped)."""
    state = (params.get("state") or "").strip()
    try:
        parsed = parse_state(state) if state else None
    except ValueError as exc:
        raise InvalidOption(str(exc)) from None
    return {
        "queue": (params.get("queue") or "").strip() or None,
        "state": parsed.value if parsed else None,
        "task": (params.get("task") or "").strip() or None,
        "text": (params.get("q") or "").strip() or None,
        "before_id": _int_param(params, "before", 1, 2**63 - 1, None),
        "limit": _int_param(params, "limit", 1, 500, PAGE_SIZE) or PAGE_SIZE,
    }


def jobs_page_data(app: App, params: Mapping[str, str]) -> dict[str, Any]:
    """One page of jobs, newest first; ``next_before`` pages on (keyset pagination).

    A search text cannot use an index, so one request searches at most ``SEARCH_WINDOW``
    consecutive ids (newest first); when it finds less than a page, ``next_before`` goes on
    below the window and ``searched`` says which ids were searched."""
    f = job_filters(params)
    searched = None
    if f["text"]:
        upper = f["before_id"]
        if upper is None:
            newest = app.jobs(limit=1)
            upper = newest[0].id + 1 if newest else 1
        lower = max(upper - 1 - SEARCH_WINDOW, 0)
        state = JobState(f["state"]) if f["state"] else None
        flt = JobFilter(f["queue"], state, f["task"], f["text"], upper, f["limit"], after_id=lower)
        jobs = app.store.list_jobs(flt)
        searched = {"from_id": lower + 1, "to_id": upper - 1, "more": lower > 0}
        more = len(jobs) == f["limit"] or lower > 0
        next_before = (jobs[-1].id if len(jobs) == f["limit"] else lower + 1) if more else None
    else:
        jobs = app.jobs(**f)
        next_before = jobs[-1].id if len(jobs) == f["limit"] and jobs else None
    return {
        "jobs": [serialize.job(j) for j in jobs],
        "next_before": next_before,
        "searched": searched,
        "filters": {k: v for k, v in f.items() if k not in ("before_id",)} | {"before": f["before_id"]},
    }


def job_actions(state: str, cancel_requested: bool) -> list[str]:
    """The actions a job in ``state`` allows, as the pages offer them."""
    s = JobState(state)
    actions = []
    if s in RETRYABLE:
        actions.append("retry")
    if s in (JobState.SCHEDULED, JobState.QUEUED, JobState.RETRYING) or (
        s is JobState.RUNNING and not cancel_requested
    ):
        actions.append("cancel")
    if s in (JobState.SCHEDULED, JobState.RETRYING, JobState.SUCCEEDED):
        actions.append("run")
    actions.append("delete")
    return actions


def job_page_data(app: App, job_id: int) -> dict[str, Any]:
    job = app.get_job(job_id)
    attempts = app.attempts(job_id)
    data = serialize.job(job)
    return {
        "job": data,
        "attempts": [serialize.attempt(a) for a in attempts],
        "actions": job_actions(data["state"], job.cancel_requested),
    }


def triggers_available(app: App) -> bool:
    return hasattr(app, "triggers") and callable(getattr(app, "triggers", None))


def triggers_data(app: App) -> dict[str, Any]:
    """Stored triggers with their state and next fire time (the schedules' verbs on App)."""
    if not triggers_available(app):
        return {"available": False, "triggers": []}
    return {"available": True, "triggers": [serialize.trigger(t) for t in app.triggers()]}


def _require_triggers(app: App, fn: str) -> None:
    if not triggers_available(app) or not hasattr(app, fn):
        raise InvalidOption("this duly has no triggers")


def trigger_action(app: App, name: str, verb: str) -> dict[str, Any]:
    fn = {"pause": "pause_trigger", "resume": "resume_trigger", "run": "run_trigger"}[verb]
    _require_triggers(app, fn)
    done = getattr(app, fn)(name)
    key = "job" if verb == "run" else "trigger"
    return {key: serialize.job(done) if verb == "run" else serialize.trigger(done)}


def trigger_data(app: App, name: str, count: int = 10) -> dict[str, Any]:
    """One trigger as listed, its state (from the jobs it made) and its next ``count`` fire
    times: what ``duly triggers show --json`` prints. Unknown name: TriggerNotFound."""
    _require_triggers(app, "upcoming")
    t = app.trigger(name)
    return {
        "trigger": serialize.trigger(t),
        "state": serialize.jsonable(app.trigger_state(name)),
        "upcoming": [dt.isoformat() for dt in app.upcoming(name, count)],
    }


#: The fields of a trigger added through the API: those of ``duly triggers add`` (the rule is
#: one of cron, every, at, in, event, webhook, manual), named as ``app.schedule`` names them.
TRIGGER_FIELDS = frozenset({
    "name", "task", "cron", "tz", "every", "start", "end", "at", "in", "event", "filter", "debounce",
    "webhook", "manual", "args", "kwargs", "queue", "priority", "max_attempts", "expires_in", "catch_up",
    "catch_up_limit",
})  # fmt: skip
#: JSON types that app.schedule would otherwise coerce (str() of a rule, truth of a flag);
#: everything else is checked by the schedule's own validation (duly.core.triggers.validate).
_JSON_TYPES: dict[str, tuple[type, str]] = {
    "cron": (str, "a string"), "at": (str, "a string"), "event": (str, "a string"),
    "start": (str, "a string"), "end": (str, "a string"), "webhook": (bool, "true or false"),
    "manual": (bool, "true or false"), "args": (list, "a JSON array"), "kwargs": (dict, "a JSON object"),
}  # fmt: skip


def add_trigger(app: App, body: dict[str, Any]) -> dict[str, Any]:
    """Store a trigger from a JSON object through ``app.schedule`` (its validation, as the
    CLI's): InvalidOption names the field at fault; DuplicateTrigger when the name is taken.
    A webhook trigger's answer carries its URL path, which holds the secret (once)."""
    _require_triggers(app, "schedule")
    unknown = sorted(set(body) - TRIGGER_FIELDS)
    if unknown:
        raise InvalidOption(f"unknown field(s): {', '.join(unknown)}", field=unknown[0])
    given = {k: v for k, v in body.items() if v is not None}
    if "name" not in given:
        raise InvalidOption("'name' (the trigger's name) is required", field="name")
    if "task" not in given:
        raise InvalidOption("'task' (the task its jobs run) is required", field="task")
    for key, (kind, what) in _JSON_TYPES.items():
        value = given.get(key)
        if value is not None and (not isinstance(value, kind) or (kind is not bool and isinstance(value, bool))):
            raise InvalidOption(f"{key} must be {what}, got {value!r}", field=key)
    if "in" in given:
        given["in_"] = given.pop("in")
    t = app.schedule(given.pop("task"), **given)
    out: dict[str, Any] = {"trigger": serialize.trigger(t)}
    if t.spec.secret:
        out["webhook_path"] = f"/hooks/{t.spec.secret}"
    return out


def delete_trigger(app: App, name: str) -> None:
    _require_triggers(app, "delete_trigger")
    app.delete_trigger(name)
