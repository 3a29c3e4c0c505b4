"""A cross-process doorbell for one SQLite file.

Each listening process binds a Unix datagram socket in a folder derived from the database's
absolute path; an enqueue sends one byte to every socket there, this process's own
included. A ring is a hint: listeners still poll, so a lost ring only delays a job until the
next poll. A listener's callback always runs on that listener's thread, never in the thread
that rang (which may be inside a transaction of its own): a worker claims from there.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import tempfile
import threading
from collections.abc import Callable
from typing import Any


def _folder(db_path: str) -> str:
    """The folder of the database's doorbell sockets (every entry in it is rung)."""
    digest = hashlib.sha1(os.path.abspath(db_path).encode(), usedforsecurity=False).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"duly-wake-{os.getuid()}", digest)


def writer_lock_path(db_path: str) -> str:
    """The file whose ``flock`` gives duly's processes their turns at writing the database
    (``_conn.WriterTurns``): beside its doorbell folder, never in it."""
    return _folder(db_path) + ".writer.lock"


class Doorbell:
    def __init__(self, db_path: str) -> None:
        self.enabled = db_path != ":memory:" and hasattr(socket, "AF_UNIX")
        self.folder = _folder(db_path) if self.enabled else ""
        self._sender: socket.socket | None = None
        self._lock = threading.Lock()
        self._listeners: list[tuple[socket.socket, str, threading.Thread]] = []
        self._local: list[_LocalListener] = []  # without sockets (":memory:", no AF_UNIX)

    def ring(self) -> None:
        if not self.enabled:
            for listener in list(self._local):
                listener.bell.set()
            return
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return
        with self._lock:
            if self._sender is None:
                self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sender.setblocking(False)
            for name in names:
                path = os.path.join(self.folder, name)
                try:
                    self._sender.sendto(b"!", path)
                except BlockingIOError:
                    pass  # its buffer is full: it has rings pending already
                except (ConnectionRefusedError, FileNotFoundError):
                    with contextlib.suppress(OSError):
                        os.unlink(path)  # a listener that died without cleaning up
                except OSError:
                    pass

    def listen(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call ``callback("*")``, on a thread of this listener's, on each ring from any
        process (this one included); rings that arrive while it runs may be merged."""
        if not self.enabled:
            return self._listen_locally(callback)
        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        path = os.path.join(self.folder, f"{os.getpid()}-{os.urandom(4).hex()}")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)

        def pump() -> None:
            while True:
                try:
                    data = sock.recv(64)
                except OSError:
                    return
                while data == b"!":  # merge the rings already queued into this one
                    try:
                        data = sock.recv(64, socket.MSG_DONTWAIT)
                    except BlockingIOError:
                        break
                    except OSError:
                        return
                if not data or data == b"stop":
                    return
                callback("*")

        thread = threading.Thread(target=pump, name="duly-doorbell", daemon=True)
        thread.start()
        return self._registered(self._listeners, (sock, path, thread), lambda: _stop_listener(sock, path, thread))

    def _listen_locally(self, callback: Callable[[str], None]) -> Callable[[], None]:
        local = _LocalListener(callback)
        return self._registered(self._local, local, local.stop)

    def _registered(self, registry: list[Any], entry: Any, end: Callable[[], None]) -> Callable[[], None]:
        """Add ``entry`` to ``registry``; the returned function removes it and calls ``end``,
        once (``close`` may have taken it first)."""
        with self._lock:
            registry.append(entry)

        def stop() -> None:
            with self._lock:
                if entry not in registry:
                    return
                registry.remove(entry)
            end()

        return stop

    def close(self) -> None:
        with self._lock:
            entries = list(self._listeners)
            self._listeners.clear()
            local, self._local = self._local, []
            if self._sender is not None:
                self._sender.close()
                self._sender = None
        for listener in local:
            listener.stop()
        for sock, path, thread in entries:
            _stop_listener(sock, path, thread)


class _LocalListener:
    """A listener without a socket: a thread that waits on an Event which a ring sets."""

    def __init__(self, callback: Callable[[str], None]) -> None:
        self.bell = threading.Event()
        self._stopped = False
        self._callback = callback
        self._thread = threading.Thread(target=self._pump, name="duly-doorbell", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        while True:
            self.bell.wait()
            self.bell.clear()
            if self._stopped:
                return
            self._callback("*")

    def stop(self) -> None:
        self._stopped = True
        self.bell.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=2)


def _stop_listener(sock: socket.socket, path: str, thread: threading.Thread) -> None:
    """Wake the pump thread with a "stop" datagram, then remove the socket."""
    poke = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        poke.sendto(b"stop", path)
    except OSError:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    finally:
        poke.close()
    thread.join(timeout=2)
    with contextlib.suppress(OSError):
        os.unlink(path)
    sock.close()
