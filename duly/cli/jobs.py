"""``duly jobs ...``, ``duly queues``, ``duly migrate``, ``duly enqueue``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from duly.cli._common import (
    EXIT_CONFLICT,
    EXIT_NOT_FOUND,
    STATE_STYLE,
    app_options,
    console,
    err_console,
    guarded,
    open_app,
    print_json,
    when,
)
from duly.core.errors import JobNotFound
from duly.core.model import Job
from duly.core.states import JobState

STATES = [s.value for s in JobState]


def _job_row(job: Job) -> list[Text]:
    progress = f"{job.progress_done}/{job.progress_total or '?'}" if job.progress_done is not None else ""
    return [
        Text(str(job.id)),
        Text(job.state.value, style=STATE_STYLE.get(job.state.value, "")),
        Text(job.queue),
        Text(job.task),
        Text(f"{job.attempt}/{job.max_attempts}"),
        Text(when(job.run_at)),
        Text(progress),
        Text((job.last_error or "")[:60]),
    ]


@click.group("jobs")
def jobs_group() -> None:
    """List, inspect, retry, cancel and delete jobs."""


def _filters(fn: Any) -> Any:
    fn = click.option("--queue", "-q")(fn)
    fn = click.option("--state", "-s", type=click.Choice(STATES))(fn)
    fn = click.option("--task", "-t")(fn)
    fn = click.option("--search", "text", help="Text in the task, key, arguments or last error.")(fn)
    return fn


@jobs_group.command("list")
@app_options
@_filters
@click.option("--limit", "-n", default=50, show_default=True)
@click.option("--before", "before_id", type=int, help="Page: show jobs with ids below this one.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@guarded
def list_cmd(app_path: str | None, url: str | None, prefix: str, queue: str | None, state: str | None,
             task: str | None, text: str | None, limit: int, before_id: int | None, as_json: bool) -> None:  # fmt: skip
    """List jobs, newest first (keyset paging with --before)."""
    app = open_app(app_path, url, prefix)
    jobs = app.jobs(queue=queue, state=state, task=task, text=text, before_id=before_id, limit=limit)
    if as_json:
        print_json(jobs)
        return
    table = Table("id", "state", "queue", "task", "attempt", "run at", "progress", "last error")
    for job in jobs:
        table.add_row(*_job_row(job))
    console.print(table)
    if len(jobs) == limit:
        console.print(Text(f"more: --before {jobs[-1].id}", style="dim"))


@jobs_group.command("show")
@app_options
@click.argument("job_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@guarded
def show_cmd(app_path: str | None, url: str | None, prefix: str, job_id: int, as_json: bool) -> None:
    """Show a job: spec, state, progress, result and every attempt with errors and logs."""
    app = open_app(app_path, url, prefix)
    job = app.get_job(job_id)
    attempts = app.attempts(job_id)
    if as_json:
        print_json({"job": job, "attempts": attempts})
        return
    spec = Table.grid(padding=(0, 2))
    for name in ("id", "task", "queue", "state", "priority", "key", "run_at", "expires_at", "attempt",
                 "errors", "max_attempts", "worker_id", "lease_expires_at", "created_at", "finished_at"):  # fmt: skip
        value = getattr(job, name)
        spec.add_row(Text(name, style="bold"), Text(when(value) if hasattr(value, "strftime") else str(value)))
    spec.add_row(Text("args", style="bold"), Text(json.dumps(job.args, ensure_ascii=False)))
    spec.add_row(Text("kwargs", style="bold"), Text(json.dumps(job.kwargs, ensure_ascii=False)))
    if job.progress_done is not None:
        spec.add_row(Text("progress", style="bold"), Text(f"{job.progress_done}/{job.progress_total or '?'}"))
    spec.add_row(Text("result", style="bold"), Text(json.dumps(job.result, ensure_ascii=False)))
    console.print(spec)
    for a in attempts:
        head = Text(f"\nattempt {a.attempt} ", style="bold")
        head.append(a.outcome.value, style=STATE_STYLE.get(a.outcome.value, "yellow"))
        head.append(f"  worker {a.worker_id}  {when(a.started_at)} → {when(a.finished_at)}")
        console.print(head)
        if a.error_type:
            console.print(Text(f"{a.error_type}: {a.error_message}", style="red"))
        if a.traceback:
            console.print(Text(a.traceback.rstrip(), style="dim"))
        if a.log:
            console.print(Text(a.log.rstrip()))


def _act(verb: str, action: str) -> Any:
    @click.command(verb)
    @app_options
    @click.argument("ids", type=int, nargs=-1)
    @_filters
    @click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
    @click.option("--json", "as_json", is_flag=True)
    @guarded
    def cmd(app_path: str | None, url: str | None, prefix: str, ids: tuple[int, ...], queue: str | None,
            state: str | None, task: str | None, text: str | None, yes: bool, as_json: bool) -> None:  # fmt: skip
        app = open_app(app_path, url, prefix)
        targets = list(ids)
        if not targets:
            if not any((queue, state, task, text)):
                raise click.UsageError(f"give job ids, or a filter (--queue/--state/--task/--search) to {verb} by")
            targets = [j.id for j in _all_matching(app, queue, state, task, text)]
            if not targets:
                console.print("no matching jobs")
                return
            if not yes:
                click.confirm(f"{verb} {len(targets)} job(s)?", abort=True)
        done, errors, missing = [], [], []
        with progress_bar(verb, len(targets)) as (bar, step):
            for job_id in targets:
                try:
                    getattr(app, action)(job_id)
                    done.append(job_id)
                except JobNotFound as exc:
                    errors.append((job_id, str(exc)))
                    missing.append(job_id)
                except Exception as exc:  # noqa: BLE001 - report each, go on
                    errors.append((job_id, str(exc)))
                bar.advance(step)
        if as_json:
            print_json({"done": done, "errors": [{"id": i, "error": e} for i, e in errors]})
        else:
            console.print(f"{verb}: {len(done)} job(s)")
            for job_id, msg in errors:
                console.print(Text(f"job {job_id}: {msg}", style="red"))
        if errors:  # 3: every failure was a job that does not exist; 4: some refused
            raise SystemExit(EXIT_NOT_FOUND if len(missing) == len(errors) else EXIT_CONFLICT)

    cmd.help = f"{verb.capitalize()} jobs by id, or every job matching a filter (asks first)."
    return cmd


#: Bulk actions on at least this many jobs show a progress bar (on a terminal, on stderr).
PROGRESS_FROM = 50


@contextmanager
def progress_bar(verb: str, total: int) -> Iterator[tuple[Progress, TaskID]]:
    """A progress bar on stderr for ``total`` steps, shown from ``PROGRESS_FROM`` on and
    only on a terminal (Rich decides: $TTY_COMPATIBLE / $TTY_INTERACTIVE force it)."""
    columns = (TextColumn(verb), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True, disable=total < PROGRESS_FROM) as bar:
        yield bar, bar.add_task(verb, total=total)


def _all_matching(app: Any, queue: str | None, state: str | None, task: str | None, text: str | None) -> list[Job]:
    out: list[Job] = []
    before = None
    while True:
        page = app.jobs(queue=queue, state=state, task=task, text=text, before_id=before, limit=1000)
        out.extend(page)
        if len(page) < 1000:
            return out
        before = page[-1].id


jobs_group.add_command(_act("retry", "retry"))
jobs_group.add_command(_act("cancel", "cancel"))
jobs_group.add_command(_act("delete", "delete"))


@click.command("migrate")
@app_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@guarded
def migrate_cmd(app_path: str | None, url: str | None, prefix: str, as_json: bool) -> None:
    """Create or upgrade duly's tables."""
    from duly.core.clock import SystemClock
    from duly.store.url import open_store, redact_url, resolve_url

    target = open_app(app_path, url, prefix).url if app_path else resolve_url(url)
    store = open_store(target, SystemClock(), prefix, auto_migrate=True)
    version = store.schema_version()
    store.close()
    if as_json:
        print_json({"url": redact_url(target), "schema_version": version})
        return
    console.print(f"{redact_url(target)}: schema at version {version}")


@click.command("enqueue")
@app_options
@click.argument("task")
@click.option("--args", "args_json", default="[]", help="JSON list of positional arguments.")
@click.option("--kwargs", "kwargs_json", default="{}", help="JSON object of keyword arguments.")
@click.option("--queue")
@click.option("--priority", type=int)
@click.option("--run-in", help="Delay, e.g. 90s or 1h30m.")
@click.option("--key")
@click.option("--mode", type=click.Choice(["new", "ignore", "replace"]), default="new")
@click.option("--json", "as_json", is_flag=True)
@guarded
def enqueue_cmd(app_path: str | None, url: str | None, prefix: str, task: str, args_json: str, kwargs_json: str,
                queue: str | None, priority: int | None, run_in: str | None, key: str | None, mode: str,
                as_json: bool) -> None:  # fmt: skip
    """Enqueue a job by task name (the task need not be importable here)."""
    try:
        args, kwargs = json.loads(args_json), json.loads(kwargs_json)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}") from None
    app = open_app(app_path, url, prefix)
    opts = {k: v for k, v in dict(queue=queue, priority=priority, run_in=run_in, key=key).items() if v is not None}
    job = app.enqueue(task, args=args, kwargs=kwargs, mode=mode, **opts)
    if as_json:
        print_json(job)
    else:
        console.print(f"enqueued job {job.id} ({job.state.value})")
