"""The worker's batch statements reach their rows by primary key on PostgreSQL, whatever the
table's size and however often they ran (a prepared statement switches to a generic plan
after five runs).

Two plans went wrong before: a claim or finish batch joined by id was planned as a hash of
the whole table (a sequential scan per batch, so a drain slowed as the table grew), and a
generic plan that probed ``id = ANY(ids)`` once per row of the batch (quadratic: 700 ms for
a batch of 1,000). Measured by the table's counters, not timed."""

from __future__ import annotations

import pytest

import duly
from duly.core.model import ClaimParams, Finish, Held, Outcome
from tests.conftest import Backend
from tests.contract.test_job_list_index import pg_reads

BATCH = 1_000  # the worker claims up to its free slots (1,000 in the benchmark)
ROUNDS = 7  # more than the five custom plans PostgreSQL makes before trying a generic one


def analyze(backend: Backend) -> None:
    import psycopg

    with psycopg.connect(backend.url, autocommit=True) as conn:
        conn.execute(f'ANALYZE "{backend.prefix}jobs"')


def test_claim_heartbeat_finish_batches_probe_by_key(backend: Backend) -> None:
    if backend.name != "postgres":
        pytest.skip("PostgreSQL plans; SQLite updates batches row by row by primary key")
    setup = backend.app()
    # a queue the planner would rather hash whole than probe 1,000 times (enqueue_many ANALYZEs)
    setup.enqueue_many([duly.Enqueue("plans.t")] * 30_000)
    setup.close()

    def drain(app: duly.App) -> None:
        store = app.store
        for n in range(ROUNDS):
            if n == 2:  # fresh statistics mid-drain, as autovacuum's ANALYZE brings them
                analyze(backend)
            jobs = store.claim(ClaimParams("w-plans", BATCH))
            assert len(jobs) == BATCH
            beat = store.heartbeat("w-plans", [Held(j.id, j.attempt) for j in jobs])
            assert not beat.stale
            assert store.finish([Finish(j.id, j.attempt, Outcome.SUCCEEDED) for j in jobs]) == []

    reads = pg_reads(backend, drain)
    jobs = BATCH * ROUNDS
    assert reads["seq_scan"] == 0, reads
    # about 22 heap page visits per job (claim, heartbeat, lock, update, each with its
    # index probes); a generic plan that probes the whole batch per row makes it about 80
    assert reads["heap_pages"] < 40 * jobs, reads
