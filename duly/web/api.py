"""The JSON API under ``/api`` (documented by ``/api/openapi.json``): everything the pages
show and do, plus enqueueing by task name. Endpoints are plain functions: Starlette runs
them in its thread pool, so the store's blocking calls never stall the event loop."""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from duly.app import App
from duly.core.errors import InvalidOption
from duly.web import serialize
from duly.web.views import (
    add_trigger,
    delete_trigger,
    job_page_data,
    jobs_page_data,
    overview_data,
    trigger_action,
    trigger_data,
    triggers_data,
)

MAX_BODY = 1_048_576


def _app(request: Request) -> App:
    app: App = request.app.state.duly
    return app


def _guarded(request: Request) -> None:
    request.app.state.guard.check_csrf(request)


def _int(value: str | None, name: str, default: int, lo: int, hi: int) -> int:
    if value is None or value == "":
        return default
    try:
        n = int(value)
    except ValueError:
        raise InvalidOption(f"{name} must be an integer, got {value!r}") from None
    if not lo <= n <= hi:
        raise InvalidOption(f"{name} must be between {lo} and {hi}, got {n}")
    return n


def overview(request: Request) -> Response:
    minutes = _int(request.query_params.get("minutes"), "minutes", 30, 1, 1440)
    return JSONResponse(overview_data(_app(request), minutes))


def queues(request: Request) -> Response:
    return JSONResponse(overview_data(_app(request), 15)["queues"])


def queue_action(request: Request) -> Response:
    _guarded(request)
    name = request.path_params["name"]
    app = _app(request)
    pause = request.url.path.endswith("/pause")
    changed = app.pause_queue(name) if pause else app.resume_queue(name)
    return JSONResponse({"queue": name, "paused": pause, "changed": changed})


def jobs(request: Request) -> Response:
    return JSONResponse(jobs_page_data(_app(request), request.query_params))


def job(request: Request) -> Response:
    return JSONResponse(job_page_data(_app(request), request.path_params["job_id"]))


ENQUEUE_FIELDS = {
    "task", "args", "kwargs", "queue", "priority", "run_at", "run_in", "expires_at", "expires_in",
    "max_attempts", "key", "mode",
}  # fmt: skip


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object with a key given twice is refused (Python's json would keep the last)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(f"duplicate key {key!r} in a JSON object of the body")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def parse_body(raw: bytes) -> Any:
    """Strict JSON: no duplicate keys, no NaN or Infinity; ValueError says what is wrong."""
    try:
        return json.loads(raw or b"null", object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except _DuplicateKey:
        raise
    except RecursionError:
        raise ValueError("body is not JSON: nested too deeply") from None
    except ValueError as exc:
        raise ValueError(f"body is not JSON: {exc}") from None


async def _json_object(request: Request, required: str) -> dict[str, Any] | Response:
    """The request's body as a JSON object, or the error response (413, 400, 422)."""
    raw = await request.body()
    if len(raw) > MAX_BODY:
        return JSONResponse({"error": f"request body over {MAX_BODY} bytes"}, 413)
    try:
        body = parse_body(raw)
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, 400)
    if not isinstance(body, dict):
        return JSONResponse({"error": f"body must be a JSON object with at least {required}"}, 422)
    return body


async def enqueue(request: Request) -> Response:
    request.app.state.guard.check_csrf(request)
    body = await _json_object(request, "'task'")
    if isinstance(body, Response):
        return body
    unknown = set(body) - ENQUEUE_FIELDS
    if unknown:
        return JSONResponse({"error": f"unknown field(s): {', '.join(sorted(unknown))}"}, 422)
    task = body.pop("task", None)
    args = body.pop("args", [])
    kwargs = body.pop("kwargs", {})
    if not isinstance(task, str):
        return JSONResponse({"error": "'task' (a task name) is required"}, 422)
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        return JSONResponse({"error": "'args' must be a JSON array and 'kwargs' a JSON object"}, 422)
    options = {k: v for k, v in body.items() if v is not None}
    result = await run_in_threadpool(_app(request).enqueue_result, task, args, kwargs, **options)
    return JSONResponse({"job": serialize.job(result.job), "created": result.created}, 201 if result.created else 200)


def job_action(request: Request) -> Response:
    _guarded(request)
    app = _app(request)
    job_id = request.path_params["job_id"]
    if request.method == "DELETE":
        app.delete(job_id)
        return JSONResponse({"deleted": job_id})
    verb = request.url.path.rsplit("/", 1)[1]
    done = {"retry": app.retry, "cancel": app.cancel, "run": app.run_now}[verb](job_id)
    return JSONResponse({"job": serialize.job(done)})


def workers(request: Request) -> Response:
    return JSONResponse([serialize.worker(w) for w in _app(request).workers()])


def throughput(request: Request) -> Response:
    minutes = _int(request.query_params.get("minutes"), "minutes", 15, 1, 1440)
    app = _app(request)
    points = app.throughput(minutes)
    return JSONResponse({
        "minutes": minutes,
        "points": [{"queue": p.queue, "minute": p.minute.isoformat(), "state": p.state.value, "count": p.count}
                   for p in points],
    })  # fmt: skip


def triggers(request: Request) -> Response:
    return JSONResponse(triggers_data(_app(request)))


def trigger_post(request: Request) -> Response:
    _guarded(request)
    verb = request.url.path.rsplit("/", 1)[1]
    return JSONResponse(trigger_action(_app(request), request.path_params["name"], verb))


async def trigger_add(request: Request) -> Response:
    """POST /api/triggers: the fields of ``duly triggers add``, validated by app.schedule."""
    _guarded(request)
    body = await _json_object(request, "'name', 'task' and a rule")
    if isinstance(body, Response):
        return body
    return JSONResponse(await run_in_threadpool(add_trigger, _app(request), body), 201)


def trigger_show(request: Request) -> Response:
    return JSONResponse(trigger_data(_app(request), request.path_params["name"]))


def trigger_delete(request: Request) -> Response:
    _guarded(request)
    delete_trigger(_app(request), request.path_params["name"])
    return Response(status_code=204)


def openapi(request: Request) -> Response:
    from duly.web.openapi import document

    return JSONResponse(document())


def routes() -> list[Route]:
    return [
        Route("/api/openapi.json", openapi, methods=["GET"]),
        Route("/api/overview", overview, methods=["GET"]),
        Route("/api/queues", queues, methods=["GET"]),
        Route("/api/queues/{name:path}/pause", queue_action, methods=["POST"]),
        Route("/api/queues/{name:path}/resume", queue_action, methods=["POST"]),
        Route("/api/jobs", jobs, methods=["GET"]),
        Route("/api/jobs", enqueue, methods=["POST"]),
        Route("/api/jobs/{job_id:int}", job, methods=["GET"]),
        Route("/api/jobs/{job_id:int}", job_action, methods=["DELETE"]),
        Route("/api/jobs/{job_id:int}/retry", job_action, methods=["POST"]),
        Route("/api/jobs/{job_id:int}/cancel", job_action, methods=["POST"]),
        Route("/api/jobs/{job_id:int}/run", job_action, methods=["POST"]),
        Route("/api/workers", workers, methods=["GET"]),
        Route("/api/throughput", throughput, methods=["GET"]),
        Route("/api/triggers", triggers, methods=["GET"]),
        Route("/api/triggers", trigger_add, methods=["POST"]),
        Route("/api/triggers/{name:path}/pause", trigger_post, methods=["POST"]),
        Route("/api/triggers/{name:path}/resume", trigger_post, methods=["POST"]),
        Route("/api/triggers/{name:path}/run", trigger_post, methods=["POST"]),
        # after the verbs: a name ending in /pause, /resume or /run is still reachable here
        Route("/api/triggers/{name:path}", trigger_show, methods=["GET"]),
        Route("/api/triggers/{name:path}", trigger_delete, methods=["DELETE"]),
    ]

