"""Authentication, CSRF protection, host checks and security headers of the dashboard.

* **Binding.** The server binds 127.0.0.1 unless told otherwise; any other address needs a
  token (``duly.web.server.check_bind``).
* **Authentication** (only when a token is configured): ``Authorization: Bearer <token>``
  for API clients, or a session cookie set by the login form (an HMAC of a random nonce
  keyed by the token: changing the token logs everyone out). Without it, pages redirect to
  ``/login`` and ``/api/*`` and ``/metrics`` answer 401.
* **CSRF.** Every state-changing request (POST, PUT, PATCH, DELETE) that is not
  authenticated by a Bearer header must carry the CSRF token, as the ``X-CSRF-Token``
  header or the ``csrf_token`` form field, equal to the ``duly_csrf`` cookie (double
  submit; the cookie is HttpOnly and SameSite=Strict, pages carry the token in a meta tag
  and hidden fields), and an ``Origin`` header, when sent, must be this server's.
* **Host check.** Bound to loopback without a token, only ``localhost``, ``127.0.0.1`` and
  ``[::1]`` are accepted as Host, so a DNS-rebinding page cannot read the dashboard.
* **Headers** on every response: a strict Content-Security-Policy (``default-src 'self'``,
  no inline script or style), ``X-Content-Type-Options: nosniff``, ``X-Frame-Options:
  DENY``, ``Referrer-Policy: same-origin``, ``Cache-Control: no-store``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSRF_COOKIE = "duly_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SESSION_COOKIE = "duly_session"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})
#: Paths reachable without logging in (the login form itself and static files).
PUBLIC_PREFIXES = ("/static/", "/login", "/healthz", "/hooks/")  # hooks: the URL's secret is the credential

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}


class CsrfFailure(Exception):
    pass


class Guard:
    """The dashboard's security policy, shared by the middleware and the action endpoints."""

    def __init__(self, token: str | None, allowed_hosts: set[str] | None) -> None:
        self.token = token
        self.allowed_hosts = allowed_hosts
        self._key = hashlib.sha256(b"duly-session\0" + token.encode()).digest() if token else b""

    # -- sessions ---------------------------------------------------------------------

    def check_token(self, given: str) -> bool:
        return self.token is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def new_session(self) -> str:
        nonce = secrets.token_urlsafe(18)
        return nonce + "." + self._sign(nonce)

    def _sign(self, nonce: str) -> str:
        return hmac.new(self._key, nonce.encode(), hashlib.sha256).hexdigest()

    def session_ok(self, value: str | None) -> bool:
        if not value or "." not in value or not self.token:
            return False
        nonce, sig = value.rsplit(".", 1)
        return hmac.compare_digest(sig, self._sign(nonce))

    def bearer_ok(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        return self.token is not None and scheme.lower() == "bearer" and self.check_token(value.strip())

    def authenticated(self, request: Request) -> bool:
        if self.token is None:
            return True
        return self.bearer_ok(request) or self.session_ok(request.cookies.get(SESSION_COOKIE))

    # -- CSRF -------------------------------------------------------------------------

    def check_csrf(self, request: Request, form_token: str | None = None) -> None:
        """Raise CsrfFailure unless this unsafe request is same-origin and carries the token."""
        if self.bearer_ok(request):
            return  # no ambient credentials: a Bearer header is never sent by a forged form
        origin = request.headers.get("origin")
        if origin is not None and not _same_origin(origin, request):
            raise CsrfFailure(f"cross-origin request from {origin!r} refused")
        cookie = request.cookies.get(CSRF_COOKIE)
        given = request.headers.get(CSRF_HEADER) or form_token
        if not cookie or not given or not hmac.compare_digest(cookie.encode(), given.encode()):
            raise CsrfFailure("CSRF token missing or wrong: reload the page and try again")

    def host_ok(self, request: Request) -> bool:
        if self.allowed_hosts is None:
            return True
        host = request.headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return name.lower() in self.allowed_hosts


def _same_origin(origin: str, request: Request) -> bool:
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    return parts.netloc.lower() == request.headers.get("host", "").lower()


class SecurityMiddleware:
    """Host check, authentication, the CSRF cookie and security headers (pure ASGI)."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        csrf = request.cookies.get(CSRF_COOKIE)
        new_csrf = None
        if not csrf or len(csrf) < 20:
            new_csrf = csrf = secrets.token_urlsafe(32)
        scope.setdefault("state", {})["csrf"] = csrf
        secure = request.url.scheme == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                present = {k.lower() for k, _ in headers}
                for name, value in SECURITY_HEADERS.items():
                    if name.encode() not in present:
                        headers.append((name.encode(), value.encode()))
                if new_csrf is not None:
                    cookie = f"{CSRF_COOKIE}={new_csrf}; Path=/; HttpOnly; SameSite=Strict"
                    headers.append((b"set-cookie", (cookie + ("; Secure" if secure else "")).encode()))
            await send(message)

        denial = self._deny(request)
        if denial is not None:
            await denial(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    def _deny(self, request: Request) -> Response | None:
        path = request.url.path
        if not self.guard.host_ok(request):
            return PlainTextResponse("unexpected Host header (DNS rebinding protection)", 400)
        if path.startswith(PUBLIC_PREFIXES) or self.guard.authenticated(request):
            return None
        if path.startswith(("/api/", "/metrics")) or path == "/api":
            return JSONResponse(
                {"error": "authentication required: send 'Authorization: Bearer <token>'"},
                401, headers={"www-authenticate": 'Bearer realm="duly"'},
            )  # fmt: skip
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='/')}", 303)


def safe_next(target: str | None) -> str:
    """A local path to go back to after logging in (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target

