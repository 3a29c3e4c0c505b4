"""The raw-SQL baseline on SQLite: claim 1,000 rows and complete them, each in a short
BEGIN IMMEDIATE transaction (WAL, synchronous=NORMAL). `python raw_sqlite_worker.py PATH BATCH`."""

from __future__ import annotations

import sqlite3
import sys
import time

import probe

CLAIM = """
UPDATE raw_jobs SET state = 'running', attempt = attempt + 1, started_at = ?
WHERE id IN (SELECT id FROM raw_jobs WHERE state = 'queued' AND run_at <= ?
             ORDER BY priority DESC, run_at, id LIMIT ?)
RETURNING id
"""


def main() -> None:
    path, batch = sys.argv[1], int(sys.argv[2])
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    while True:
        now = int(time.time() * 1e6)
        conn.execute("BEGIN IMMEDIATE")
        ids = [r[0] for r in conn.execute(CLAIM, (now, now, batch)).fetchall()]
        conn.execute("COMMIT")
        if not ids:
            return
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "UPDATE raw_jobs SET state = 'succeeded', finished_at = ? WHERE id = ? AND state = 'running'",
            [(now, i) for i in ids],
        )
        conn.execute("COMMIT")
        probe.hit_many(len(ids))


if __name__ == "__main__":
    main()
