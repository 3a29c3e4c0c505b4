"""Small helpers shared by tests: store verbs in one line, and a bounded wait."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any, TypeVar

import duly
from duly.core.model import ClaimParams, ErrorInfo, Finish, Held, Job
from duly.core.states import Outcome

T = TypeVar("T")


def claim(app: duly.App, limit: int = 1, worker: str = "w1", queues: list[str] | None = None) -> list[Job]:
    return app.store.claim(ClaimParams(worker, limit, queues))


def claim_one(app: duly.App, worker: str = "w1") -> Job:
    jobs = claim(app, 1, worker)
    assert len(jobs) == 1, f"expected one claimable job, got {len(jobs)}"
    return jobs[0]


def succeed(app: duly.App, job: Job, result: Any = None, log: str | None = None) -> list[Finish]:
    import json

    return app.store.finish([Finish(job.id, job.attempt, Outcome.SUCCEEDED, json.dumps(result), log=log)])


def fail(
    app: duly.App, job: Job, retry_in: float | None, message: str = "boom", log: str | None = None,
    outcome: Outcome = Outcome.FAILED,
) -> list[Finish]:
    err = ErrorInfo("RuntimeError", message, "Traceback ...")
    return app.store.finish([Finish(job.id, job.attempt, outcome, error=err, retry_in=retry_in, log=log)])


def held(job: Job) -> Held:
    return Held(job.id, job.attempt)


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.01, what: str = "") -> T:
    """Poll ``predicate`` until it returns something truthy, for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


class PipeReader:
    """Collects a child's text pipe on a thread, so a test can wait for a line to appear
    (instead of guessing it is there once some side effect is visible)."""

    def __init__(self, pipe: IO[str]) -> None:
        self._pipe = pipe
        self._chunks: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: IO[str]) -> None:
        for line in pipe:
            with self._lock:
                self._chunks.append(line)

    def text(self) -> str:
        with self._lock:
            return "".join(self._chunks)

    def close(self, timeout: float = 30.0) -> str:
        """Wait for the pipe's end (the child has exited) and return everything read."""
        self._thread.join(timeout)
        self._pipe.close()
        return self.text()


class EventLog:
    """The worker's structured events (``duly.runtime.events``) seen while capturing."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def append(self, fields: dict[str, Any]) -> None:
        with self._lock:
            self.events.append(dict(fields))

    def of(self, event: str, **match: Any) -> list[dict[str, Any]]:
        """The events named ``event`` whose fields include ``match``."""
        with self._lock:
            return [
                e for e in self.events if e["event"] == event and all(e.get(k) == v for k, v in match.items())
            ]


@contextmanager
def capture_events() -> Iterator[EventLog]:
    """Collect every worker event (all levels) emitted inside the block, from any thread."""
    import logging

    seen = EventLog()

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            fields = getattr(record, "duly", None)
            if fields:
                seen.append(fields)

    handler = Collect(logging.DEBUG)
    log = logging.getLogger("duly")
    old = log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        yield seen
    finally:
        log.removeHandler(handler)
        log.setLevel(old)
