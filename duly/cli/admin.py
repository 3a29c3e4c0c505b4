"""``duly queues`` (counts, throughput, pause/resume), ``duly workers``, ``duly prune`` and
``duly dashboard``: thin shells over the App's operating verbs (``duly._admin``)."""

from __future__ import annotations

import sys
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from duly._admin import throughput_since
from duly.app import App
from duly.cli._common import (
    STATE_STYLE,
    app_options,
    console,
    err_console,
    guarded,
    open_app,
    print_json,
    when,
)
from duly.core.admin import QueueCounts, ThroughputPoint
from duly.core.durations import format_duration
from duly.core.errors import InvalidOption
from duly.core.states import JobState

STATES = [s.value for s in JobState]
SPARK = "▁▂▃▄▅▆▇█"
#: Minutes of throughput ``duly queues`` shows.
MINUTES = 15


def per_minute(points: list[ThroughputPoint], now: datetime, minutes: int) -> dict[str, list[int]]:
    """Jobs ended per queue in each of the last ``minutes`` minutes, oldest first."""
    start = throughput_since(now, minutes)
    out: dict[str, list[int]] = defaultdict(lambda: [0] * minutes)
    for p in points:
        i = int((p.minute - start) // timedelta(minutes=1))
        if 0 <= i < minutes:
            out[p.queue][i] += p.count
    return out


def spark(values: list[int]) -> str:
    top = max(values, default=0)
    if top == 0:
        return SPARK[0] * len(values)
    return "".join(SPARK[min(len(SPARK) - 1, round(v / top * (len(SPARK) - 1)))] for v in values)


def queues_report(app: App, minutes: int = MINUTES) -> list[dict[str, Any]]:
    """What ``duly queues --json`` prints: one object per queue."""
    counts = app.queue_counts()
    now = app.store.now()
    series = per_minute(app.throughput(minutes), now, minutes)
    latency = app.queue_latency()
    names = sorted({c.queue for c in counts} | set(series))
    by_name: dict[str, QueueCounts] = {c.queue: c for c in counts}
    out = []
    for name in names:
        c = by_name.get(name) or QueueCounts(name, dict.fromkeys(JobState, 0))
        s = series.get(name, [0] * minutes)
        out.append({
            "queue": name,
            "paused": c.paused,
            "counts": {st.value: c.counts.get(st, 0) for st in JobState},
            "estimated": sorted(st.value for st in c.estimated),
            "throughput": {"per_minute": s, "last_1m": s[-1], "last_5m": sum(s[-5:]), f"last_{minutes}m": sum(s)},
            "latency_seconds": round(latency.get(name, 0.0), 3),
        })  # fmt: skip
    return out


@click.group("queues", invoke_without_command=True)
@app_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@guarded
def queues_group(ctx: click.Context, app_path: str | None, url: str | None, prefix: str, as_json: bool) -> None:
    """Queues: jobs by state, throughput of the last 15 minutes, the oldest due job's wait,
    and whether the queue is paused. `duly queues pause|resume NAME` steers them.

    Counts marked ~ are estimates (PostgreSQL, above the exact-count limit)."""
    if ctx.invoked_subcommand is not None:
        return
    app = open_app(app_path, url, prefix)
    report = queues_report(app)
    if as_json:
        print_json(report)
        return
    table = Table("queue")
    for s in STATES:
        table.add_column(Text(s, style=STATE_STYLE[s]), justify="right")
    for head in ("done/min (15m)", "last 5m", "waits"):
        table.add_column(head, justify="right")
    for q in report:
        name = Text(q["queue"])
        if q["paused"]:
            name.append(" (paused)", style="yellow")
        cells = [Text(("~" if s in q["estimated"] else "") + f"{q['counts'][s]:,}") for s in STATES]
        t = q["throughput"]
        waits = format_duration(q["latency_seconds"]) if q["latency_seconds"] else "-"
        table.add_row(name, *cells, Text(spark(t["per_minute"]), style="green"), Text(str(t["last_5m"])), Text(waits))
    console.print(table)


def _pause_cmd(verb: str) -> click.Command:
    @click.command(verb)
    @app_options
    @click.argument("name")
    @click.option("--json", "as_json", is_flag=True)
    @guarded
    def cmd(app_path: str | None, url: str | None, prefix: str, name: str, as_json: bool) -> None:
        app = open_app(app_path, url, prefix)
        changed = app.pause_queue(name) if verb == "pause" else app.resume_queue(name)
        if as_json:
            print_json({"queue": name, "paused": verb == "pause", "changed": changed})
        elif changed:
            console.print(f"queue {name!r} {verb}d")
        else:
            console.print(f"queue {name!r} was already {'paused' if verb == 'pause' else 'running'}")

    cmd.help = (
        f"{verb.capitalize()} a queue: workers {'stop claiming' if verb == 'pause' else 'claim again'} "
        "from it within their rescue interval (5 s); running jobs are not interrupted."
    )
    return cmd


queues_group.add_command(_pause_cmd("pause"))
queues_group.add_command(_pause_cmd("resume"))


@click.command("workers")
@app_options
@click.option("--dead-after", default=60.0, show_default=True, help="Seconds without a heartbeat before a worker counts as dead.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@guarded
def workers_cmd(app_path: str | None, url: str | None, prefix: str, dead_after: float, as_json: bool) -> None:
    """Registered workers: alive or not, last heartbeat, the jobs they run (their ids:
    `duly jobs show ID`)."""
    app = open_app(app_path, url, prefix)
    workers = app.workers(dead_after)
    if as_json:
        print_json(workers)
        return
    now = app.store.now()
    table = Table("worker", "host", "pid", "queues", "running", "jobs", "concurrency", "state", "last seen", "started")
    for w in workers:
        seen = format_duration(max((now - w.last_seen_at).total_seconds(), 0)) + " ago"
        table.add_row(
            Text(w.id), Text(w.hostname), Text(str(w.pid)), Text(",".join(w.queues) if w.queues else "*"),
            Text(str(w.running)), Text(job_ids(w.job_ids)), Text(str(w.concurrency)),
            Text("alive", style="green") if w.alive else Text("dead", style="red"),
            Text(seen), Text(when(w.started_at)),
        )  # fmt: skip
    console.print(table)
    if not workers:
        console.print(Text("no worker registered", style="dim"))


def job_ids(ids: tuple[int, ...], shown: int = 12) -> str:
    """A worker's running job ids, the first ``shown`` of them."""
    text = " ".join(str(i) for i in ids[:shown])
    return text + (f" (+{len(ids) - shown})" if len(ids) > shown else "") if ids else "-"


@click.command("prune")
@app_options
@click.option("--older-than", default="7d", show_default=True, help="Age of finished jobs to delete, e.g. 7d, 36h, 90m.")
@click.option("--batch", default=1000, show_default=True, help="Jobs deleted per transaction.")
@click.option("--dry-run", is_flag=True, help="Only count the jobs that would be deleted.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@guarded
def prune_cmd(app_path: str | None, url: str | None, prefix: str, older_than: str, batch: int,
              dry_run: bool, as_json: bool) -> None:  # fmt: skip
    """Delete finished jobs (succeeded, failed, cancelled, expired) that ended more than
    --older-than ago, with their attempts, in short transactions. Workers do this on their
    own (every 10 minutes, for jobs older than 7 days); this runs it now."""
    app = open_app(app_path, url, prefix)
    try:
        before = app.prune_cutoff(older_than)
    except InvalidOption as exc:  # a usage error, like the worker's --prune-after
        raise click.BadParameter(str(exc).removeprefix("older_than: "), param_hint="--older-than") from None
    total = app.store.count_prunable(before)
    if dry_run:
        if as_json:
            print_json({"would_delete": total, "before": before, "dry_run": True})
        else:
            console.print(f"{total:,} finished job(s) ended before {when(before)} UTC would be deleted")
        return
    columns = (TextColumn("pruning"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    show = not as_json and total >= batch
    with Progress(*columns, console=err_console, transient=True, disable=not show) as bar:
        step = bar.add_task("prune", total=total)
        deleted = app.prune(older_than, batch=batch, on_progress=lambda n: bar.advance(step, n))
    if as_json:
        print_json({"deleted": deleted, "before": before, "dry_run": False})
    else:
        console.print(f"deleted {deleted:,} finished job(s) that ended before {when(before)} UTC")


@click.command("dashboard")
@app_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind. Any non-loopback address needs --token.")
@click.option("--port", default=8080, show_default=True)
@click.option("--token", envvar="DULY_DASHBOARD_TOKEN", help="Token for logging in and for API calls (Bearer). Also $DULY_DASHBOARD_TOKEN.")
@click.option("--log-level", default="warning", show_default=True)
def dashboard_cmd(app_path: str | None, url: str | None, prefix: str, host: str, port: int, token: str | None,
                  log_level: str) -> None:  # fmt: skip
    """Serve the web dashboard, its JSON API (/api, OpenAPI at /api/openapi.json) and
    Prometheus metrics (/metrics)."""
    try:
        from duly.web.server import BindRefused, check_bind, serve
    except ImportError as exc:
        err_console.print(f"[red]error:[/red] the dashboard needs its extra: pip install 'duly[dashboard]' ({exc})")
        sys.exit(1)
    try:
        check_bind(host, token)
    except BindRefused as exc:
        err_console.print(f"[red]not starting:[/red] {exc}")
        sys.exit(2)
    app = open_app(app_path, url, prefix)
    app.store  # noqa: B018 - fail now, with the database error, rather than on the first page
    shown = f"[{host}]" if ":" in host else host
    err_console.print(f"duly dashboard on http://{shown}:{port}/ (database {app.store.url})")
    if token:
        err_console.print("log in with the token; API clients send 'Authorization: Bearer <token>'")
    serve(app, host=host, port=port, token=token, log_level=log_level)
