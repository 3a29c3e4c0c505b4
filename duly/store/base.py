"""The storage seam: domain verbs, each taking a parameter object (see ``duly.core.model``).

Every write that follows a claim is fenced: it changes a job only while the job is running
under the presented attempt number. Time comes from the store's clock: under the real clock
PostgreSQL uses its own ``now()``; SQLite and virtual clocks pass the time into the SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from duly.core.triggers import Fire, Trigger, TriggerSpec, TriggerState
from duly.core.model import (
    Attempt,
    ClaimParams,
    EnqueueParams,
    EnqueueResult,
    Finish,
    Held,
    HeartbeatResult,
    Job,
    JobFilter,
    QueueStats,
)
from duly.store.admin import AdminStore


class Store(AdminStore, Protocol):
    backend: str  # "sqlite" | "postgres"
    url: str  # with any password redacted
    #: Whether a worker should write its pending outcomes in its next claim's transaction
    #: (``finish_and_claim``): True where writes queue behind one another anyway (SQLite's
    #: one writer), False where a flush and a claim on two connections overlap (PostgreSQL).
    combines_finish_with_claim: bool

    # -- schema ------------------------------------------------------------------------
    def migrate(self) -> list[int]:
        """Apply pending migrations; return the versions applied."""

    def schema_version(self) -> int: ...

    # -- time --------------------------------------------------------------------------
    def now(self) -> datetime:
        """The time that decides due times and leases (the database's, or the virtual clock's)."""

    # -- producing ---------------------------------------------------------------------
    def enqueue(self, params: EnqueueParams, conn: Any = None) -> EnqueueResult:
        """Insert one job (honouring its key mode). With ``conn``, inside the caller's
        transaction and without committing it."""

    def enqueue_many(self, params: Sequence[EnqueueParams], conn: Any = None) -> list[int]:
        """Insert many jobs in one transaction; keys honoured; ids in input order."""

    # -- consuming ---------------------------------------------------------------------
    def claim(self, params: ClaimParams) -> list[Job]:
        """Claim up to ``limit`` due jobs in one statement, by priority, run time, id."""

    def finish_and_claim(self, items: Sequence[Finish], params: ClaimParams) -> tuple[list[Finish], list[Job]]:
        """``finish(items)`` then ``claim(params)`` (in one transaction where the backend
        can): the stale items and the claimed jobs."""

    def heartbeat(self, worker_id: str, held: Sequence[Held]) -> HeartbeatResult:
        """Extend the leases of held jobs; report stale ones and cancel requests."""

    def set_progress(self, held: Held, done: int, total: int | None) -> None:
        """Persist progress; StaleAttempt if ``held`` no longer holds the job."""

    def finish(self, items: Sequence[Finish]) -> list[Finish]:
        """Persist attempt outcomes in one transaction; return the stale items (unchanged)."""

    def rescue(self) -> list[Held]:
        """End attempts whose lease expired as *lost*, return their jobs to the queue
        (or fail them when no attempts are left); expire due jobs past ``expires_at``."""

    # -- steering ----------------------------------------------------------------------
    def cancel(self, job_id: int) -> Job: ...

    def retry(self, job_id: int) -> Job: ...

    def delete(self, job_id: int) -> bool: ...

    # -- reading -----------------------------------------------------------------------
    def get_job(self, job_id: int) -> Job | None: ...

    def list_jobs(self, flt: JobFilter) -> list[Job]: ...

    def attempts(self, job_id: int) -> list[Attempt]: ...

    def stats(self) -> list[QueueStats]:
        """Exact counts per queue and state: reads every job (an index-only scan at best)."""

    def lease_expired(self) -> dict[str, int]:
        """Per queue, running jobs whose lease has run out (read from the running jobs only)."""

    def next_run_at(self, queues: Sequence[str] | None = None) -> datetime | None:
        """The earliest run time of a waiting job (due or not), for sleeping until then."""

    def run_at_least_within(self, key: str, seconds: float) -> Job | None:
        """Move the live job holding ``key`` to run no later than now + ``seconds`` (never later);
        a running holder is returned unchanged; None when no live job holds the key."""

    # -- triggers (see duly.core.triggers and duly.runtime.scheduler) --------------------
    def add_trigger(self, t: TriggerSpec, next_fire_at: datetime | None, declared: bool = False) -> Trigger:
        """Store a trigger; a name taken is DuplicateTrigger (an InvalidOption), unless
        ``declared`` (from code), which updates the rule and keeps the state unless the
        schedule itself changed."""

    def get_trigger(self, name: str) -> Trigger | None: ...

    def list_triggers(self) -> list[Trigger]: ...

    def event_triggers(self) -> list[Trigger]:
        """Active event triggers (matched in Python against each emitted event)."""

    def trigger_by_secret(self, secret: str) -> Trigger | None: ...

    def delete_trigger(self, name: str) -> bool: ...

    def pause_trigger(self, name: str, paused: bool, next_fire_at: datetime | None) -> Trigger | None: ...

    def due_triggers(self, limit: int = 100) -> list[Trigger]: ...

    def next_fire_at(self) -> datetime | None: ...

    def fire(self, f: Fire) -> list[int] | None:
        """Record one firing in one transaction (slots, jobs, trigger state); None when another
        scheduler recorded it first. A slot that already has a job is skipped."""

    def append_event(self, trigger_id: int, event: Any, window_end: datetime, conn: Any = None) -> None:
        """Add an event to the trigger's debounce window, opening it (until ``window_end``)."""

    def trigger_state(self, trigger: Trigger) -> TriggerState: ...

    # -- wake-ups ----------------------------------------------------------------------
    def subscribe(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call ``callback(queue)`` when a job becomes due by an enqueue (in any process);
        returns an unsubscribe function. A hint only: correctness never depends on it. The
        callback runs on a thread of the store's, never in the thread that enqueued (which
        may hold a transaction open), so it may call the store: a worker claims from it."""

    def close(self) -> None: ...
