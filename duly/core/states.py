"""Job states and the transitions between them.

Stored states (the ``state`` column)::

    queued ──claim──► running ──success──────────► succeeded
      ▲                  │ ├──error, attempts left──► retrying ──(run_at passes)──► claimable
      │                  │ ├──error, none left / no-retry──► failed
      │                  │ ├──retry would land at/after expires_at──► expired
      │                  │ ├──cancel delivered──► cancelled
      │                  │ ├──Reschedule / Snooze / shutdown interrupt──► queued
      │                  │ └──lease expired (worker died)──► retrying (attempt recorded "lost")
      │                  │
      └──manual retry── failed | cancelled | expired
    queued / retrying ──cancel──► cancelled
    queued / retrying ──expires_at reached before start──► expired

A cancel asked while the job runs is a request (``cancel_requested``) that the worker
delivers. It is never lost: an outcome that would make the job wait again (a retry, a
reschedule, a snooze, an interrupt, or a rescue of its expired lease) ends it ``cancelled``
instead; the attempt row keeps its real outcome. An ending outcome stands (``succeeded``,
``failed``).

``scheduled`` is not stored: it is a ``queued`` job whose ``run_at`` is still in the future.
It is shown as a state of its own everywhere a job is presented (API, CLI, dashboard).
"""

from __future__ import annotations

import enum


class JobState(str, enum.Enum):
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    def __str__(self) -> str:
        return self.value


#: States a claim may take a job from (when due).
CLAIMABLE = (JobState.QUEUED, JobState.RETRYING)
#: States that hold a uniqueness key.
LIVE = (JobState.QUEUED, JobState.RETRYING, JobState.RUNNING)
#: States that end a job.
FINAL = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.EXPIRED)
#: States a manual retry brings back.
RETRYABLE = (JobState.FAILED, JobState.CANCELLED, JobState.EXPIRED)
#: States a cancel ends at once (a running job gets a cancel request instead).
CANCELLABLE_NOW = (JobState.QUEUED, JobState.RETRYING)

ALL_STATES = tuple(JobState)


class Outcome(str, enum.Enum):
    """How one attempt ended (the ``outcome`` of an attempt row)."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    LOST = "lost"  # the lease expired: the worker died or lost its database
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # shutdown or stall monitor: handed back, not counted
    RESCHEDULED = "rescheduled"  # the handler kept the job for a later run
    SNOOZED = "snoozed"

    def __str__(self) -> str:
        return self.value


#: Outcomes that use up one of the job's ``max_attempts``.
COUNTED = frozenset({Outcome.FAILED, Outcome.LOST, Outcome.TIMED_OUT})


def parse_state(value: str) -> JobState:
    """Return the state named ``value`` or raise a ValueError listing the valid names."""
    try:
        return JobState(value)
    except ValueError:
        names = ", ".join(s.value for s in JobState)
        raise ValueError(f"unknown job state {value!r}; expected one of: {names}") from None
