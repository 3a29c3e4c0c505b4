"""Serving the dashboard with uvicorn: in the foreground (``duly dashboard``) or in a
thread (``duly demo``, tests). Binding anything but a loopback address needs a token."""

from __future__ import annotations

import ipaddress
import threading
import time
from typing import Any

import uvicorn

from duly.app import App
from duly.core.errors import ConfigurationError
from duly.web.app import create_app


class BindRefused(ConfigurationError):
    """A non-loopback address without a token: the dashboard would be open to the network."""


def is_loopback(host: str) -> bool:
    name = host.strip("[]")
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_bind(host: str, token: str | None) -> None:
    if not is_loopback(host) and not token:
        raise BindRefused(
            f"binding the dashboard to {host!r} would expose jobs, payloads and actions to the "
            "network without authentication; pass --token (or set DULY_DASHBOARD_TOKEN), "
            "or bind 127.0.0.1 and reach it through an SSH tunnel or an authenticating proxy"
        )


def build(app: App, host: str, token: str | None) -> Any:
    check_bind(host, token)
    # On loopback without a token, only loopback Host headers are accepted (DNS rebinding).
    hosts = None if token else {"localhost", "127.0.0.1", "[::1]", "::1"}
    return create_app(app, token=token, allowed_hosts=hosts)


def serve(app: App, host: str = "127.0.0.1", port: int = 8080, token: str | None = None,
          log_level: str = "warning") -> None:  # fmt: skip
    """Serve until interrupted (Ctrl-C)."""
    uvicorn.run(build(app, host, token), host=host, port=port, log_level=log_level,
                proxy_headers=False, server_header=False)  # fmt: skip


class ThreadedServer(uvicorn.Server):
    """A uvicorn server running in a daemon thread. ``should_exit = True`` (or ``stop()``)
    ends it; ``url`` is where it listens (``port=0`` picks a free port)."""

    thread: threading.Thread  # uvicorn leaves signals alone outside the main thread

    @property
    def port(self) -> int:
        for server in getattr(self, "servers", []):
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return int(self.config.port)

    @property
    def url(self) -> str:
        host = self.config.host
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        self.should_exit = True
        self.thread.join(timeout)


def serve_in_thread(app: App, host: str = "127.0.0.1", port: int = 8080, token: str | None = None,
                    log_level: str = "warning", timeout: float = 10.0) -> ThreadedServer:  # fmt: skip
    """Start the dashboard in a background thread; returns once it accepts connections."""
    config = uvicorn.Config(build(app, host, token), host=host, port=port, log_level=log_level,
                            proxy_headers=False, server_header=False, lifespan="off")  # fmt: skip
    server = ThreadedServer(config)
    server.thread = threading.Thread(target=server.run, name="duly-dashboard", daemon=True)
    server.thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not server.thread.is_alive():
            raise RuntimeError(f"the dashboard could not start on {host}:{port} (port in use?)")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the dashboard did not start on {host}:{port} within {timeout}s")
        time.sleep(0.01)
    return server
