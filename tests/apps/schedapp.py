"""A scheduler process for ``tests/schedules/test_scheduler_processes.py``.

``python -m tests.apps.schedapp`` builds ``app`` from the environment::

    DULY_TEST_URL      database URL (required; the schema exists already)
    DULY_TEST_PREFIX   table prefix (default ``duly_``)

and calls ``app.scheduler_tick()`` once a second, at half past the second (plus up to 0.1 s
of jitter), so that every scheduler process races on the same slots at the same moment,
and a firing's time is never near a whole second (the tests compare it with the 5 s misfire
grace; the store is opened before the first tick, which would otherwise wait for it). On SIGTERM it finishes its tick and prints one JSON line: its pid, ticks, jobs made
and errors (each error's traceback goes to stderr first).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
import traceback
from typing import Any

import duly

app = duly.App(os.environ["DULY_TEST_URL"], prefix=os.environ.get("DULY_TEST_PREFIX", "duly_"))


@app.task(name="tick")
def tick() -> None:
    return None


def _sleep_until(deadline: float, stopping: list[bool]) -> None:
    while not stopping and (left := deadline - time.time()) > 0:
        time.sleep(min(left, 0.05))


def main() -> None:
    stopping: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    stats: dict[str, Any] = {"pid": os.getpid(), "ticks": 0, "made": 0, "errors": 0}
    app.scheduler.next_fire_at()  # open the store now: the first tick must not wait for it
    try:
        while not stopping:
            now = time.time()
            nxt = int(now) + 0.5 + random.uniform(0.0, 0.1)
            _sleep_until(nxt if nxt > now else nxt + 1, stopping)
            if stopping:
                break
            try:
                stats["made"] += app.scheduler_tick()
            except Exception:  # noqa: BLE001 - counted, and the test fails on it
                stats["errors"] += 1
                traceback.print_exc()
            stats["ticks"] += 1
    finally:
        print(json.dumps(stats), flush=True)
        app.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
