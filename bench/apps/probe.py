"""What every benchmark handler calls: counts jobs run in this process, cheaply.

``hit()`` costs a counter increment and a ``time.time()``: no I/O per job. A daemon thread
(started in each process on its first job, so it survives a fork) writes
``{count, first, last, lat}`` to ``$BENCH_PROBE_DIR/<pid>.json`` every 20 ms; the harness
sums the files. ``first``/``last`` are the wall-clock times of the first job's start and
the last job's end in this process; ``lat`` holds ``[seq, start_time]`` pairs for the
latency workload (``mark(seq)``).
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time

DIR = os.environ.get("BENCH_PROBE_DIR")
EVERY = 0.02

_pid = 0
_started = False  # in this process: reset in a forked child, so hit() need not ask getpid()
_count = 0
_first = 0.0
_last = 0.0
_lat: list[list[float]] = []
_lock = threading.Lock()


def _forked() -> None:
    global _started
    _started = False


os.register_at_fork(after_in_child=_forked)


def _start() -> None:
    global _pid, _count, _first, _last, _lat, _started
    with _lock:
        if _pid == os.getpid():
            _started = True
            return
        _pid = os.getpid()
        _count, _first, _last, _lat = 0, time.time(), 0.0, []
        _started = True
        if DIR:
            threading.Thread(target=_writer, name="bench-probe", daemon=True).start()
            atexit.register(_dump)


def _dump() -> None:
    path = os.path.join(DIR, f"{_pid}.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"count": _count, "first": _first, "last": _last, "lat": _lat}, f)
    os.replace(tmp, path)


def _writer() -> None:
    seen = -1
    n_lat = -1
    while True:
        time.sleep(EVERY)
        if _count != seen or len(_lat) != n_lat:
            seen, n_lat = _count, len(_lat)
            try:
                _dump()
            except OSError:
                pass


def hit() -> None:
    """One job done (call it at the end of the handler)."""
    global _count, _last
    if not _started:  # (os.getpid() is a system call: not once per job)
        _start()
    _count += 1
    _last = time.time()


def mark(seq: int) -> None:
    """Latency workload: job ``seq`` started now (call it first thing in the handler)."""
    if not _started:
        _start()
    _lat.append([seq, time.time()])


def hit_many(n: int) -> None:
    """n jobs done at once (the raw-SQL baselines count per batch)."""
    global _count, _last
    if not _started:
        _start()
    _count += n
    _last = time.time()
