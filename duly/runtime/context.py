"""What a running handler sees: ``ctx`` (the job, its attempt, logs, progress, cancellation)."""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from datetime import datetime
from typing import Any

from duly.core.clock import Clock
from duly.core.model import Job

#: Largest captured log of one attempt; the rest is cut with a note.
MAX_LOG_CHARS = 64 * 1024

_event_lock = threading.Lock()
_current: contextvars.ContextVar[JobContext | None] = contextvars.ContextVar("duly_job", default=None)


def current() -> JobContext:
    """The context of the job running in this thread or task; RuntimeError outside a job."""
    ctx = _current.get()
    if ctx is None:
        raise RuntimeError("duly.context() called outside a running job")
    return ctx


class JobContext:
    """Passed to handlers whose first parameter is named ``ctx``; also ``duly.context()``."""

    def __init__(self, job: Job, worker_id: str, clock: Clock, leased_at: float | None = None) -> None:
        self.job = job
        self.worker_id = worker_id
        self._clock = clock
        self._cancelled = False
        self._cancel: threading.Event | None = None  # made on first wait: most jobs never wait
        self.cancel_reason: str | None = None
        self._log: list[str] = []
        self._log_size = 0
        self._truncated = False
        self.progress_done: int | None = None
        self.progress_total: int | None = None
        self.progress_dirty = False
        self.progress_changed_at = time.monotonic()
        self.started_monotonic = time.monotonic()
        #: When (monotonic) the claim or the last successful heartbeat that set this job's
        #: lease was sent: the worker stops the handler before ``lease_from + lease`` passes.
        self.lease_from = self.started_monotonic if leased_at is None else leased_at
        self.finished = False  # set by the one end of this attempt (handler, timeout, abandon)
        self.timer: Any = None  # the loop's timeout handle of a sync handler
        self.done: Any = None  # the worker's callback for this attempt's outcome

    @property
    def attempt(self) -> int:
        return self.job.attempt

    @property
    def args(self) -> list[Any]:
        return self.job.args

    @property
    def cancelled(self) -> bool:
        """True once the job was cancelled, timed out, stalled or the worker is shutting down.
        Sync handlers should check it in their loops and return early."""
        return self._cancelled

    def wait_cancelled(self, timeout: float | None = None) -> bool:
        """Block until cancelled (or ``timeout``); a cancellable sleep for sync handlers."""
        event = self._cancel
        if event is None:
            with _event_lock:
                if self._cancel is None:
                    self._cancel = threading.Event()
                    if self._cancelled:
                        self._cancel.set()
                event = self._cancel
        return event.wait(timeout)

    def now(self) -> datetime:
        return self._clock.now()

    def log(self, message: str, *args: Any) -> None:
        """Append a line to this attempt's captured log."""
        text = message % args if args else message
        self._append(f"{self._clock.now().strftime('%H:%M:%S.%f')[:-3]} {text}")

    def progress(self, done: int, total: int | None = None) -> None:
        """Report progress; persisted within a second and shown in the CLI and dashboard."""
        if done < 0 or (total is not None and (total < 0 or done > total)):
            raise ValueError(f"invalid progress {done}/{total}: need 0 <= done <= total")
        if (done, total) != (self.progress_done, self.progress_total):
            self.progress_done, self.progress_total = done, total
            self.progress_dirty = True
            self.progress_changed_at = time.monotonic()

    def request_cancel(self, reason: str) -> None:
        if not self._cancelled:
            self.cancel_reason = reason
            self._cancelled = True
            with _event_lock:
                if self._cancel is not None:
                    self._cancel.set()

    def _append(self, line: str) -> None:
        if self._truncated:
            return
        if self._log_size + len(line) + 1 > MAX_LOG_CHARS:
            self._log.append(f"... log cut at {MAX_LOG_CHARS} characters")
            self._truncated = True
            return
        self._log.append(line)
        self._log_size += len(line) + 1

    def log_text(self) -> str | None:
        return "\n".join(self._log) + "\n" if self._log else None


class CaptureHandler(logging.Handler):
    """Copies every log record emitted while a job runs into that job's attempt log."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        ctx = _current.get()
        if ctx is None or record.name.startswith("duly."):
            return
        try:
            ctx._append(self.format(record))
        except Exception:  # noqa: BLE001 - logging must never break a job
            self.handleError(record)


_capture_lock = threading.Lock()
_capture_users = 0
_capture = CaptureHandler()


def install_capture() -> None:
    global _capture_users
    with _capture_lock:
        if _capture_users == 0:
            logging.getLogger().addHandler(_capture)
        _capture_users += 1


def uninstall_capture() -> None:
    global _capture_users
    with _capture_lock:
        _capture_users -= 1
        if _capture_users == 0:
            logging.getLogger().removeHandler(_capture)
