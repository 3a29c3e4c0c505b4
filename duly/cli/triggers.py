"""``duly triggers ...``: list, add, show, pause, resume, delete and run triggers."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from duly.cli._common import app_options, console, guarded, open_app, print_json, when
from duly.core.durations import parse_duration
from duly.core.triggers import Trigger


def _row(t: Trigger) -> list[Text]:
    s = t.spec
    rule = s.spec + (f" ({s.timezone})" if s.timezone else "")
    if s.debounce:
        rule += f" debounce {s.debounce:g}s"
    return [
        Text(s.name), Text(s.kind.value), Text(rule), Text(s.task),
        Text("paused", style="yellow") if t.paused else Text("active", style="green"),
        Text(when(t.next_fire_at)), Text(str(t.missed)), Text(when(t.last_fire_at)),
    ]  # fmt: skip


@click.group("triggers")
def triggers_group() -> None:
    """Stored schedules: cron, every, at/in, event, webhook and manual triggers."""


@triggers_group.command("list")
@app_options
@click.option("--json", "as_json", is_flag=True)
@guarded
def list_cmd(app_path: str | None, url: str | None, prefix: str, as_json: bool) -> None:
    """Every trigger with its rule, state and next fire time."""
    app = open_app(app_path, url, prefix)
    triggers = app.triggers()
    if as_json:
        print_json(triggers)
        return
    table = Table("name", "kind", "rule", "task", "status", "next fire", "missed", "last fired")
    for t in triggers:
        table.add_row(*_row(t))
    console.print(table)


@triggers_group.command("show")
@app_options
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@guarded
def show_cmd(app_path: str | None, url: str | None, prefix: str, name: str, as_json: bool) -> None:
    """A trigger's rule, state (last success, failure, manual run) and next ten fire times."""
    app = open_app(app_path, url, prefix)
    t = app.trigger(name)
    state = app.trigger_state(name)
    nxt = app.upcoming(name, 10)
    if as_json:
        print_json({"trigger": t, "state": state, "upcoming": nxt})
        return
    grid = Table.grid(padding=(0, 2))
    for label, value in (
        ("name", t.spec.name), ("kind", t.spec.kind.value), ("rule", t.spec.spec), ("time zone", t.spec.timezone),
        ("task", t.spec.task), ("args", json.dumps(t.spec.args)), ("kwargs", json.dumps(t.spec.kwargs)),
        ("job options", " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                 for k, v in t.spec.options().items()) or "-"),
        ("start", when(t.spec.start_at)), ("end", when(t.spec.end_at)),
        ("filter", json.dumps(t.spec.filter) if t.spec.filter else "-"),
        ("catch-up", f"{t.spec.catch_up.value} (limit {t.spec.catch_up_limit})"), ("paused", t.paused),
        ("missed slots", t.missed), ("status", state.status),
        ("last execution", f"{when(state.last_execution)} job {state.last_executed_job_id}"),
        ("last success", f"{when(state.last_success)} job {state.last_successful_job_id}"),
        ("last failure", f"{when(state.last_failure)} job {state.last_failed_job_id} {state.last_error or ''}"),
        ("last manual run", f"{when(state.last_manual_execution)} job {state.last_manual_job_id}"),
    ):  # fmt: skip
        grid.add_row(Text(label, style="bold"), Text(str(value)))
    console.print(grid)
    console.print(Text("next fire times:", style="bold"))
    for dt in nxt:
        console.print(f"  {dt.isoformat()}")


@triggers_group.command("add")
@app_options
@click.argument("name")
@click.option("--task", required=True, help="Task name the trigger's jobs run.")
@click.option("--cron")
@click.option("--every", help="Interval, e.g. 10m.")
@click.option("--at", help="ISO 8601 time with offset.")
@click.option("--in", "in_", help="Delay from now, e.g. 1h30m.")
@click.option("--event", help="Event name or glob, e.g. order.*")
@click.option("--webhook", is_flag=True)
@click.option("--manual", is_flag=True)
@click.option("--tz", help="Time zone of a cron trigger, e.g. Europe/Paris.")
@click.option("--args", "args_json", default="[]")
@click.option("--kwargs", "kwargs_json", default="{}")
@click.option("--queue")
@click.option("--priority", type=int)
@click.option("--max-attempts", type=int, help="Attempts each job of the trigger gets.")
@click.option("--expires-in", help="Each job expires this long after its slot, e.g. 30m.")
@click.option("--start", help="Cron/every: first possible slot, ISO 8601 with offset.")
@click.option("--end", help="Cron/every: no slot after this time, ISO 8601 with offset.")
@click.option("--filter", "filter_json", help='Event: JSON object of field values the data must have, e.g. {"status": "paid"}.')
@click.option("--catch-up", type=click.Choice(["skip", "latest", "all"]), default="latest", show_default=True)
@click.option("--catch-up-limit", type=click.IntRange(min=1), help="With --catch-up all: at most this many missed slots.")
@click.option("--debounce", help="Event/webhook: collect events for this long into one job.")
@click.option("--json", "as_json", is_flag=True)
@guarded
def add_cmd(app_path: str | None, url: str | None, prefix: str, name: str, task: str, cron: str | None,
            every: str | None, at: str | None, in_: str | None, event: str | None, webhook: bool, manual: bool,
            tz: str | None, args_json: str, kwargs_json: str, queue: str | None, priority: int | None,
            max_attempts: int | None, expires_in: str | None, start: str | None, end: str | None,
            filter_json: str | None, catch_up: str, catch_up_limit: int | None, debounce: str | None,
            as_json: bool) -> None:  # fmt: skip
    """Add a trigger at run time."""
    args, kwargs = _json_option("--args", args_json), _json_option("--kwargs", kwargs_json)
    flt = None if filter_json is None else _json_option("--filter", filter_json)
    if flt is not None and not isinstance(flt, dict):
        raise click.BadParameter("must be a JSON object of field: value", param_hint="--filter")
    expires, window = _duration_option("--expires-in", expires_in), _duration_option("--debounce", debounce)
    app = open_app(app_path, url, prefix)
    given = dict(queue=queue, priority=priority, max_attempts=max_attempts, expires_in=expires, start=start,
                 end=end, filter=flt, catch_up_limit=catch_up_limit, debounce=window)  # fmt: skip
    opts: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    t = app.schedule(task, name=name, cron=cron, every=every, at=at, in_=in_, event=event, webhook=webhook,
                     manual=manual, tz=tz, args=args, kwargs=kwargs, catch_up=catch_up, **opts)  # fmt: skip
    if as_json:
        print_json(t)
        return
    console.print(f"trigger {t.name!r} added; next fire {when(t.next_fire_at)}")
    if t.spec.secret:
        console.print(f"webhook URL: /hooks/{t.spec.secret}")


def _duration_option(hint: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=hint) from None


def _json_option(hint: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint=hint) from None


def _simple(verb: str, method: str, doc: str) -> Any:
    @click.command(verb)
    @app_options
    @click.argument("name")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON: the trigger, the job run, or what was deleted.")
    @guarded
    def cmd(app_path: str | None, url: str | None, prefix: str, name: str, as_json: bool) -> None:
        app = open_app(app_path, url, prefix)
        result = getattr(app, method)(name)
        if as_json:
            print_json({"deleted": name} if verb == "delete" else {"job": result} if verb == "run" else result)
        elif verb == "run":
            console.print(f"trigger {name!r}: job {result.id} enqueued")
        else:
            console.print(f"trigger {name!r}: {verb.rstrip('e')}ed")

    cmd.help = doc
    return cmd


triggers_group.add_command(_simple("pause", "pause_trigger", "Stop a trigger from firing (its slots are skipped)."))
triggers_group.add_command(_simple("resume", "resume_trigger", "Let a paused trigger fire again from now on."))
triggers_group.add_command(_simple("delete", "delete_trigger", "Remove a trigger (its jobs stay)."))
triggers_group.add_command(_simple("run", "run_trigger", "Run a trigger's job now (a manual run)."))
