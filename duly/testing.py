"""The test kit: a virtual clock, drain the queue in-process, run a task directly, assert
what was enqueued.

    from duly.testing import VirtualClock, drain, assert_enqueued

    def test_reminder_retries_for_a_day():
        clock = VirtualClock()
        app = make_app(clock=clock)           # your App, built with clock=clock

        @app.task(retry="1h", max_attempts=3)
        def remind(user: int) -> None:
            raise RuntimeError("mail server down")

        job = remind.enqueue(user=7)
        result = drain(app)                   # retries an hour apart happen in milliseconds
        assert result.runs == 3               # attempts run (result.cycles: clock jumps)
        assert app.get_job(job.id).state == "failed"
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from duly.app import App, Task
from duly.core.clock import VirtualClock
from duly.core.model import Job
from duly.core.states import JobState
from duly.core.triggers import TriggerKind
from duly.runtime.context import JobContext, _current
from duly.runtime.executor import wants_context
from duly.runtime.worker import Worker

__all__ = ["DrainResult", "VirtualClock", "adrain", "assert_enqueued", "drain", "run_task"]


@dataclass
class DrainResult:
    """What a drain did. Outcomes are in the database: ``app.get_job(id).state``,
    ``app.attempts(id)``, ``assert_enqueued(app, task, state=...)``."""

    runs: int = 0  # attempts run
    cycles: int = 0  # clock jumps
    times: list[datetime] = field(default_factory=list)  # virtual times of the cycles

    def __repr__(self) -> str:
        return f"DrainResult(runs={self.runs}, cycles={self.cycles})"


async def adrain(
    app: App,
    *,
    queues: list[str] | None = None,
    advance: bool = True,
    until: datetime | None = None,
    on_cycle: Callable[[datetime], Any] | None = None,
    max_runs: int = 1_000_000,
    concurrency: int = 32,
) -> DrainResult:
    """Run every due job in-process until none is left. Under a ``VirtualClock`` (and with
    ``advance``) the clock then jumps to the next due time and the drain goes on, so hours of
    retries and schedules pass in milliseconds; it stops when nothing is due any more, or the
    next due time is after ``until``. ``on_cycle(now)`` runs after each jump.

    Due times are the waiting jobs' run times and the fire times of triggers that fire once:
    ``at`` / ``in`` triggers and open debounce windows (an event trigger's job). Periodic
    triggers (``cron``, ``every``) never run out, so the clock jumps to their slots only
    with ``until``."""
    worker = Worker(app, queues=queues, concurrency=concurrency, worker_id="drain")
    result = DrainResult()
    clock = app.clock
    stuck = 0
    try:
        while result.runs < max_runs:
            ran = await worker.run_once()
            result.runs += ran
            if ran:
                continue
            tick = getattr(app, "scheduler_tick", None)
            if tick is not None and tick():
                continue
            if not (advance and getattr(clock, "virtual", False)):
                break
            nxt = app.store.next_run_at(queues)
            # periodic triggers never run out: jump to them only until a time
            fire = app.scheduler.next_fire_at() if until is not None else _next_one_shot_fire(app)
            if fire is not None and (nxt is None or fire < nxt):
                nxt = fire
            if nxt is not None and nxt <= clock.now():
                stuck += 1
                if stuck > 3:  # due but nothing claimable (e.g. other queues): stop
                    break
                continue
            stuck = 0
            if nxt is None or (until is not None and nxt > until):
                if until is not None:
                    clock.set(until)  # type: ignore[attr-defined]
                break
            clock.set(nxt)  # type: ignore[attr-defined]
            result.cycles += 1
            result.times.append(clock.now())
            if on_cycle is not None:
                on_cycle(clock.now())
        else:
            raise RuntimeError(f"drain stopped after {max_runs} runs; is a job rescheduling itself forever?")
    finally:
        worker.close()
    return result


def _next_one_shot_fire(app: App) -> datetime | None:
    """The next fire time of an active trigger that fires once: an ``at`` (or ``in``) trigger,
    or an event / webhook trigger's open debounce window."""
    if not hasattr(app, "scheduler"):
        return None
    app.scheduler.ensure_synced()
    periodic = (TriggerKind.CRON, TriggerKind.EVERY)
    times = [t.next_fire_at for t in app.store.list_triggers()
             if t.next_fire_at is not None and not t.paused and t.spec.kind not in periodic]  # fmt: skip
    return min(times, default=None)


def drain(app: App, **kw: Any) -> DrainResult:
    """Blocking form of ``adrain`` (for tests without an event loop)."""
    return asyncio.run(adrain(app, **kw))


def run_task(task: Task[Any, Any], *args: Any, **kwargs: Any) -> Any:
    """Call a task's function directly, with a ``ctx`` if it takes one (no database)."""
    now = task.app.clock.now()
    job = Job(
        id=0, task=task.name, queue=task.defaults.queue, args=list(args), kwargs=kwargs,
        priority=task.defaults.priority, state=JobState.RUNNING, run_at=now, expires_at=None,
        key=None, attempt=1, errors=0, max_attempts=task.defaults.max_attempts,
        lease_seconds=task.defaults.lease, worker_id="test", lease_expires_at=now, started_at=now,
        cancel_requested=False, progress_done=None, progress_total=None, result=None,
        last_error=None, created_at=now, updated_at=now, finished_at=None,
    )  # fmt: skip
    ctx = JobContext(job, "test", task.app.clock)
    token = _current.set(ctx)
    try:
        call_args = (ctx, *args) if wants_context(task.fn) else args
        value = task.fn(*call_args, **kwargs)
        if inspect.isawaitable(value):
            value = asyncio.run(value)  # type: ignore[arg-type]
        return value
    finally:
        _current.reset(token)


def assert_enqueued(
    app: App,
    task: str | Task[Any, Any] | None = None,
    *,
    args: list[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    queue: str | None = None,
    state: JobState | str | None = None,
    count: int | None = None,
) -> list[Job]:
    """Assert that jobs matching every given field exist; return them."""
    name = task.name if isinstance(task, Task) else task
    jobs = app.jobs(queue=queue, state=state, task=name, limit=1000)
    found = [j for j in jobs if (args is None or j.args == list(args)) and (kwargs is None or j.kwargs == kwargs)]
    if (count is None and not found) or (count is not None and len(found) != count):
        seen = "\n".join(f"  {j.id} {j.task} {j.state} args={j.args} kwargs={j.kwargs}" for j in jobs[:20])
        want = f"{count} job(s)" if count is not None else "a job"
        raise AssertionError(
            f"expected {want} of task={name!r} args={args!r} kwargs={kwargs!r}, found {len(found)}; "
            f"jobs:\n{seen or '  (none)'}"
        )
    return found


