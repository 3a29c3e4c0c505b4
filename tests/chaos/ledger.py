"""The execution ledger: what was enqueued and what ran, kept outside the queue's database.

One SQLite file (WAL, autocommit: a row written survives the SIGKILL of its writer) shared by
the test's processes:

    enqueues(payload, job_id, outcome, at)        outcome: ok | error | unknown
    runs(payload, job_id, attempt, pid, event, at) event: start | end
    faults(kind, pid, detail, at)                  kill, stop, cont, crash, restart...

``check`` reads it, with the queue's final job states, after a final drain with no faults.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS enqueues (payload TEXT NOT NULL, job_id INTEGER, outcome TEXT NOT NULL,
                                     detail TEXT, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS runs (payload TEXT NOT NULL, job_id INTEGER NOT NULL, attempt INTEGER NOT NULL,
                                 pid INTEGER NOT NULL, event TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS faults (kind TEXT NOT NULL, pid INTEGER, detail TEXT, at REAL NOT NULL);
"""


class Ledger:
    """A handle on the ledger file; one per process (opened lazily after a fork)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self._lock = threading.Lock()

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():
            conn = sqlite3.connect(
                self.path, timeout=60, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "PRAGMA synchronous=OFF"
            )  # a process crash loses nothing; power loss is not tested
            conn.executescript(SCHEMA)
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def _exec(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        with self._lock:
            conn = self.conn
            for attempt in range(50):
                try:
                    if len(rows) == 1:
                        conn.execute(sql, rows[0])
                    else:
                        conn.execute("BEGIN IMMEDIATE")
                        conn.executemany(sql, rows)
                        conn.execute("COMMIT")
                    return
                except sqlite3.OperationalError as exc:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    if "locked" not in str(exc) or attempt == 49:
                        raise
                    time.sleep(0.05)

    # -- writers ---------------------------------------------------------------------------

    def enqueued(
        self, payload: str, job_id: int | None, outcome: str, detail: str | None = None
    ) -> None:
        self._exec(
            "INSERT INTO enqueues VALUES (?, ?, ?, ?, ?)",
            [(payload, job_id, outcome, detail, time.time())],
        )

    def enqueued_many(self, rows: Iterable[tuple[str, int | None]], outcome: str = "ok") -> None:
        now = time.time()
        batch = [(p, j, outcome, None, now) for p, j in rows]
        for i in range(0, len(batch), 20_000):
            self._exec("INSERT INTO enqueues VALUES (?, ?, ?, ?, ?)", batch[i : i + 20_000])

    def run(self, payload: str, job_id: int, attempt: int, event: str) -> None:
        self._exec(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?)",
            [(payload, job_id, attempt, os.getpid(), event, time.time())],
        )

    def fault(self, kind: str, pid: int | None, detail: str | None = None) -> None:
        self._exec("INSERT INTO faults VALUES (?, ?, ?, ?)", [(kind, pid, detail, time.time())])

    # -- readers ---------------------------------------------------------------------------

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            return self.conn.execute(sql, params).fetchall()

    def faults(self, kind: str | None = None) -> list[tuple[str, int | None, str | None, float]]:
        if kind is None:
            return self.rows("SELECT kind, pid, detail, at FROM faults ORDER BY at")
        return self.rows(
            "SELECT kind, pid, detail, at FROM faults WHERE kind = ? ORDER BY at", (kind,)
        )

    def close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None


@dataclass
class Verdict:
    """What the checker found; ``problems`` is empty when the run kept every promise."""

    enqueued: int = 0
    refused: int = 0
    unknown: int = 0
    completed: int = 0
    lost: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    duplicated_explained: int = 0
    concurrent: list[str] = field(default_factory=list)
    not_final: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        out = []
        for name in ("lost", "unexpected", "duplicated", "concurrent", "not_final"):
            found = getattr(self, name)
            if found:
                out.append(f"{name}: {len(found)} (first: {found[:5]})")
        return out

    def figures(self) -> dict[str, Any]:
        return {
            "enqueued": self.enqueued,
            "refused": self.refused,
            "unknown": self.unknown,
            "completed": self.completed,
            "lost": len(self.lost),
            "unexpected": len(self.unexpected),
            "duplicated": len(self.duplicated) + self.duplicated_explained,
            "duplicated_unexplained": len(self.duplicated),
            "concurrent_duplicates": len(self.concurrent),
        }


def check(
    ledger: Ledger,
    final_states: Mapping[int, str],
    *,
    paused_pids: Iterable[int] = (),
    attempt_outcomes: Mapping[tuple[int, int], str] | None = None,
) -> Verdict:
    """Judge a run after its final drain.

    ``final_states``: job id -> state, read from the queue's database for every job.
    Lost: acknowledged (ok) but never ended in the ledger, or not ``succeeded`` in the queue.
    Unexpected: ran, but its payload was never enqueued (or its enqueue was refused).
    Duplicated: ended more than once; explained when every earlier ending attempt's process
    died by a fault (SIGKILL, a crash point) or was paused past its lease (``paused_pids``),
    and the queue recorded that attempt as lost (``attempt_outcomes``: (job, attempt) -> outcome).
    Concurrent: two attempts of one job running at the same time, unless the earlier one's
    process is in ``paused_pids`` (a paused process resumed by the test: it runs on until its
    next heartbeat tells it the lease is gone; its writes are fenced).
    """
    v = Verdict()
    acked: dict[str, int | None] = {}
    refused: set[str] = set()
    maybe: set[str] = set()
    for payload, job_id, outcome in ledger.rows("SELECT payload, job_id, outcome FROM enqueues"):
        if outcome == "ok":
            acked[payload] = job_id
        elif outcome == "error":
            refused.add(payload)
        else:
            maybe.add(payload)
    v.enqueued, v.refused, v.unknown = len(acked), len(refused), len(maybe)
    died: dict[int, float] = {}
    for kind, pid, _detail, at in ledger.faults():
        if kind in ("kill", "crash") and pid is not None:
            died.setdefault(pid, at)
    paused = set(paused_pids)

    attempts: dict[tuple[str, int], dict[int, list[float | None]]] = defaultdict(dict)
    pids: dict[tuple[str, int, int], int] = {}
    for payload, job_id, attempt, pid, event, at in ledger.rows(
        "SELECT payload, job_id, attempt, pid, event, at FROM runs ORDER BY at"
    ):
        span = attempts[(payload, job_id)].setdefault(attempt, [None, None])
        pids[(payload, job_id, attempt)] = pid
        if event == "start":
            span[0] = at
        else:
            span[1] = at
    ended: dict[str, int] = defaultdict(int)
    for (payload, job_id), spans in attempts.items():
        if payload not in acked and payload not in maybe:
            v.unexpected.append(payload)
        endings = sorted(a for a, (_s, e) in spans.items() if e is not None)
        ended[payload] += len(endings)
        if len(endings) > 1:
            # every ending but the last must belong to a process that died before persisting
            if all(
                (pids[(payload, job_id, a)] in died or pids[(payload, job_id, a)] in paused)
                and (
                    attempt_outcomes is None
                    or attempt_outcomes.get((job_id, a)) in ("lost", "interrupted")
                )
                for a in endings[:-1]
            ):
                v.duplicated_explained += 1
            else:
                v.duplicated.append(f"{payload} job {job_id} attempts {endings}")
        ordered = sorted(spans.items())
        for i, (a, (start_a, end_a)) in enumerate(ordered):
            pid_a = pids[(payload, job_id, a)]
            stop_a = end_a if end_a is not None else died.get(pid_a)
            if stop_a is None or pid_a in paused:
                continue
            for b, (start_b, _e) in ordered[i + 1 :]:
                if start_b is not None and start_b < stop_a:
                    v.concurrent.append(f"{payload} job {job_id} attempts {a} and {b}")
    for payload, job_id in acked.items():
        if ended[payload] == 0:
            v.lost.append(payload)
        elif job_id is not None and final_states.get(job_id) != "succeeded":
            v.not_final.append(f"{payload} job {job_id} is {final_states.get(job_id)}")
    v.completed = sum(1 for p in acked if ended[p])
    return v
