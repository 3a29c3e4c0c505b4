"""The raw-SQL baseline on PostgreSQL: claim 1,000 rows with one statement, complete them with
another, no job code at all. `python raw_pg_worker.py DSN BATCH` exits when nothing is left."""

from __future__ import annotations

import sys

import probe
import psycopg

CLAIM = """
WITH c AS (
    SELECT id FROM raw_jobs WHERE state = 'queued' AND run_at <= now()
    ORDER BY priority DESC, run_at, id LIMIT %s FOR UPDATE SKIP LOCKED
)
UPDATE raw_jobs j SET state = 'running', attempt = attempt + 1, started_at = now()
FROM c WHERE j.id = c.id RETURNING j.id, j.attempt
"""
COMPLETE = """
UPDATE raw_jobs SET state = 'succeeded', finished_at = now()
WHERE id = ANY(%s) AND state = 'running'
"""


def main() -> None:
    dsn, batch = sys.argv[1], int(sys.argv[2])
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=0) as conn:
        while True:
            rows = conn.execute(CLAIM, (batch,)).fetchall()
            if not rows:
                return
            conn.execute(COMPLETE, ([r[0] for r in rows],))
            probe.hit_many(len(rows))


if __name__ == "__main__":
    main()
