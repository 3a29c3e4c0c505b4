"""The dashboard's Starlette application: pages, the JSON API, /metrics, static files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from duly.app import App
from duly.core.errors import (
    DulyError,
    DuplicateKey,
    DuplicateTrigger,
    InvalidArguments,
    InvalidOption,
    InvalidTransition,
    JobNotFound,
)
from duly.web import api, hooks, pages
from duly.web.metrics import metrics_endpoint, registry_for
from duly.web.security import CsrfFailure, Guard, SecurityMiddleware

HERE = Path(__file__).parent


def _status(exc: Exception) -> int:
    if isinstance(exc, CsrfFailure):
        return 403
    if isinstance(exc, JobNotFound) or type(exc).__name__ == "TriggerNotFound":
        return 404
    if isinstance(exc, (InvalidTransition, DuplicateKey, DuplicateTrigger)):
        return 409
    if isinstance(exc, (InvalidOption, InvalidArguments, ValueError)):
        return 422
    return 500


async def on_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        status, message = exc.status_code, str(exc.detail)
    else:
        status, message = _status(exc), str(exc)
    if request.url.path.startswith(("/api", "/metrics")):
        field = getattr(exc, "field", None)  # an InvalidOption naming the option at fault
        return JSONResponse({"error": message} | ({"field": field} if field else {}), status)
    if not hasattr(request.state, "csrf"):
        return PlainTextResponse(message, status)
    return pages.render(request, "error.html", status=status, status_code=status, message=message)


def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


def create_app(app: App, *, token: str | None = None, allowed_hosts: set[str] | None = None) -> Starlette:
    """The dashboard for ``app``. ``token``: required to log in and for API calls (Bearer);
    ``allowed_hosts``: accepted Host headers (None: any). Bind checks are the server's
    (``duly.web.server``): build the app through it unless you serve it yourself."""
    guard = Guard(token, allowed_hosts)
    routes: list[Any] = [
        *api.routes(),
        *pages.routes(),
        *hooks.routes(),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    handlers: dict[Any, Any] = {
        HTTPException: on_error,
        DulyError: on_error,
        CsrfFailure: on_error,
        ValueError: on_error,
    }
    web = Starlette(routes=routes, middleware=[Middleware(SecurityMiddleware, guard=guard)],
                    exception_handlers=handlers)  # fmt: skip
    web.state.duly = app
    web.state.guard = guard
    web.state.metrics_registry = registry_for(app)  # its cumulative totals start now
    return web
