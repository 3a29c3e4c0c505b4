"""Webhook triggers: ``POST /hooks/<secret>`` fires the trigger that holds the secret.

The secret in the URL is the credential (no login, no CSRF token: webhooks come from other
machines); an unknown or paused trigger's secret answers 404. The body is passed to the job as
the event's data: parsed when it is JSON, else kept as text (at most 1 MiB).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from duly.core.errors import TriggerNotFound

MAX_BODY = 1024 * 1024


async def fire(request: Request) -> Response:
    secret = request.path_params["secret"]
    body = await request.body()
    if len(body) > MAX_BODY:
        return JSONResponse({"error": f"body over {MAX_BODY} bytes"}, 413)
    payload: Any = None
    if body:
        text = body.decode("utf-8", errors="replace")
        try:
            payload = json.loads(text) if "json" in request.headers.get("content-type", "") else text
        except json.JSONDecodeError:
            return JSONResponse({"error": "the body is not valid JSON"}, 400)
    app = request.app.state.duly
    try:
        ids = await run_in_threadpool(app.fire_webhook, secret, payload)
    except TriggerNotFound:
        return JSONResponse({"error": "no active webhook trigger has this secret"}, 404)
    return JSONResponse({"jobs": ids}, 202)


def routes() -> list[Route]:
    return [Route("/hooks/{secret}", fire, methods=["POST"])]
