"""The application that ``tests/processes/test_worker_processes.py`` runs in real workers.

``duly worker --app tests.apps.procapp:app`` builds ``app`` from the environment::

    DULY_TEST_URL      database URL (required)
    DULY_TEST_PREFIX   table prefix (default ``duly_``)
    DULY_TEST_HOLD     "1": ``hold`` blocks until cancelled (at most 120 s) instead of returning

Tests enqueue from their own App, on which they call ``register(app)`` so that jobs carry the
same task defaults (every task has a 2 s lease, so a dead worker's jobs come back quickly).
Handlers that "block" sleep in 50 ms steps, so they notice ``ctx.cancelled`` promptly.
"""

from __future__ import annotations

import os
import time
from typing import Any

import duly

LEASE = 2.0
STEP = 0.05


def _me(ctx: Any) -> dict[str, Any]:
    return {"pid": os.getpid(), "worker": ctx.worker_id}


def register(app: duly.App) -> duly.App:
    """Register the test tasks on ``app`` (by explicit names) and return it."""

    @app.task(name="noop", lease=LEASE)
    def noop() -> None:
        return None

    @app.task(name="whoami", lease=LEASE)
    def whoami(ctx: Any) -> dict[str, Any]:
        """The pid and worker id that ran the job."""
        return _me(ctx)

    @app.task(name="block", lease=LEASE)
    def block(ctx: Any, seconds: float) -> dict[str, Any]:
        """Sleep up to ``seconds``, returning early once cancelled."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not ctx.cancelled:
            time.sleep(STEP)
        return {**_me(ctx), "cancelled": ctx.cancelled}

    @app.task(name="hold", lease=LEASE)
    def hold(ctx: Any) -> dict[str, Any]:
        """In a worker started with DULY_TEST_HOLD=1, block until cancelled; else return."""
        if os.environ.get("DULY_TEST_HOLD") == "1":
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not ctx.cancelled:
                time.sleep(STEP)
        return _me(ctx)

    @app.task(name="stubborn", lease=LEASE)
    def stubborn(seconds: float) -> dict[str, Any]:
        """Sleep ``seconds`` without ever looking at cancellation (no ``ctx``)."""
        time.sleep(seconds)
        return {"pid": os.getpid()}

    @app.task(name="flaky", lease=LEASE, max_attempts=2, retry=0)
    def flaky(ctx: Any) -> str:
        """Fail the first attempt, succeed the second."""
        if ctx.attempt == 1:
            raise ValueError("first try fails")
        return "second try"

    @app.task(name="fails", lease=LEASE, max_attempts=1)
    def fails() -> None:
        """Fail for good at once."""
        raise ValueError("always fails")

    @app.task(name="crash", lease=LEASE, max_attempts=1)
    def crash(code: int) -> None:
        """End the process running the handler at once, without cleanup."""
        os._exit(code)

    @app.task(name="hang", lease=LEASE, timeout=1, max_attempts=1)
    def hang(pid_path: str) -> None:
        """Write this process's pid to ``pid_path``, then hang far past the 1 s timeout."""
        with open(pid_path + ".tmp", "w", encoding="ascii") as f:
            f.write(str(os.getpid()))
        os.replace(pid_path + ".tmp", pid_path)
        time.sleep(60)

    return app


_app: duly.App | None = None


def __getattr__(name: str) -> Any:
    """``app`` is built on first access, so tests can import ``register`` without the env."""
    global _app
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _app is None:
        _app = register(
            duly.App(
                os.environ["DULY_TEST_URL"], prefix=os.environ.get("DULY_TEST_PREFIX", "duly_")
            )
        )
    return _app
