"""Wake-ups over LISTEN/NOTIFY: one dedicated connection per store, in a daemon thread.

A hint only (DESIGN §7: never trust NOTIFY for correctness): notifications sent while the
connection is down are lost, and workers find that work by polling.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg

from duly.store.postgres._conn import connect_kwargs, scrub

log = logging.getLogger("duly.store.postgres")

#: Longest pause between reconnection attempts of the listening connection, in seconds.
MAX_BACKOFF = 5.0
#: How long ``add`` waits for LISTEN to be in place, so no notify after it is missed.
READY_TIMEOUT = 10.0
#: How often the listening thread looks at its stop flag, in seconds.
POLL = 0.5


class Listener:
    """Calls every registered callback with the payload (a queue name) of each notification."""

    def __init__(self, url: str, listen_sql: str) -> None:
        self._url = url
        self._listen_sql = listen_sql
        self._callbacks: list[Callable[[str], None]] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()

    def add(self, callback: Callable[[str], None]) -> Callable[[], None]:
        with self._lock:
            self._callbacks.append(callback)
            if self._thread is None:
                self._stop = threading.Event()
                self._ready = threading.Event()
                self._thread = threading.Thread(
                    target=self._run, args=(self._stop, self._ready), name="duly-pg-listen",
                    daemon=True,
                )  # fmt: skip
                self._thread.start()
            ready = self._ready
        ready.wait(READY_TIMEOUT)
        done = threading.Event()

        def unsubscribe() -> None:
            if done.is_set():
                return
            done.set()
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)
                thread = None if self._callbacks else self._detach()
            _join(thread)

        return unsubscribe

    def close(self) -> None:
        with self._lock:
            self._callbacks.clear()
            thread = self._detach()
        _join(thread)

    def _detach(self) -> threading.Thread | None:
        """Tell the running thread to stop (caller holds the lock); return it to join."""
        thread, self._thread = self._thread, None
        self._stop.set()
        return thread

    def _run(self, stop: threading.Event, ready: threading.Event) -> None:
        backoff = 0.1
        while not stop.is_set():
            try:
                with psycopg.connect(self._url, **connect_kwargs(self._url)) as conn:
                    conn.execute(self._listen_sql)
                    ready.set()
                    backoff = 0.1
                    while not stop.is_set():
                        for note in conn.notifies(timeout=POLL):
                            self._dispatch(note.payload)
            except psycopg.Error as exc:
                if stop.is_set():
                    break
                log.warning(
                    "duly: listening connection lost (%s); reconnecting in %.1fs",
                    scrub(str(exc).strip(), self._url), backoff,
                )  # fmt: skip
                stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    def _dispatch(self, queue: str) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
        for cb in callbacks:
            try:
                cb(queue)
            except Exception:  # a callback's bug must not stop the wake-ups of the others
                log.exception("duly: wake-up callback %r failed", cb)


def _join(thread: threading.Thread | None) -> None:
    if thread is not None and thread is not threading.current_thread():
        thread.join(timeout=POLL * 4 + 1)
