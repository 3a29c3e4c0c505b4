"""The OpenAPI 3.1 document of the JSON API (served at ``/api/openapi.json``).

Written out by hand, next to the endpoints in ``duly.web.api``; ``tests/web/test_api.py``
checks that every route is documented and every documented path exists.
"""

from __future__ import annotations

from typing import Any

import duly
from duly.core.states import JobState

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
    "Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
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
    "Trigger": {"type": "object", "description": "A stored trigger (webhook secrets shown as ***)."},
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
        "/api/triggers": _get("Stored triggers", {"type": "object", "properties": {
            "available": {"type": "boolean"}, "triggers": {"type": "array", "items": _ref("Trigger")}}}),
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
