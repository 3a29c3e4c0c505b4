"""A cross-process doorbell for one SQLite file.

Each listening process binds a Unix datagram socket in a folder derived from the database's
absolute path; an enqueue sends one byte to every socket there. A ring is a hint: listeners
still poll, so a lost ring only delays a job until the next poll.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import tempfile
import threading
from collections.abc import Callable


def _folder(db_path: str) -> str:
    digest = hashlib.sha1(os.path.abspath(db_path).encode(), usedforsecurity=False).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"duly-wake-{os.getuid()}", digest)


class Doorbell:
    def __init__(self, db_path: str) -> None:
        self.enabled = db_path != ":memory:" and hasattr(socket, "AF_UNIX")
        self.folder = _folder(db_path) if self.enabled else ""
        self._sender: socket.socket | None = None
        self._lock = threading.Lock()
        self._listeners: list[tuple[socket.socket, str, threading.Thread]] = []
        self._local: list[Callable[[str], None]] = []

    def ring(self) -> None:
        for cb in list(self._local):
            cb("*")
        if not self.enabled:
            return
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return
        with self._lock:
            if self._sender is None:
                self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sender.setblocking(False)
            own = {path for _, path, _ in self._listeners}
            for name in names:
                path = os.path.join(self.folder, name)
                if path in own:
                    continue
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
        """Call ``callback("*")`` on each ring from any process (and from this one)."""
        self._local.append(callback)
        if not self.enabled:
            return lambda: self._drop_local(callback)
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
                if not data or data == b"stop":
                    return
                callback("*")

        thread = threading.Thread(target=pump, name="duly-doorbell", daemon=True)
        thread.start()
        entry = (sock, path, thread)
        with self._lock:
            self._listeners.append(entry)

        def stop() -> None:
            self._drop_local(callback)
            with self._lock:
                if entry not in self._listeners:
                    return
                self._listeners.remove(entry)
            _stop_listener(sock, path, thread)

        return stop

    def _drop_local(self, callback: Callable[[str], None]) -> None:
        with contextlib.suppress(ValueError):
            self._local.remove(callback)

    def close(self) -> None:
        with self._lock:
            entries = list(self._listeners)
            self._listeners.clear()
            if self._sender is not None:
                self._sender.close()
                self._sender = None
        for sock, path, thread in entries:
            _stop_listener(sock, path, thread)


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
