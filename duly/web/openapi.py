"""The OpenAPI 3.1 document of the JSON API (served at ``/api/openapi.json``).

Written out by hand, next to the endpoints in ``duly.web.api``; ``tests/web/test_api.py``
checks that every route is documented and every documented path exists.
"""

from __future__ import annotations

from typing import Any

import duly
from duly.core.states import JobState
from duly.core.triggers import CatchUp, TriggerKind

STATES = [s.value for s in JobState]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERRORS = {
    "401": _json(_ref("Error"), "Authentication required (a token is configured)"),
    "403": _json(_ref("Error"), "CSRF check failed (send the Bearer token, or the X-CSRF-Token header)"),
}
NOT_FOUND = {"404": _json(_ref("Error"), "No such job or trigger")}
CONFLICT = {"409": _json(_ref("Error"), "The job's state does not allow this")}
INVALID = {"422": _json(_ref("Error"), "Invalid parameters")}


def _get(summary: str, schema: dict[str, Any], params: list[dict[str, Any]] | None = None,
         extra: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    op: dict[str, Any] = {"summary": summary, "responses": {"200": _json(schema), **ERRORS, **(extra or {})}}
    if params:
        op["parameters"] = params
    return {"get": op}


def _post(summary: str, schema: dict[str, Any], extra: dict[str, Any] | None = None,
          method: str = "post") -> dict[str, Any]:  # fmt: skip
    return {method: {"summary": summary, "responses": {"200": _json(schema), **ERRORS, **(extra or {})},
                     "parameters": [{"$ref": "#/components/parameters/csrf"}]}}  # fmt: skip


def _q(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _path(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


JOB_ID = _path("job_id", {"type": "integer"})
QUEUE = _path("name", {"type": "string"})
TRIGGER = _path("name", {"type": "string"})

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {
        "error": {"type": "string"},
        "field": {"type": "string", "description": "422 and 409 of POST /api/triggers: the field at fault"}}},
    "State": {"type": "string", "enum": STATES},
    "Job": {
        "type": "object",
        "description": "A job (see docs/concepts.md for states and transitions).",
        "properties": {
            "id": {"type": "integer"}, "task": {"type": "string"}, "queue": {"type": "string"},
            "args": {"type": "array"}, "kwargs": {"type": "object"}, "priority": {"type": "integer"},
            "state": _ref("State"), "run_at": {"type": "string", "format": "date-time"},
            "expires_at": {"type": ["string", "null"], "format": "date-time"},
            "key": {"type": ["string", "null"]}, "attempt": {"type": "integer"},
            "errors": {"type": "integer"}, "max_attempts": {"type": "integer"},
            "attempts_left": {"type": "integer"}, "lease_seconds": {"type": "number"},
            "worker_id": {"type": ["string", "null"]},
            "lease_expires_at": {"type": ["string", "null"], "format": "date-time"},
            "started_at": {"type": ["string", "null"], "format": "date-time"},
            "cancel_requested": {"type": "boolean"},
            "progress_done": {"type": ["integer", "null"]}, "progress_total": {"type": ["integer", "null"]},
            "result": {}, "last_error": {"type": ["string", "null"]},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "finished_at": {"type": ["string", "null"], "format": "date-time"},
            "trigger_id": {"type": ["integer", "null"]},
        },
    },
    "Attempt": {
        "type": "object",
        "properties": {
            "job_id": {"type": "integer"}, "attempt": {"type": "integer"},
            "worker_id": {"type": ["string", "null"]},
            "started_at": {"type": ["string", "null"], "format": "date-time"},
            "finished_at": {"type": ["string", "null"], "format": "date-time"},
            "duration_seconds": {"type": ["number", "null"]},
            "outcome": {"type": "string", "enum": [o.value for o in duly.Outcome]},
            "error_type": {"type": ["string", "null"]}, "error_message": {"type": ["string", "null"]},
            "traceback": {"type": ["string", "null"]}, "log": {"type": ["string", "null"]},
        },
    },
    "JobPage": {
        "type": "object",
        "properties": {"job": _ref("Job"), "attempts": {"type": "array", "items": _ref("Attempt")},
                       "actions": {"type": "array", "items": {"type": "string",
                                                              "enum": ["retry", "cancel", "run", "delete"]}}},
    },
    "JobList": {
        "type": "object",
        "properties": {
            "jobs": {"type": "array", "items": _ref("Job")},
            "next_before": {"type": ["integer", "null"], "description": "pass as ?before= for the next page"},
            "searched": {"type": ["object", "null"],
                         "description": "with q: the ids this request searched (from_id, to_id, more)"},
            "filters": {"type": "object"},
        },
    },
    "QueueCounts": {
        "type": "object",
        "properties": {
            "queue": {"type": "string"}, "paused": {"type": "boolean"},
            "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
            "estimated": {"type": "array", "items": _ref("State"),
                          "description": "states whose count is a planner estimate (PostgreSQL, big counts)"},
            "total": {"type": "integer"},
            "latency_seconds": {"type": "number", "description": "wait of the oldest due job"},
        },
    },
    "Overview": {
        "type": "object",
        "properties": {
            "now": {"type": "string", "format": "date-time"},
            "queues": {"type": "array", "items": _ref("QueueCounts")},
            "totals": {"type": "object", "additionalProperties": {"type": "integer"}},
            "estimated": {"type": "array", "items": _ref("State")},
            "workers": {"type": "object", "properties": {"alive": {"type": "integer"}, "dead": {"type": "integer"}}},
            "throughput": {
                "type": "object",
                "properties": {
                    "minutes": {"type": "integer"}, "start": {"type": "string", "format": "date-time"},
                    "series": {"type": "object", "description": "final state -> jobs ended per minute, oldest first",
                               "additionalProperties": {"type": "array", "items": {"type": "integer"}}},
                },
            },
        },
    },
    "Throughput": {
        "type": "object",
        "properties": {
            "minutes": {"type": "integer"},
            "points": {"type": "array", "items": {"type": "object", "properties": {
                "queue": {"type": "string"}, "minute": {"type": "string", "format": "date-time"},
                "state": _ref("State"), "count": {"type": "integer"}}}},
        },
    },
    "Worker": {
        "type": "object",
        "properties": {
            "id": {"type": "string"}, "hostname": {"type": "string"}, "pid": {"type": "integer"},
            "queues": {"type": ["array", "null"], "items": {"type": "string"}},
            "concurrency": {"type": "integer"},
            "started_at": {"type": "string", "format": "date-time"},
            "last_seen_at": {"type": "string", "format": "date-time"},
            "alive": {"type": "boolean"}, "running": {"type": "integer"},
        },
    },
    "TriggerSpec": {
        "type": "object",
        "description": "A trigger's rule and job template, as stored (an 'in' trigger is stored as 'at').",
        "properties": {
            "name": {"type": "string"}, "kind": {"type": "string", "enum": [k.value for k in TriggerKind]},
            "task": {"type": "string"},
            "spec": {"type": "string", "description": "at: ISO time; every: seconds; cron: expression; "
                                                      "event: name pattern; webhook, manual: empty"},
            "timezone": {"type": ["string", "null"]}, "args": {"type": "array"}, "kwargs": {"type": "object"},
            "queue": {"type": ["string", "null"]}, "priority": {"type": ["integer", "null"]},
            "max_attempts": {"type": ["integer", "null"]}, "expires_in": {"type": ["number", "null"]},
            "catch_up": {"type": "string", "enum": [c.value for c in CatchUp]},
            "catch_up_limit": {"type": "integer"},
            "start_at": {"type": ["string", "null"], "format": "date-time"},
            "end_at": {"type": ["string", "null"], "format": "date-time"},
            "debounce": {"type": ["number", "null"]}, "filter": {"type": ["object", "null"]},
            "secret": {"type": ["string", "null"], "description": "'***' for a webhook trigger (never sent)"},
        },
    },
    "Trigger": {
        "type": "object",
        "description": "A stored trigger with its state (webhook secrets shown as ***).",
        "properties": {
            "id": {"type": "integer"}, "name": {"type": "string"}, "spec": _ref("TriggerSpec"),
            "declared": {"type": "boolean", "description": "declared in code (else added at run time)"},
            "paused": {"type": "boolean"}, "next_fire_at": {"type": ["string", "null"], "format": "date-time"},
            "missed": {"type": "integer"}, "last_fire_at": {"type": ["string", "null"], "format": "date-time"},
            "last_job_id": {"type": ["integer", "null"]},
            "last_manual_at": {"type": ["string", "null"], "format": "date-time"},
            "last_manual_job_id": {"type": ["integer", "null"]},
            "window_events": {"type": ["array", "null"], "description": "an open debounce window's events"},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
        },
    },
    "TriggerPage": {
        "type": "object",
        "description": "What 'duly triggers show --json' prints.",
        "properties": {
            "trigger": _ref("Trigger"),
            "state": {"type": "object", "description": "from the jobs it made", "properties": {
                "status": {"type": ["string", "null"], "description": "state of its latest job"},
                **{f"last_{w}": {"type": ["string", "null"], "format": "date-time"}
                   for w in ("execution", "success", "failure", "manual_execution")},
                **{f"last_{w}_job_id": {"type": ["integer", "null"]}
                   for w in ("executed", "successful", "failed", "manual")},
                "last_error": {"type": ["string", "null"]}}},
            "upcoming": {"type": "array", "items": {"type": "string", "format": "date-time"},
                         "description": "its next ten fire times (none while paused)"},
        },
    },
    "TriggerAdd": {
        "type": "object",
        "description": "The options of 'duly triggers add' and app.schedule (docs/schedules.md), with "
                       "exactly one rule: cron, every, at, in, event, webhook or manual.",
        "required": ["name", "task"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string"}, "task": {"type": "string", "description": "the task its jobs run"},
            "cron": {"type": "string", "description": "5 fields, 6 with seconds first, or @hourly..."},
            "tz": {"type": "string", "description": "cron: an IANA time zone (default UTC)"},
            "every": {"type": ["string", "number"], "description": "an interval, e.g. '10m' or 600"},
            "start": {"type": "string", "format": "date-time", "description": "cron/every: first possible slot"},
            "end": {"type": "string", "format": "date-time", "description": "cron/every: no slot after this"},
            "at": {"type": "string", "format": "date-time", "description": "once, at this time (with offset)"},
            "in": {"type": ["string", "number"], "description": "once, this long from now, e.g. '1h30m'"},
            "event": {"type": "string", "description": "an event name or glob, e.g. 'order.*'"},
            "filter": {"type": "object", "description": "event: field values the event's data must have"},
            "debounce": {"type": ["string", "number"], "description": "event/webhook: collect events this long"},
            "webhook": {"type": "boolean", "description": "fired by POST /hooks/<secret>"},
            "manual": {"type": "boolean", "description": "fires only when run"},
            "args": {"type": "array"}, "kwargs": {"type": "object"}, "queue": {"type": "string"},
            "priority": {"type": "integer"}, "max_attempts": {"type": "integer", "minimum": 1},
            "expires_in": {"type": ["string", "number"], "description": "each job expires this long after its slot"},
            "catch_up": {"type": "string", "enum": [c.value for c in CatchUp], "default": "latest"},
            "catch_up_limit": {"type": "integer", "minimum": 1, "default": 100},
        },
    },
    "Enqueue": {
        "type": "object",
        "required": ["task"],
        "additionalProperties": False,
        "properties": {
            "task": {"type": "string", "description": "a task name (need not be importable by the server)"},
            "args": {"type": "array"}, "kwargs": {"type": "object"}, "queue": {"type": "string"},
            "priority": {"type": "integer"}, "max_attempts": {"type": "integer"},
            "run_at": {"type": "string", "format": "date-time"},
            "run_in": {"type": ["string", "number"], "description": "e.g. 90, '90s', '1h30m'"},
            "expires_at": {"type": "string", "format": "date-time"},
            "expires_in": {"type": ["string", "number"]},
            "key": {"type": "string"}, "mode": {"type": "string", "enum": ["new", "ignore", "replace"]},
        },
    },
}

JOB_FILTERS = [
    _q("queue", {"type": "string"}, "only this queue"),
    _q("state", _ref("State"), "only this state"),
    _q("task", {"type": "string"}, "only this task"),
    _q("q", {"type": "string"}, "text in the task, key, arguments or last error"),
    _q("before", {"type": "integer"}, "keyset pagination: jobs with ids below this one"),
    _q("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}, "page size"),
]
MINUTES = [_q("minutes", {"type": "integer", "minimum": 1, "maximum": 1440}, "minutes of throughput")]


def document() -> dict[str, Any]:
    enqueue = {
        "summary": "Enqueue a job by task name",
        "parameters": [{"$ref": "#/components/parameters/csrf"}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("Enqueue")}}},
        "responses": {
            "201": _json({"type": "object", "properties": {"job": _ref("Job"), "created": {"type": "boolean"}}},
                         "Created"),
            "200": _json({"type": "object", "properties": {"job": _ref("Job"), "created": {"type": "boolean"}}},
                         "mode 'ignore': the live job holding the key"),
            **ERRORS, **CONFLICT, **INVALID,
        },
    }  # fmt: skip
    job_action = {"type": "object", "properties": {"job": _ref("Job")}}
    add_trigger = {
        "summary": "Add a trigger (the fields of 'duly triggers add', validated as app.schedule does)",
        "parameters": [{"$ref": "#/components/parameters/csrf"}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("TriggerAdd")}}},
        "responses": {
            "201": _json({"type": "object", "required": ["trigger"], "properties": {
                "trigger": _ref("Trigger"),
                "webhook_path": {"type": "string", "description": "webhook triggers: /hooks/<secret>, "
                                                                  "sent in this answer only"}}}, "Created"),
            "400": _json(_ref("Error"), "The body is not strict JSON"),
            **ERRORS,
            "409": _json(_ref("Error"), "A trigger with this name exists (field: name)"),
            "413": _json(_ref("Error"), "Body over 1 MiB"),
            "422": _json(_ref("Error"), "Invalid field (malformed cron, unknown time zone, bad duration...): "
                                        "'field' names it; nothing is stored"),
        },
    }  # fmt: skip
    delete_trigger = {
        "summary": "Delete a trigger (its jobs stay)",
        "parameters": [{"$ref": "#/components/parameters/csrf"}],
        "responses": {"204": {"description": "Deleted"}, **ERRORS, **NOT_FOUND},
    }
    paths: dict[str, Any] = {
        "/api/overview": _get("Counts by queue and state, totals, workers, throughput per minute",
                              _ref("Overview"), MINUTES),
        "/api/queues": _get("Queues with counts, paused flag and latency",
                            {"type": "array", "items": _ref("QueueCounts")}),
        "/api/queues/{name}/pause": _post("Pause a queue (workers stop claiming from it)", {"type": "object"}),
        "/api/queues/{name}/resume": _post("Resume a paused queue", {"type": "object"}),
        "/api/jobs": {**_get("List jobs, newest first, with filters and keyset pagination", _ref("JobList"),
                             JOB_FILTERS, INVALID), "post": enqueue},
        "/api/jobs/{job_id}": {
            **_get("A job with its attempts (errors, tracebacks, logs), progress and result",
                   _ref("JobPage"), None, NOT_FOUND),
            **_post("Delete a job and its attempts", {"type": "object"}, NOT_FOUND, method="delete"),
        },
        "/api/jobs/{job_id}/retry": _post("Retry a failed, cancelled or expired job", job_action,
                                          {**NOT_FOUND, **CONFLICT}),
        "/api/jobs/{job_id}/cancel": _post("Cancel a waiting job, or ask a running one to stop", job_action,
                                           {**NOT_FOUND, **CONFLICT}),
        "/api/jobs/{job_id}/run": _post("Run now: make a waiting job due, retry a final one, or enqueue a "
                                        "succeeded one again (the new job is returned)", job_action,
                                        {**NOT_FOUND, **CONFLICT}),
        "/api/workers": _get("Registered workers", {"type": "array", "items": _ref("Worker")}),
        "/api/throughput": _get("Jobs ended per minute, queue and state", _ref("Throughput"), MINUTES),
        "/api/triggers": {**_get("Stored triggers", {"type": "object", "properties": {
            "available": {"type": "boolean"}, "triggers": {"type": "array", "items": _ref("Trigger")}}}),
            "post": add_trigger},
        "/api/triggers/{name}": {
            **_get("A trigger as listed, its state and its next ten fire times", _ref("TriggerPage"), None,
                   NOT_FOUND),
            "delete": delete_trigger},
        "/api/triggers/{name}/pause": _post("Pause a trigger", {"type": "object"}, NOT_FOUND),
        "/api/triggers/{name}/resume": _post("Resume a trigger", {"type": "object"}, NOT_FOUND),
        "/api/triggers/{name}/run": _post("Run a trigger's job now", {"type": "object"}, NOT_FOUND),
        "/api/openapi.json": _get("This document", {"type": "object"}),
    }  # fmt: skip
    for path, ops in paths.items():
        params = [JOB_ID] if "{job_id}" in path else [QUEUE] if path.startswith("/api/queues/") else \
            [TRIGGER] if "{name}" in path else []  # fmt: skip
        for op in ops.values():
            op["parameters"] = params + op.get("parameters", [])
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "duly dashboard API",
            "version": duly.__version__,
            "description": (
                "Everything the duly dashboard shows and does, plus enqueueing by task name. "
                "With a token configured, send 'Authorization: Bearer <token>'. Requests that "
                "change something and are not Bearer-authenticated need the CSRF token: the "
                "duly_csrf cookie's value in the X-CSRF-Token header."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "parameters": {
                "csrf": {"name": "X-CSRF-Token", "in": "header", "required": False, "schema": {"type": "string"},
                         "description": "the duly_csrf cookie's value; not needed with a Bearer token"},
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
    }
