"""Wake-ups over LISTEN/NOTIFY: one dedicated connection per store, in a daemon thread.

A hint only (DESIGN §7: never trust NOTIFY for correctness): notifications sent while the
connection is down are lost, and workers find that work by polling.
"""

from __future__ import annotations

import logging
import os
import selectors
import threading
from collections.abc import Callable

import psycopg

from duly.store.postgres._conn import connect_kwargs, scrub

log = logging.getLogger("duly.store.postgres")

#: Longest pause between reconnection attempts of the listening connection, in seconds.
MAX_BACKOFF = 5.0
#: How long ``add`` waits for LISTEN to be in place, so no notify after it is missed.
READY_TIMEOUT = 10.0
#: Longest wait of the listening thread for a notification before it looks around again, in
#: seconds. Stopping does not wait for it: a byte on a pipe wakes the thread at once.
POLL = 5.0
#: How long ``close``/``unsubscribe`` wait for the listening thread to end.
JOIN_TIMEOUT = 2.0


class Listener:
    """Calls every registered callback with the payload (a queue name) of each notification."""

    def __init__(self, url: str, listen_sql: str) -> None:
        self._url = url
        self._listen_sql = listen_sql
        self._callbacks: list[Callable[[str], None]] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop: _Stop | None = None  # made with the thread (a pipe: not for idle stores)
        self._ready = threading.Event()

    def add(self, callback: Callable[[str], None]) -> Callable[[], None]:
        with self._lock:
            self._callbacks.append(callback)
            if self._thread is None:
                self._stop = _Stop()
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
        if self._stop is not None:
            self._stop.set()
        return thread

    def _run(self, stop: _Stop, ready: threading.Event) -> None:
        try:
            self._listen(stop, ready)
        finally:
            stop.close()

    def _listen(self, stop: _Stop, ready: threading.Event) -> None:
        backoff = 0.1
        while not stop.is_set():
            try:
                with psycopg.connect(self._url, **connect_kwargs(self._url)) as conn:
                    conn.execute(self._listen_sql)
                    ready.set()
                    backoff = 0.1
                    with selectors.DefaultSelector() as sel:
                        sel.register(conn.fileno(), selectors.EVENT_READ)
                        sel.register(stop.fileno(), selectors.EVENT_READ)
                        while not stop.is_set():
                            for note in conn.notifies(timeout=0):  # what has arrived, at once
                                self._dispatch(note.payload)
                            sel.select(POLL)  # a notification, the connection's end, or stop
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
        thread.join(timeout=JOIN_TIMEOUT)


class _Stop:
    """A stop flag that also wakes a thread waiting in ``select`` (a byte on a pipe)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._r, self._w = os.pipe()
        os.set_blocking(self._w, False)
        self._lock = threading.Lock()
        self._closed = False

    def fileno(self) -> int:
        return self._r

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        self._event.set()
        with self._lock:
            if not self._closed:
                try:
                    os.write(self._w, b"x")
                except BlockingIOError:  # the pipe is full: the thread is woken already
                    pass

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)

    def close(self) -> None:
        """By the listening thread when it ends."""
        with self._lock:
            if not self._closed:
                self._closed = True
                os.close(self._r)
                os.close(self._w)
