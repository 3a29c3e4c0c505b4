"""The App's schedule verbs (mixed into ``duly.App``): periodic and event triggers declared
in code, triggers added at run time, events, webhooks, manual runs, recurring named jobs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from duly.core.clock import Clock
from duly.core.durations import Duration, to_seconds
from duly.core.errors import InvalidOption, TriggerNotFound
from duly.core.model import EnqueueParams, Job
from duly.core.triggers import CatchUp, Trigger, TriggerKind, TriggerSpec, TriggerState, upcoming
from duly.runtime.scheduler import Scheduler
from duly.store.base import Store

if TYPE_CHECKING:
    from duly.app import Task


def _kind_and_spec(cron: str | None, every: Duration | None, at: datetime | str | None,
                   in_: Duration | None, event: str | None, webhook: bool, manual: bool) -> tuple[TriggerKind, str]:  # fmt: skip
    given = [(k, v) for k, v in (
        (TriggerKind.CRON, cron), (TriggerKind.EVERY, every), (TriggerKind.AT, at), (TriggerKind.IN, in_),
        (TriggerKind.EVENT, event), (TriggerKind.WEBHOOK, webhook or None), (TriggerKind.MANUAL, manual or None),
    ) if v is not None]  # fmt: skip
    if len(given) != 1:
        raise InvalidOption("give exactly one of cron=, every=, at=, in_=, event=, webhook=True, manual=True")
    kind, value = given[0]
    if kind in (TriggerKind.EVERY, TriggerKind.IN):
        try:
            return kind, value if isinstance(value, str) else str(to_seconds(value))  # type: ignore[arg-type]
        except ValueError as exc:
            raise InvalidOption(f"{kind.value}: {exc}", field=kind.value) from None
    if kind is TriggerKind.AT and isinstance(value, datetime):
        return kind, value.isoformat()
    return kind, "" if kind in (TriggerKind.WEBHOOK, TriggerKind.MANUAL) else str(value)


class ScheduleVerbs:
    """Mixin of App (which provides these)."""

    scheduler: Scheduler
    clock: Clock

    @property
    def store(self) -> Store:
        raise NotImplementedError

    def task(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def _params(self, item: Any) -> EnqueueParams:
        raise NotImplementedError

    def enqueue(self, task: Any, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None, *,
                conn: Any = None, **options: Any) -> Job:  # fmt: skip
        raise NotImplementedError

    def get_job(self, job_id: int) -> Job:
        raise NotImplementedError

    def _spec(self, task: str | Task[Any, Any], name: str | None, tz: str | None, args: Sequence[Any],
              kwargs: dict[str, Any] | None, opts: dict[str, Any], kind_spec: tuple[TriggerKind, str]) -> TriggerSpec:  # fmt: skip
        from duly.app import Task

        task_name = task.name if isinstance(task, Task) else task
        kind, text = kind_spec
        debounce = opts.pop("debounce", None)
        expires_in = opts.pop("expires_in", None)
        spec = TriggerSpec(
            name=name or task_name, kind=kind, task=task_name, spec=text, timezone=tz,
            args=list(args), kwargs=dict(kwargs or {}), queue=opts.pop("queue", None),
            priority=opts.pop("priority", None), max_attempts=opts.pop("max_attempts", None),
            expires_in=expires_in,  # checked and turned into seconds by validate, as debounce
            catch_up=opts.pop("catch_up", CatchUp.LATEST), catch_up_limit=opts.pop("catch_up_limit", 100),
            start_at=opts.pop("start", None), end_at=opts.pop("end", None),
            debounce=debounce, filter=opts.pop("filter", None),
        )  # fmt: skip
        if opts:
            raise InvalidOption(f"unknown trigger option(s): {', '.join(sorted(opts))}")
        return spec

    def schedule(self, task: str | Task[Any, Any], *, name: str | None = None, cron: str | None = None,
                 every: Duration | None = None, at: datetime | str | None = None, in_: Duration | None = None,
                 event: str | None = None, webhook: bool = False, manual: bool = False, tz: str | None = None,
                 args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None, **opts: Any) -> Trigger:  # fmt: skip
        """Store a trigger now (run time). Options: queue, priority, max_attempts, expires_in
        (relative to the slot), catch_up ("skip", "latest", "all"), catch_up_limit, start, end,
        debounce, filter (event triggers: field values the event's data must have)."""
        kind_spec = _kind_and_spec(cron, every, at, in_, event, webhook, manual)
        return self.scheduler.add(self._spec(task, name, tz, args, kwargs, opts, kind_spec))

    def periodic(self, *, cron: str | None = None, every: Duration | None = None, tz: str | None = None,
                 name: str | None = None, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None,
                 task_options: dict[str, Any] | None = None, **opts: Any) -> Callable[[Callable[..., Any]], Any]:  # fmt: skip
        """Decorator: register the function as a task and declare a cron or every trigger for it
        (stored at the first tick, emit, webhook, run or read of a trigger)."""
        kind_spec = _kind_and_spec(cron, every, None, None, None, False, False)
        return self._declaring(kind_spec, tz, name, args, kwargs, task_options, opts)

    def on_event(self, event: str, *, filter: dict[str, Any] | None = None, debounce: Duration | None = None,
                 name: str | None = None, task_options: dict[str, Any] | None = None, **opts: Any) -> Callable[[Callable[..., Any]], Any]:  # fmt: skip
        """Decorator: run the function when ``app.emit(event, data)`` matches; it receives
        ``event=`` (or ``events=`` with the window's events when ``debounce`` is set)."""
        opts.update(filter=filter, debounce=debounce)
        return self._declaring((TriggerKind.EVENT, event), None, name, (), None, task_options, opts)

    def _declaring(self, kind_spec: tuple[TriggerKind, str], tz: str | None, name: str | None,
                   args: Sequence[Any], kwargs: dict[str, Any] | None, task_options: dict[str, Any] | None,
                   opts: dict[str, Any]) -> Callable[[Callable[..., Any]], Any]:  # fmt: skip
        from duly.app import Task

        def register(fn: Callable[..., Any]) -> Any:
            options = dict(task_options or {})
            if name:
                options.setdefault("name", name)  # the trigger and its task share a given name
            task = fn if isinstance(fn, Task) else self.task(**options)(fn)
            self.scheduler.declare(self._spec(task, name, tz, args, kwargs, dict(opts), kind_spec))
            return task

        return register

    def _trigger_params(self, spec: TriggerSpec, slot: datetime | None, extra: dict[str, Any]) -> EnqueueParams:
        from duly.app import Enqueue

        opts = spec.options()
        expires_in = opts.pop("expires_in", None)
        run_at = slot if slot is not None else None
        expires_at = None
        if expires_in is not None and slot is not None:
            expires_at, expires_in = slot + timedelta(seconds=expires_in), None
        # without a slot, expires_in stays relative: the store's now (the database's) decides
        params = self._params(Enqueue(spec.task, spec.args, {**spec.kwargs, **extra}, run_at=run_at,
                                      expires_at=expires_at, expires_in=expires_in, **opts))  # fmt: skip
        return params

    # -- reading and steering ------------------------------------------------------------

    def triggers(self) -> list[Trigger]:
        self.scheduler.sync()
        result: list[Trigger] = self.store.list_triggers()
        return result

    def trigger(self, name: str) -> Trigger:
        self.scheduler.ensure_synced()  # a trigger declared in code is there before the first tick
        t: Trigger | None = self.store.get_trigger(name)
        if t is None:
            raise TriggerNotFound(f"no trigger named {name!r}")
        return t

    def trigger_state(self, name: str) -> TriggerState:
        state: TriggerState = self.store.trigger_state(self.trigger(name))
        return state

    def upcoming(self, name: str, count: int = 10) -> list[datetime]:
        t = self.trigger(name)
        if t.paused:
            return []
        after = (t.next_fire_at or self.clock.now()) - timedelta(microseconds=1)
        return upcoming(t.spec, after, count, first=t.next_fire_at)

    def pause_trigger(self, name: str) -> Trigger:
        return self.scheduler.pause(name, True)

    def resume_trigger(self, name: str) -> Trigger:
        return self.scheduler.pause(name, False)

    def delete_trigger(self, name: str) -> None:
        if not self.store.delete_trigger(name):
            raise TriggerNotFound(f"no trigger named {name!r}")

    def run_trigger(self, name: str) -> Job:
        """Run a trigger's job now ("run now"), recorded as its last manual run."""
        return self.get_job(self.scheduler.run_now(name))

    def emit(self, name: str, data: Any = None, conn: Any = None) -> list[int]:
        """Emit an application event; matching event triggers make their jobs."""
        return self.scheduler.emit(name, data, conn)

    def fire_webhook(self, secret: str, payload: Any = None) -> list[int]:
        return self.scheduler.webhook(secret, payload)

    def scheduler_tick(self) -> int:
        """Fire due triggers once (workers do this every second; tests and drain call it)."""
        return self.scheduler.tick()

    # -- recurring named jobs (the Boundary seed) ---------------------------------------

    def recurring(self, name: str, task: str | Task[Any, Any], *, next_run_in: Duration = 0,
                  args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None, **opts: Any) -> Job:  # fmt: skip
        """Register a named recurring job: one live job per name across all servers (so at most
        one run at a time). Registering again leaves the stored next run as it is. The handler
        returns ``duly.Reschedule(in_=...)`` to choose its next run; any other return ends it."""
        opts.setdefault("max_attempts", 1_000_000)
        return self.enqueue(task, args, kwargs, key=f"recurring:{name}", mode="ignore", run_in=next_run_in, **opts)

    def run_at_least_within(self, name: str, within: Duration) -> Job:
        """Move the named recurring job's next run earlier, to now + ``within`` at the latest;
        never later. While it runs, the bound is kept and applies to the run its handler
        picks (or its retry). Unknown name: TriggerNotFound."""
        if not name:
            raise InvalidOption("missing name")
        job: Job | None = self.store.run_at_least_within(f"recurring:{name}", to_seconds(within))
        if job is None:
            raise TriggerNotFound(f"recurring job {name!r} does not exist")
        return job
