"""Triggers on PostgreSQL: stored rules, slots fired once, debounce windows (see core.triggers).

The same verbs as ``duly.store.sqlite.triggers`` (the reference). A firing is one
transaction: the guarded update of the trigger (its previous next fire time must still be
there: a second scheduler racing on the same trigger waits for the row lock, then matches
nothing), one row per slot in ``slots`` (primary key ``(trigger_id, slot_at)``, inserted
``ON CONFLICT DO NOTHING``: a slot that already has its job gets no other), the slots' jobs,
and the trigger's new state.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from duly._faults import crash_point
from duly.core.errors import DuplicateTrigger
from duly.core.model import EnqueueParams
from duly.core.triggers import CatchUp, Fire, Trigger, TriggerKind, TriggerSpec, TriggerState
from duly.store import _sql
from duly.store.postgres import _conn
from duly.store.postgres._conn import fetch
from duly.store.postgres._produce import Producer
from duly.store.postgres._rows import utc

#: How often add_trigger retries when a declared trigger vanishes between insert and update.
DECLARE_RETRIES = 5


def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class PostgresTriggers:
    """Mixed into ``PostgresStore``; relies on its plumbing (declared for type checkers)."""

    _names: dict[str, sql.Composable]
    _now_param: Callable[[], datetime | None]
    _connection: Callable[[], AbstractContextManager[psycopg.Connection[Any]]]
    _producer: Producer
    _trigger_queries: dict[str, str] | None = None

    @property
    def _tq(self) -> dict[str, str]:
        if self._trigger_queries is None:
            raw = _sql.load_queries("duly.store.postgres", "triggers.sql")
            names = {**self._names, "tcols": sql.SQL(raw.pop("trigger_columns"))}
            self._trigger_queries = {
                k: sql.SQL(v).format(**names).as_string(None) for k, v in raw.items()
            }
        return self._trigger_queries

    def _trun(self, name: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """One statement on a pooled connection, committed at once (autocommit)."""
        with self._connection() as conn:
            return fetch(conn, self._tq[name], params)

    @staticmethod
    def _trigger(row: Any) -> Trigger:
        opts = json.loads(row[8])
        spec = TriggerSpec(
            name=row[1], kind=TriggerKind(row[2]), task=row[5], spec=row[3], timezone=row[4],
            args=json.loads(row[6]), kwargs=json.loads(row[7]), queue=opts.get("queue"),
            priority=opts.get("priority"), max_attempts=opts.get("max_attempts"),
            expires_in=opts.get("expires_in"), catch_up=CatchUp(row[9]), catch_up_limit=row[10],
            start_at=utc(row[11]), end_at=utc(row[12]), debounce=row[13],
            filter=_json(row[14]) or None, secret=row[15],
        )  # fmt: skip
        return Trigger(
            id=row[0], spec=spec, declared=bool(row[16]), paused=bool(row[17]),
            next_fire_at=utc(row[18]), window_events=_json(row[19]) or None,
            missed=row[20], last_fire_at=utc(row[21]), last_job_id=row[22],
            last_manual_at=utc(row[23]), last_manual_job_id=row[24],
            created_at=utc(row[25]), updated_at=utc(row[26]),  # type: ignore[arg-type]
        )  # fmt: skip

    def _trigger_values(
        self, t: TriggerSpec, declared: bool, next_fire_at: datetime | None
    ) -> dict[str, Any]:
        return {
            "name": t.name, "kind": t.kind.value, "spec": t.spec, "timezone": t.timezone,
            "task": t.task, "args": json.dumps(t.args), "kwargs": json.dumps(t.kwargs),
            "options": json.dumps(t.options()), "catch_up": t.catch_up.value,
            "catch_up_limit": t.catch_up_limit, "start_at": t.start_at, "end_at": t.end_at,
            "debounce": t.debounce, "filter": json.dumps(t.filter) if t.filter else None,
            "secret": t.secret, "declared": declared, "next_fire_at": next_fire_at,
            "now": self._now_param(),
        }  # fmt: skip

    # -- definitions --------------------------------------------------------------------

    def add_trigger(
        self, t: TriggerSpec, next_fire_at: datetime | None, declared: bool = False
    ) -> Trigger:
        """Store a new trigger; a declared one (from code) updates the stored rule instead."""
        values = self._trigger_values(t, declared, next_fire_at)
        with self._connection() as conn:
            for _ in range(DECLARE_RETRIES):
                with conn.transaction():
                    rows = fetch(conn, self._tq["trigger_insert"], values)
                    if rows:
                        return self._trigger(rows[0])
                    if not declared:
                        raise DuplicateTrigger(f"a trigger named {t.name!r} already exists")
                    rows = fetch(conn, self._tq["trigger_update_declared"], values)
                    if rows:
                        return self._trigger(rows[0])
                # deleted between our insert's conflict and our update: insert again
        raise RuntimeError(f"trigger {t.name!r} kept being deleted while it was declared")

    def get_trigger(self, name: str) -> Trigger | None:
        rows = self._trun("trigger_get", {"name": name})
        return self._trigger(rows[0]) if rows else None

    def list_triggers(self) -> list[Trigger]:
        return [self._trigger(r) for r in self._trun("trigger_list", {})]

    def event_triggers(self) -> list[Trigger]:
        return [self._trigger(r) for r in self._trun("trigger_events", {})]

    def trigger_by_secret(self, secret: str) -> Trigger | None:
        rows = self._trun("trigger_by_secret", {"secret": secret})
        return self._trigger(rows[0]) if rows else None

    def delete_trigger(self, name: str) -> bool:
        with self._connection() as conn:
            return conn.execute(self._tq["trigger_delete"], {"name": name}).rowcount > 0

    def pause_trigger(
        self, name: str, paused: bool, next_fire_at: datetime | None
    ) -> Trigger | None:
        values = {
            "name": name,
            "paused": paused,
            "next_fire_at": next_fire_at,
            "now": self._now_param(),
        }
        rows = self._trun("trigger_pause", values)
        return self._trigger(rows[0]) if rows else None

    # -- firing -------------------------------------------------------------------------

    def due_triggers(self, limit: int = 100) -> list[Trigger]:
        rows = self._trun("trigger_due", {"now": self._now_param(), "limit": limit})
        return [self._trigger(r) for r in rows]

    def next_fire_at(self) -> datetime | None:
        rows = self._trun("trigger_next_fire", {})
        return utc(rows[0][0]) if rows else None

    def fire(self, f: Fire) -> list[int] | None:
        """Record a firing atomically; None when another scheduler recorded it first."""
        now = self._now_param()
        ids: list[int] = []
        with self._connection() as conn, conn.transaction():
            if not f.manual:
                guard = {
                    "id": f.trigger_id, "expected": f.expected_next,
                    "next_fire_at": f.next_fire_at, "missed": f.missed,
                    "clear_window": f.clear_window, "taken": f.window_taken, "now": now,
                }  # fmt: skip
                if not fetch(conn, self._tq["trigger_advance"], guard):
                    return None
            for slot_at, params in f.jobs:
                slot = {"id": f.trigger_id, "slot_at": slot_at}
                if slot_at is not None:
                    if not fetch(conn, self._tq["slot_insert"], slot):
                        continue  # this slot already has its job
                    crash_point("fire.between_slot_and_job", [(f.trigger_id, slot_at.isoformat())])
                params.trigger_id = f.trigger_id
                job_id = self._enqueue_in(conn, params)
                ids.append(job_id)
                if slot_at is not None:
                    fetch(conn, self._tq["slot_job"], {**slot, "job_id": job_id})
            if ids:
                which = "trigger_manual" if f.manual else "trigger_fired"
                fetch(conn, self._tq[which], {"id": f.trigger_id, "job_id": ids[-1], "now": now})
            if f.delete:
                fetch(conn, self._tq["trigger_delete_id"], {"id": f.trigger_id})
        return ids

    def _enqueue_in(self, conn: psycopg.Connection[Any], params: EnqueueParams) -> int:
        return self._producer.enqueue(conn, params).job.id

    def append_event(
        self, trigger_id: int, event: Any, window_end: datetime, conn: Any = None
    ) -> None:
        """Add an event to a debounce window, opening the window if none is open. With
        ``conn`` (psycopg, or SQLAlchemy on psycopg) it runs in the caller's transaction,
        left for the caller to commit."""
        values = {
            "id": trigger_id, "event": json.dumps(event), "window_end": window_end,
            "now": self._now_param(),
        }  # fmt: skip
        if conn is not None:
            fetch(_conn.caller_connection(conn), self._tq["window_append"], values)
            return
        self._trun("window_append", values)

    # -- reading ------------------------------------------------------------------------

    def trigger_state(self, trigger: Trigger) -> TriggerState:
        rows = self._trun("trigger_jobs", {"id": trigger.id})
        last = rows[0] if rows else None
        ok = next((r for r in rows if r[1] == "succeeded"), None)
        bad = next((r for r in rows if r[1] in ("failed", "expired")), None)
        started = next((r for r in rows if r[2] is not None), None)
        return TriggerState(
            status=last[1] if last else None,
            last_execution=utc(started[2]) if started else None,
            last_executed_job_id=started[0] if started else None,
            last_success=utc(ok[3]) if ok else None,
            last_successful_job_id=ok[0] if ok else None,
            last_failure=utc(bad[3]) if bad else None,
            last_failed_job_id=bad[0] if bad else None,
            last_error=bad[4] if bad else None,
            last_manual_execution=trigger.last_manual_at,
            last_manual_job_id=trigger.last_manual_job_id,
        )
