"""What each attempt outcome does to its job: a pure table both stores apply in SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from duly.core.model import Finish
from duly.core.states import JobState, Outcome

#: errors_delta value meaning "reset the failure count to zero".
RESET = -1


@dataclass(frozen=True, slots=True)
class FinishPlan:
    state: JobState  # RETRYING may still become EXPIRED (expires_at) or CANCELLED (cancel requested) in SQL
    errors_delta: int  # +1 counted, 0 not counted, RESET (-1) reset to zero
    delay: float | None  # new run_at = now + delay
    run_at: datetime | None  # or this absolute run_at
    final: bool


def plan_finish(item: Finish) -> FinishPlan:
    o = item.outcome
    if o is Outcome.SUCCEEDED:
        return FinishPlan(JobState.SUCCEEDED, 0, None, None, True)
    if o in (Outcome.FAILED, Outcome.TIMED_OUT):
        if item.retry_in is None:
            return FinishPlan(JobState.FAILED, 1, None, None, True)
        return FinishPlan(JobState.RETRYING, 1, item.retry_in, None, False)
    if o is Outcome.CANCELLED:
        return FinishPlan(JobState.CANCELLED, 0, None, None, True)
    if o is Outcome.INTERRUPTED:
        return FinishPlan(JobState.QUEUED, 0, 0.0, None, False)
    if o in (Outcome.RESCHEDULED, Outcome.SNOOZED):
        delta = RESET if o is Outcome.RESCHEDULED else 0
        if item.run_at is not None:
            return FinishPlan(JobState.QUEUED, delta, None, item.run_at, False)
        return FinishPlan(JobState.QUEUED, delta, item.retry_in or 0.0, None, False)
    raise ValueError(f"an attempt cannot be finished with outcome {o.value!r}")
