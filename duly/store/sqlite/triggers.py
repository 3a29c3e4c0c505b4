"""Triggers on SQLite: stored rules, slots fired once, debounce windows (see core.triggers)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from duly._faults import crash_point
from duly.core.errors import DuplicateTrigger
from duly.core.model import EnqueueParams
from duly.core.triggers import CatchUp, Fire, Trigger, TriggerKind, TriggerSpec, TriggerState
from duly.store.sqlite._conn import Cursor, _caller_connection
from duly.store.sqlite._rows import _dt, _ts

TRIGGER_COLUMNS = (
    "id, name, kind, spec, timezone, task, args, kwargs, options, catch_up, catch_up_limit, "
    "start_at, end_at, debounce, filter, secret, declared, paused, next_fire_at, window_events, "
    "missed, last_fire_at, last_job_id, last_manual_at, last_manual_job_id, created_at, updated_at"
)


class SQLiteTriggers:
    """Mixin of SQLiteStore: the trigger verbs."""

    _q: dict[str, str]

    # helpers provided by SQLiteStore
    def _write(self) -> Any:
        raise NotImplementedError

    def _read(self, query: str, params: Any = ()) -> list[Any]:
        raise NotImplementedError

    def _now(self) -> int:
        raise NotImplementedError

    def _enqueue_on(self, cur: Any, p: EnqueueParams, now: int) -> Any:
        raise NotImplementedError

    def _trigger(self, row: Any) -> Trigger:
        opts = json.loads(row[8])
        spec = TriggerSpec(
            name=row[1], kind=TriggerKind(row[2]), task=row[5], spec=row[3], timezone=row[4],
            args=json.loads(row[6]), kwargs=json.loads(row[7]), queue=opts.get("queue"),
            priority=opts.get("priority"), max_attempts=opts.get("max_attempts"),
            expires_in=opts.get("expires_in"), catch_up=CatchUp(row[9]), catch_up_limit=row[10],
            start_at=_dt(row[11]), end_at=_dt(row[12]), debounce=row[13],
            filter=json.loads(row[14]) if row[14] else None, secret=row[15],
        )  # fmt: skip
        return Trigger(
            id=row[0], spec=spec, declared=bool(row[16]), paused=bool(row[17]),
            next_fire_at=_dt(row[18]), window_events=json.loads(row[19]) if row[19] else None,
            missed=row[20], last_fire_at=_dt(row[21]), last_job_id=row[22],
            last_manual_at=_dt(row[23]), last_manual_job_id=row[24],
            created_at=_dt(row[25]), updated_at=_dt(row[26]),  # type: ignore[arg-type]
        )  # fmt: skip

    def _trigger_params(self, t: TriggerSpec, declared: bool, next_fire_at: datetime | None, now: int) -> tuple[Any, ...]:
        return (
            t.name, t.kind.value, t.spec, t.timezone, t.task, json.dumps(t.args), json.dumps(t.kwargs),
            json.dumps(t.options()), t.catch_up.value, t.catch_up_limit, _ts(t.start_at), _ts(t.end_at),
            t.debounce, json.dumps(t.filter) if t.filter else None, t.secret, 1 if declared else 0,
            _ts(next_fire_at), now,
        )  # fmt: skip

    #: The scheduler writes the triggers declared in code through the caller's connection
    #: when an event is emitted inside the caller's transaction (which may hold the write lock).
    declares_in_caller_transaction = True

    def add_trigger(self, t: TriggerSpec, next_fire_at: datetime | None, declared: bool = False,
                    conn: Any = None) -> Trigger:  # fmt: skip
        """Store a new trigger; a declared one (from code) updates the stored rule instead.
        With ``conn`` (the caller's connection) it is written in the caller's transaction."""
        now = self._now()
        params = self._trigger_params(t, declared, next_fire_at, now)
        if conn is not None:
            return self._add_trigger_on(Cursor(_caller_connection(conn).cursor()), t, declared, params)
        with self._write() as cur:
            return self._add_trigger_on(cur, t, declared, params)

    def _add_trigger_on(self, cur: Any, t: TriggerSpec, declared: bool, params: tuple[Any, ...]) -> Trigger:
        row = cur.execute(self._q["trigger_insert"], params).fetchone()
        if row is None:
            if not declared:
                raise DuplicateTrigger(f"a trigger named {t.name!r} already exists")
            row = cur.execute(self._q["trigger_update_declared"], params).fetchone()
        return self._trigger(row)

    def get_trigger(self, name: str) -> Trigger | None:
        rows = self._read(self._q["trigger_get"], (name,))
        return self._trigger(rows[0]) if rows else None

    def list_triggers(self) -> list[Trigger]:
        return [self._trigger(r) for r in self._read(self._q["trigger_list"])]

    def event_triggers(self) -> list[Trigger]:
        return [self._trigger(r) for r in self._read(self._q["trigger_events"])]

    def trigger_by_secret(self, secret: str) -> Trigger | None:
        rows = self._read(self._q["trigger_by_secret"], (secret,))
        return self._trigger(rows[0]) if rows else None

    def delete_trigger(self, name: str) -> bool:
        with self._write() as cur:
            cur.execute(self._q["trigger_delete"], (name,))
            deleted: bool = cur.rowcount > 0
        return deleted

    def pause_trigger(self, name: str, paused: bool, next_fire_at: datetime | None) -> Trigger | None:
        with self._write() as cur:
            row = cur.execute(self._q["trigger_pause"], (name, 1 if paused else 0, _ts(next_fire_at), self._now())).fetchone()
        return self._trigger(row) if row else None

    def due_triggers(self, limit: int = 100) -> list[Trigger]:
        return [self._trigger(r) for r in self._read(self._q["trigger_due"], (self._now(), limit))]

    def next_fire_at(self) -> datetime | None:
        rows = self._read(self._q["trigger_next_fire"])
        return _dt(rows[0][0]) if rows else None

    def fire(self, f: Fire) -> list[int] | None:
        """Record a firing atomically; None when another scheduler recorded it first."""
        now = self._now()
        ids: list[int] = []
        with self._write() as cur:
            if not f.manual:
                cur.execute(
                    self._q["trigger_advance"],
                    (f.trigger_id, _ts(f.expected_next), _ts(f.next_fire_at), f.missed, None, None,
                     1 if f.clear_window else 0, now, f.window_taken),
                )  # fmt: skip
                if cur.rowcount == 0:
                    return None
            for slot_at, params in f.jobs:
                if slot_at is not None:
                    cur.execute(self._q["slot_insert"], (f.trigger_id, _ts(slot_at)))
                    if cur.rowcount == 0:
                        continue  # this slot already has its job
                    crash_point("fire.between_slot_and_job", [(f.trigger_id, slot_at.isoformat())])
                params.trigger_id = f.trigger_id
                job_id = self._enqueue_on(cur, params, now).job.id
                ids.append(job_id)
                if slot_at is not None:
                    cur.execute(self._q["slot_job"], (job_id, f.trigger_id, _ts(slot_at)))
            if ids:
                which = "trigger_manual" if f.manual else "trigger_fired"
                cur.execute(self._q[which], (f.trigger_id, now, ids[-1]))
            if f.delete:
                cur.execute(self._q["trigger_delete_id"], (f.trigger_id,))
        return ids

    def append_event(self, trigger_id: int, event: Any, window_end: datetime, conn: Any = None) -> None:
        """Add an event to a debounce window, opening the window if none is open."""
        params = (trigger_id, json.dumps(event), _ts(window_end), self._now())
        if conn is not None:
            Cursor(_caller_connection(conn).cursor()).execute(self._q["window_append"], params)
            return
        with self._write() as cur:
            cur.execute(self._q["window_append"], params)

    def trigger_state(self, trigger: Trigger) -> TriggerState:
        rows = self._read(self._q["trigger_jobs"], (trigger.id,))
        last = rows[0] if rows else None
        ok = next((r for r in rows if r[1] == "succeeded"), None)
        bad = next((r for r in rows if r[1] in ("failed", "expired")), None)
        started = next((r for r in rows if r[2] is not None), None)
        return TriggerState(
            status=last[1] if last else None,
            last_execution=_dt(started[2]) if started else None,
            last_executed_job_id=started[0] if started else None,
            last_success=_dt(ok[3]) if ok else None,
            last_successful_job_id=ok[0] if ok else None,
            last_failure=_dt(bad[3]) if bad else None,
            last_failed_job_id=bad[0] if bad else None,
            last_error=bad[4] if bad else None,
            last_manual_execution=trigger.last_manual_at,
            last_manual_job_id=trigger.last_manual_job_id,
        )


