"""The application the fault-injection suite (``tests/chaos``) runs in real worker processes.

``duly worker --app tests.apps.chaosapp:app`` builds ``app`` from the environment::

    DULY_TEST_URL        database URL (required)
    DULY_TEST_PREFIX     table prefix (default ``duly_``)
    DULY_CHAOS_LEDGER    the ledger's SQLite file (tests.chaos.ledger); required by ``work``
    DULY_CHAOS_CRON      "1": declare three ``tick`` triggers, cron every second, one per catch-up
                         policy: ``every-second`` ("all"), ``every-second-skip``, ``every-second-latest``;
                         a policy name ("all"): only that policy's trigger

Every task has a short lease (``LEASE``), so the jobs of a killed or paused worker come back
within seconds. The harness enqueues from its own App on which it calls ``register(app)``, so
jobs carry the same defaults the workers know.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import duly

LEASE = 2.0
#: DULY_CHAOS_CRON's triggers (check 7): name -> catch-up policy.
CRON_TRIGGERS = {
    "every-second": "all",
    "every-second-skip": "skip",
    "every-second-latest": "latest",
}
_ledger: Any = None
_leaked: list[bytes] = []


def ledger() -> Any:
    global _ledger
    if _ledger is None:
        from tests.chaos.ledger import Ledger

        _ledger = Ledger(os.environ["DULY_CHAOS_LEDGER"])
    return _ledger


def register(app: duly.App) -> duly.App:
    """Register the chaos tasks on ``app`` (by explicit names) and return it."""

    @app.task(name="work", lease=LEASE, max_attempts=1000)
    def work(ctx: Any, payload: str, ms: float = 0.0, fail_on_attempt: int = 0) -> str:
        """Record start and end in the ledger around ``ms`` of sleep. Raises on attempt
        ``fail_on_attempt`` (after its sleep), to test a stale holder's failure."""
        book = ledger()
        book.run(payload, ctx.job.id, ctx.job.attempt, "start")
        if ms:
            time.sleep(ms / 1000)
        if ctx.job.attempt == fail_on_attempt:
            raise RuntimeError(f"failing attempt {ctx.job.attempt} on purpose")
        book.run(payload, ctx.job.id, ctx.job.attempt, "end")
        return payload

    @app.task(name="tick", lease=LEASE, max_attempts=1000)
    def tick(ctx: Any) -> None:
        return None

    # -- handlers that misbehave (check 8) ------------------------------------------------

    @app.task(name="hang", lease=LEASE, timeout=1, max_attempts=1)
    def hang() -> None:
        """Never returns, ignores cancellation."""
        threading.Event().wait()

    @app.task(name="leak", lease=LEASE, timeout=1.5, max_attempts=1)
    def leak() -> None:
        """Allocates memory and never frees it, until it is stopped."""
        while True:
            _leaked.append(bytearray(4 * 1024 * 1024))
            time.sleep(0.02)

    @app.task(name="leak_once", lease=LEASE, max_attempts=1)
    def leak_once(mb: int) -> int:
        """Leaks ``mb`` MiB into a module global and returns."""
        _leaked.append(bytearray(mb * 1024 * 1024))
        return len(_leaked)

    @app.task(name="exit", lease=LEASE, max_attempts=1)
    def exit_(code: int) -> None:
        os._exit(code)

    @app.task(name="unpicklable_error", lease=LEASE, max_attempts=1)
    def unpicklable_error() -> None:
        raise Unpicklable("state that cannot be pickled", threading.Lock())

    @app.task(name="unpicklable_result", lease=LEASE, max_attempts=1)
    def unpicklable_result() -> Any:
        return threading.Lock()

    cron = os.environ.get("DULY_CHAOS_CRON")
    if cron:
        for name, policy in CRON_TRIGGERS.items():
            if cron != "1" and policy != cron:
                continue
            app.periodic(cron="* * * * * *", name=name, catch_up=policy, catch_up_limit=1000)(tick)

    return app


class Unpicklable(Exception):
    """An exception whose arguments hold a lock (pickling it fails)."""

    def __init__(self, message: str, lock: Any) -> None:
        super().__init__(message, lock)
        self.lock = lock


_app: duly.App | None = None


def __getattr__(name: str) -> Any:
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
