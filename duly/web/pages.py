"""The dashboard's HTML pages (Jinja2, autoescaped) and their form actions."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from duly.app import App
from duly.core.durations import format_duration
from duly.core.states import JobState
from duly.web.security import CSRF_FIELD, SESSION_COOKIE, safe_next
from duly.web.views import (
    job_page_data,
    jobs_page_data,
    overview_data,
    trigger_action,
    triggers_data,
)

HERE = Path(__file__).parent
#: Seconds between the pages' live refreshes.
REFRESH_SECONDS = 2


def _when(value: str | datetime | None) -> str:
    if value is None:
        return "-"
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return text[:19].replace("T", " ")


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def _duration(seconds: float | None) -> str:
    return "-" if seconds is None else format_duration(seconds)


def make_templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every value from jobs, errors, logs and names is escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=_when, pretty=_pretty, duration=_duration)
    env.globals.update(states=[s.value for s in JobState])
    return Jinja2Templates(env=env)


TEMPLATES = make_templates()


def _app(request: Request) -> App:
    app: App = request.app.state.duly
    return app


def render(request: Request, name: str, status: int = 200, **context: Any) -> Response:
    base = {
        "csrf": request.state.csrf,
        "csrf_field": CSRF_FIELD,
        "logged_in": request.app.state.guard.token is not None,
        "refresh": REFRESH_SECONDS,
        "msg": request.query_params.get("msg"),
        "path": request.url.path,
        "app_name": _app(request).name,
    }
    return TEMPLATES.TemplateResponse(request, name, {**base, **context}, status_code=status)


# -- pages ---------------------------------------------------------------------------


def overview(request: Request) -> Response:
    return render(request, "overview.html", data=overview_data(_app(request), 30))


def jobs(request: Request) -> Response:
    app = _app(request)
    data = jobs_page_data(app, request.query_params)
    queues = app.store.queue_names()
    f = data["filters"]
    keep = {k: v for k, v in (("queue", f["queue"]), ("state", f["state"]), ("task", f["task"]),
                              ("q", f["text"])) if v}  # fmt: skip
    older = "/jobs?" + urlencode({**keep, "before": data["next_before"]}) if data["next_before"] else None
    newest = "/jobs?" + urlencode(keep) if f["before"] else None
    return render(request, "jobs.html", data=data, queues=queues, older=older, newest=newest)


def job(request: Request) -> Response:
    return render(request, "job.html", data=job_page_data(_app(request), request.path_params["job_id"]))


def workers(request: Request) -> Response:
    return render(request, "workers.html", workers=_app(request).workers(), now=_app(request).store.now())


def triggers(request: Request) -> Response:
    return render(request, "triggers.html", data=triggers_data(_app(request)))


# -- form actions ----------------------------------------------------------------------


async def _form_action(request: Request, act: Callable[[], str], back: str) -> Response:
    form = await request.form()
    token = form.get(CSRF_FIELD)
    request.app.state.guard.check_csrf(request, token if isinstance(token, str) else None)
    message = await run_in_threadpool(act)
    nxt = form.get("next")
    target = safe_next(nxt if isinstance(nxt, str) else back)
    sep = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{sep}{urlencode({'msg': message})}", 303)


async def job_action(request: Request) -> Response:
    app = _app(request)
    job_id: int = request.path_params["job_id"]
    verb = request.path_params["verb"]

    def act() -> str:
        if verb == "delete":
            app.delete(job_id)
            return f"job {job_id} deleted"
        done = {"retry": app.retry, "cancel": app.cancel, "run": app.run_now}[verb](job_id)
        if done.id != job_id:
            return f"job {job_id} enqueued again as job {done.id}"
        if verb == "cancel" and done.state is JobState.RUNNING:
            return f"cancel requested for running job {job_id}"
        return f"job {job_id} {verb} done: now {done.state.value}"

    if verb not in ("retry", "cancel", "run", "delete"):
        return Response("unknown action", 404)
    return await _form_action(request, act, "/jobs" if verb == "delete" else f"/jobs/{job_id}")


async def queue_action(request: Request) -> Response:
    app = _app(request)
    name = request.path_params["name"]
    verb = request.url.path.rsplit("/", 1)[1]

    def act() -> str:
        changed = app.pause_queue(name) if verb == "pause" else app.resume_queue(name)
        state = "paused" if verb == "pause" else "resumed"
        return f"queue {name} {state}" if changed else f"queue {name} unchanged"

    return await _form_action(request, act, "/")


async def trigger_post(request: Request) -> Response:
    app = _app(request)
    name = request.path_params["name"]
    verb = request.url.path.rsplit("/", 1)[1]

    def act() -> str:
        done = trigger_action(app, name, verb)
        if verb == "run":
            return f"trigger {name} ran: job {done['job']['id']}"
        return f"trigger {name} {verb}d"

    return await _form_action(request, act, "/triggers")


# -- login -------------------------------------------------------------------------------


async def login(request: Request) -> Response:
    guard = request.app.state.guard
    nxt = safe_next(request.query_params.get("next"))
    if guard.token is None:
        return RedirectResponse(nxt, 303)
    if request.method == "GET":
        return render(request, "login.html", next=nxt, error=None)
    form = await request.form()
    token = form.get(CSRF_FIELD)
    guard.check_csrf(request, token if isinstance(token, str) else None)
    given = form.get("token")
    nxt = safe_next(str(form.get("next") or "/"))
    if not isinstance(given, str) or not guard.check_token(given):
        return render(request, "login.html", status=401, next=nxt, error="wrong token")
    response = RedirectResponse(nxt, 303)
    response.set_cookie(SESSION_COOKIE, guard.new_session(), httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")  # fmt: skip
    return response


async def logout(request: Request) -> Response:
    form = await request.form()
    token = form.get(CSRF_FIELD)
    request.app.state.guard.check_csrf(request, token if isinstance(token, str) else None)
    response = RedirectResponse("/login", 303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def routes() -> list[Route]:
    return [
        Route("/", overview, methods=["GET"]),
        Route("/jobs", jobs, methods=["GET"]),
        Route("/jobs/{job_id:int}", job, methods=["GET"]),
        Route("/jobs/{job_id:int}/{verb}", job_action, methods=["POST"]),
        Route("/queues/{name:path}/pause", queue_action, methods=["POST"]),
        Route("/queues/{name:path}/resume", queue_action, methods=["POST"]),
        Route("/workers", workers, methods=["GET"]),
        Route("/triggers", triggers, methods=["GET"]),
        Route("/triggers/{name:path}/pause", trigger_post, methods=["POST"]),
        Route("/triggers/{name:path}/resume", trigger_post, methods=["POST"]),
        Route("/triggers/{name:path}/run", trigger_post, methods=["POST"]),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
    ]
