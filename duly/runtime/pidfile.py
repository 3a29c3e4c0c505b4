"""A pid file written at start and removed at exit; a fresh one of a live process blocks a
second start (the OCaml seed's cron guard, odd-jobs' ``--pid-file``)."""

from __future__ import annotations

import contextlib
import os
import time

#: A pid file older than this is considered stale even if its pid is alive (pid reuse).
MAX_AGE_SECONDS = 24 * 3600.0


class AlreadyRunning(RuntimeError):
    pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PidFile:
    def __init__(self, path: str, max_age: float = MAX_AGE_SECONDS) -> None:
        self.path = path
        self.max_age = max_age
        self.owned = False

    def holder(self) -> int | None:
        """The pid of a live process holding a fresh pid file, else None."""
        try:
            with open(self.path, encoding="ascii") as f:
                pid = int(f.read().strip() or 0)
            age = time.time() - os.path.getmtime(self.path)
        except (FileNotFoundError, ValueError):
            return None
        if pid <= 0 or pid == os.getpid() or age > self.max_age or not _alive(pid):
            return None
        return pid

    def acquire(self) -> None:
        pid = self.holder()
        if pid is not None:
            raise AlreadyRunning(f"another worker (pid {pid}) holds the pid file {self.path}; not starting")
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="ascii") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(tmp, self.path)
        self.owned = True

    def release(self) -> None:
        if not self.owned:
            return
        self.owned = False
        with contextlib.suppress(FileNotFoundError, ValueError):
            with open(self.path, encoding="ascii") as f:
                if int(f.read().strip() or 0) != os.getpid():
                    return
            os.unlink(self.path)
