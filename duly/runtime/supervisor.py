"""``duly worker --processes P``: P worker processes under one supervisor that restarts a
child that dies, forwards SIGTERM/SIGINT, and on a second signal kills them all."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from types import FrameType

from duly.runtime import events
from duly.runtime.pidfile import PidFile

#: A child that dies sooner than this after its start is restarted after a back-off.
FAST_CRASH_SECONDS = 5.0


def _die_with_parent() -> None:
    """In the child, before exec: on Linux, get SIGTERM when the supervisor dies (even by
    SIGKILL), so no worker outlives it unattended."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the supervisor's own shutdown still stops them
        pass


class Supervisor:
    def __init__(self, argv: Sequence[str], processes: int, pid_file: str | None = None, grace: float = 30.0) -> None:
        if processes < 1:
            raise ValueError(f"processes must be >= 1, got {processes}")
        self.argv = list(argv)
        self.processes = processes
        self.pid_file = PidFile(pid_file) if pid_file else None
        self.grace = grace
        self.children: dict[int, tuple[subprocess.Popen[bytes], float]] = {}
        self.stopping = threading.Event()
        self.signals = 0
        self.restarts = 0

    def _spawn(self, slot: int) -> None:
        # Its own session: a signal to the terminal's process group (Ctrl-C, systemd) reaches
        # the supervisor only, which forwards it once; a child signalled twice exits at once
        # and would leave its finished outcomes unwritten.
        proc = subprocess.Popen(self.argv, start_new_session=True, preexec_fn=_die_with_parent)
        self.children[slot] = (proc, time.monotonic())
        events.emit("worker.start", supervisor_child=proc.pid, slot=slot)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.signals += 1
        if self.signals > 1:
            for proc, _ in self.children.values():
                proc.kill()
            return
        self.stopping.set()
        for proc, _ in self.children.values():
            if proc.poll() is None:
                proc.send_signal(signum)

    def run(self) -> int:
        if self.pid_file is not None:
            self.pid_file.acquire()
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        backoff: dict[int, float] = {}
        try:
            for slot in range(self.processes):
                self._spawn(slot)
            while not self.stopping.is_set():
                for slot, (proc, started) in list(self.children.items()):
                    code = proc.poll()
                    if code is None or self.stopping.is_set():
                        continue
                    if code == 0:  # a clean exit (a --burst run that is done): not restarted
                        events.emit("worker.stop", supervisor_child=proc.pid, exit_code=code, action="done")
                        del self.children[slot]
                        continue
                    events.emit("worker.stop", supervisor_child=proc.pid, exit_code=code, action="restart")
                    wait = 0.0
                    if time.monotonic() - started < FAST_CRASH_SECONDS:
                        wait = backoff[slot] = min(backoff.get(slot, 0.5) * 2, 30.0)
                    else:
                        backoff.pop(slot, None)
                    if self.stopping.wait(wait):
                        break
                    self.restarts += 1
                    self._spawn(slot)
                if not self.children:
                    break  # every child ended cleanly
                self.stopping.wait(0.2)
            deadline = time.monotonic() + self.grace + 5
            for proc, _ in self.children.values():
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            return 130 if self.signals > 1 else 0  # a second signal: like a worker's, at once
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)
            if self.pid_file is not None:
                self.pid_file.release()
