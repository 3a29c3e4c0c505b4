"""The scheduler: turns due triggers into jobs, once per slot, whatever the number of schedulers.

Every worker runs one (``tick`` every second, or sooner when a trigger is due). A tick reads the
due triggers, plans each firing with the pure rules of ``duly.core.triggers`` (catch-up policy,
next slot) and records it with ``store.fire``: the slots' rows, their jobs and the trigger's new
state in one transaction. Two schedulers racing on one trigger cannot both record it: the
trigger update is guarded by its previous next fire time, and the slot row has a unique key.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from duly.core.clock import Clock
from duly.core.errors import InvalidOption, TriggerNotFound
from duly.core.model import EnqueueParams
from duly.core.triggers import (
    Fire,
    Trigger,
    TriggerKind,
    TriggerSpec,
    event_matches,
    first_fire,
    plan,
    validate,
)
from duly.runtime import events

#: Builds the job of a firing: (trigger spec, slot time or None, extra kwargs) -> params.
JobBuilder = Callable[[TriggerSpec, datetime | None, dict[str, Any]], EnqueueParams]


class Scheduler:
    def __init__(self, store: Any, clock: Clock, build: JobBuilder) -> None:
        self.store = store
        self.clock = clock
        self.build = build
        self.declared: dict[str, TriggerSpec] = {}
        self._synced = False

    # -- definitions --------------------------------------------------------------------

    def declare(self, spec: TriggerSpec) -> None:
        """A trigger declared in code; stored (or updated) before the first use (``ensure_synced``)."""
        if spec.name in self.declared:
            raise InvalidOption(f"a trigger named {spec.name!r} is already declared")
        validate(spec, self.clock.now())
        self.declared[spec.name] = spec
        self._synced = False

    def sync(self, conn: Any = None) -> list[Trigger]:
        """Store (or update) every trigger declared in code; return them as stored. With
        ``conn``, in the caller's transaction (see ``ensure_synced``)."""
        now = self.clock.now()
        extra = {} if conn is None else {"conn": conn}
        stored = [self.store.add_trigger(spec, first_fire(spec, now), declared=True, **extra)
                  for spec in list(self.declared.values())]  # fmt: skip
        self._synced = conn is None
        return stored

    def ensure_synced(self, conn: Any = None) -> list[Trigger]:
        """Store the triggers declared in code before the first use that reads or fires
        triggers (a tick, an event, a webhook, a manual run, pausing, reading one): once,
        and again after a later ``declare``. Without it an ``app.emit`` made before the
        process's first tick found no ``@app.on_event`` trigger and was lost.

        ``conn`` is the caller's connection of ``emit(..., conn=conn)``. On SQLite its
        transaction may hold the database's write lock, which a write on another connection
        would wait for: the declared triggers are then written in that transaction (undone
        with it if it rolls back; returned, as only that transaction sees them) and synced
        again at the next use without ``conn``. PostgreSQL writes them on its own connection.
        """
        if self._synced:
            return []
        if conn is not None and getattr(self.store, "declares_in_caller_transaction", False):
            return self.sync(conn)
        self.sync()
        return []

    def add(self, spec: TriggerSpec) -> Trigger:
        now = self.clock.now()
        validate(spec, now)
        if spec.kind is TriggerKind.WEBHOOK and not spec.secret:
            spec.secret = secrets.token_urlsafe(24)
        trigger: Trigger = self.store.add_trigger(spec, first_fire(spec, now))
        return trigger

    # -- firing -------------------------------------------------------------------------

    def tick(self) -> int:
        """Fire every due trigger; return the number of jobs made."""
        self.ensure_synced()
        made = 0
        for trigger in self.store.due_triggers(100):
            made += self._fire_due(trigger)
        return made

    def _fire_due(self, t: Trigger) -> int:
        now = self.clock.now()
        due = t.next_fire_at
        assert due is not None
        spec = t.spec
        if spec.kind in (TriggerKind.EVENT, TriggerKind.WEBHOOK):  # a debounce window closed
            taken = t.window_events or []
            jobs = [(due, self.build(spec, due, {"events": taken}))]
            fire = Fire(t.id, due, jobs, None, clear_window=True, window_taken=len(taken))
        else:
            p = plan(spec, due, now)
            jobs = [(slot, self.build(spec, slot, {})) for slot in p.slots]
            one_shot = spec.kind is TriggerKind.AT
            fire = Fire(t.id, due, jobs, None if one_shot else p.next_fire_at, p.missed, delete=one_shot)
            if p.missed:
                events.emit("trigger.missed", trigger=spec.name, missed=p.missed, policy=spec.catch_up.value)
        ids = self.store.fire(fire)
        if ids:
            events.emit("trigger.fired", trigger=spec.name, jobs=ids)
        return len(ids or [])

    def next_fire_at(self) -> datetime | None:
        self.ensure_synced()
        result: datetime | None = self.store.next_fire_at()
        return result

    # -- events, webhooks, manual runs --------------------------------------------------

    def emit(self, name: str, data: Any = None, conn: Any = None) -> list[int]:
        """Deliver an application event to the event triggers that match it. Triggers without
        debounce make a job at once (inside ``conn``'s transaction when given); with debounce
        the first event opens a window and the window's job gets every event it collected."""
        in_caller = [t for t in self.ensure_synced(conn) if t.spec.kind is TriggerKind.EVENT and not t.paused]
        made: list[int] = []
        event = {"name": name, "data": data, "at": self.clock.now().isoformat()}
        found = {t.name: t for t in self.store.event_triggers()}
        found.update((t.name, t) for t in in_caller)  # written in the caller's transaction
        for t in found.values():
            if event_matches(t.spec.spec, t.spec.filter, name, data):
                made.extend(self._deliver(t, event, conn))
        return made

    def webhook(self, secret: str, payload: Any) -> list[int]:
        self.ensure_synced()
        t = self.store.trigger_by_secret(secret)
        if t is None or t.paused:
            raise TriggerNotFound("no active webhook trigger has this secret")
        return self._deliver(t, {"name": "webhook", "data": payload, "at": self.clock.now().isoformat()}, None)

    def _deliver(self, t: Trigger, event: dict[str, Any], conn: Any) -> list[int]:
        if t.spec.debounce:
            end = self.clock.now() + timedelta(seconds=t.spec.debounce)
            self.store.append_event(t.id, event, end, conn=conn)
            return []
        params = self.build(t.spec, None, {"event": event})
        params.trigger_id = t.id
        result = self.store.enqueue(params, conn=conn)
        return [result.job.id]

    def run_now(self, name: str) -> int:
        self.ensure_synced()
        t = self.store.get_trigger(name)
        if t is None:
            raise TriggerNotFound(f"no trigger named {name!r}")
        ids = self.store.fire(Fire(t.id, t.next_fire_at, [(None, self.build(t.spec, None, {}))], t.next_fire_at, manual=True))
        return int(ids[0])

    def pause(self, name: str, paused: bool) -> Trigger:
        self.ensure_synced()
        t = self.store.get_trigger(name)
        if t is None:
            raise TriggerNotFound(f"no trigger named {name!r}")
        nxt = t.next_fire_at if paused else first_fire(t.spec, self.clock.now())
        if not paused and t.spec.kind not in (TriggerKind.EVERY, TriggerKind.CRON):
            nxt = t.next_fire_at  # an at time, or an open debounce window, stays as it is
        updated: Trigger = self.store.pause_trigger(name, paused, nxt)
        return updated
