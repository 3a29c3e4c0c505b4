"""What every benchmark handler calls: counts jobs run in this process, cheaply.

``hit()`` costs a counter increment and a ``time.time()``: no I/O per job. A daemon thread
(started in each process on its first job, so it survives a fork) writes
``{count, first, last}`` to ``$BENCH_PROBE_DIR/<pid>.json`` every 20 ms; the harness sums
the files. ``first``/``last`` are the wall-clock times of the first job's start and the last
job's end in this process. The latency workload's ``mark(seq)`` pairs (seq, start time) are
appended to ``<pid>.lat``, only the new ones each time: re-encoding every pair 50 times a
second held the GIL for up to a millisecond, long enough to delay the next job's start in
the measured worker and show in its p99.
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
_lat: list[tuple[int, float]] = []
_lat_written = 0  # marks already appended to <pid>.lat
_lock = threading.Lock()
_dump_lock = threading.Lock()


def _forked() -> None:
    global _started
    _started = False


os.register_at_fork(after_in_child=_forked)


def _start() -> None:
    global _pid, _count, _first, _last, _lat, _lat_written, _started
    with _lock:
        if _pid == os.getpid():
            _started = True
            return
        _pid = os.getpid()
        _count, _first, _last, _lat, _lat_written = 0, time.time(), 0.0, [], 0
        _started = True
        if DIR:
            threading.Thread(target=_writer, name="bench-probe", daemon=True).start()
            atexit.register(_dump)


def _dump() -> None:
    with _dump_lock:  # the writer thread and atexit
        _dump_locked()


def _dump_locked() -> None:
    global _lat_written
    count, first, last = _count, _first, _last  # first: each job counted has its mark in _lat
    marks = len(_lat)
    if marks > _lat_written:
        with open(os.path.join(DIR, f"{_pid}.lat"), "a") as f:
            f.write("".join(f"{seq} {t!r}\n" for seq, t in _lat[_lat_written:marks]))
        _lat_written = marks
    path = os.path.join(DIR, f"{_pid}.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"count": count, "first": first, "last": last}, f)
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
    _lat.append((seq, time.time()))


def hit_many(n: int) -> None:
    """n jobs done at once (the raw-SQL baselines count per batch)."""
    global _count, _last
    if not _started:
        _start()
    _count += n
    _last = time.time()
