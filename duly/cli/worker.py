"""``duly worker`` (and its multi-process supervisor) and ``duly demo``."""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn

import click

from duly.cli._app import app_options, open_app
from duly.runtime import events
from duly.runtime.pidfile import AlreadyRunning


@click.command("worker")
@app_options
@click.option("--queues", "-q", help="Comma-separated queues to serve (default: all).")
@click.option("--concurrency", "-c", default=10, show_default=True, help="Jobs run at once per process.")
@click.option("--processes", "-p", default=1, show_default=True, help="Worker processes under one supervisor.")
@click.option("--prefetch", default=0, show_default=True,
              help="Jobs claimed ahead of free slots (short jobs: overlaps claiming with running).")  # fmt: skip
@click.option("--burst", is_flag=True, help="Run the jobs due now, then exit.")
@click.option("--grace", default=30.0, show_default=True, help="Seconds in-flight jobs get on shutdown.")
@click.option("--poll-interval", default=1.0, show_default=True, help="Seconds between polls when idle.")
@click.option("--isolation", type=click.Choice(["thread", "process"]), default="thread", show_default=True,
              help="process: each job in a child process, killed for real on timeout.")  # fmt: skip
@click.option("--pid-file", type=click.Path(dir_okay=False), help="Written at start, removed at exit.")
@click.option("--log-format", type=click.Choice(["human", "json"]), default="human", show_default=True)
@click.option("--log-level", default="INFO", show_default=True)
@click.option("--prune-after", default="7d", show_default=True, envvar="DULY_PRUNE_AFTER",
              help="Delete finished jobs older than this (e.g. 7d, 36h); 'never' keeps them.")  # fmt: skip
def worker_cmd(app_path: str | None, url: str | None, prefix: str, queues: str | None, concurrency: int,
               processes: int, prefetch: int, burst: bool, grace: float, poll_interval: float, isolation: str,
               pid_file: str | None, log_format: str, log_level: str, prune_after: str) -> None:  # fmt: skip
    """Run jobs. SIGTERM/SIGINT stop claiming and give jobs --grace seconds; a second signal
    exits at once."""
    events.configure(log_format, log_level.upper())
    logging.basicConfig(level=logging.WARNING)
    if not app_path:
        raise click.UsageError("--app module:app is required (or set DULY_APP): the worker needs your tasks")
    if processes > 1:
        from duly.runtime.supervisor import Supervisor

        argv = [a for a in sys.argv[1:]]
        try:
            code = Supervisor(_child_argv(argv), processes, pid_file=pid_file, grace=grace).run()
        except AlreadyRunning as exc:
            _refuse(exc)
        sys.exit(code)
    app = open_app(app_path, url, prefix)
    worker = app.worker(
        queues=[q.strip() for q in queues.split(",") if q.strip()] if queues else None,
        concurrency=concurrency,
        prefetch=prefetch,
        burst=burst,
        grace=grace,
        poll_interval=poll_interval,
        isolation=isolation,
        app_path=app_path,
        pid_file=pid_file,
        prune_after=_prune_after(prune_after),
    )
    try:
        worker.run()
    except AlreadyRunning as exc:
        _refuse(exc)
    if worker.abandoned:
        # Handlers that ignored the stop request still run in pool threads, and the
        # interpreter joins those at exit: the process would outlive --grace by as long as
        # they take. Their jobs are already handed back (interrupted), so leave now.
        events.emit("worker.stop", worker=worker.worker_id, reason="handlers ignored the stop request",
                    abandoned=worker.abandoned)  # fmt: skip
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


#: Exit code of a worker (or supervisor) that refuses to start: a live pid file.
EXIT_ALREADY_RUNNING = 5


def _refuse(exc: AlreadyRunning) -> NoReturn:
    from duly.cli._common import err_console

    err_console.print(f"[red]not starting:[/red] {exc}")
    sys.exit(EXIT_ALREADY_RUNNING)


def _prune_after(text: str) -> float | None:
    if text.strip().lower() in ("never", "off", "none"):
        return None
    from duly.core.durations import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--prune-after") from None


def _child_argv(argv: list[str]) -> list[str]:
    """The supervisor's own arguments for a child: one process, no pid file."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in ("--processes", "-p", "--pid-file"):
            skip = True
            continue
        if a.startswith(("--processes=", "--pid-file=")):
            continue
        out.append(a)
    return [sys.executable, "-m", "duly.cli", *out]  # the package itself has no __main__


@click.command("demo")
@click.option("--url", envvar="DULY_DATABASE_URL", default="sqlite:///duly-demo.db", show_default=True)
@click.option("--seconds", default=20.0, show_default=True, help="How long the demo runs (0: until Ctrl-C).")
@click.option("--dashboard/--no-dashboard", default=True, show_default=True, help="Serve the dashboard too.")
@click.option("--port", default=8765, show_default=True)
def demo_cmd(url: str, seconds: float, dashboard: bool, port: int) -> None:
    """Enqueue example jobs and run them on the embedded SQLite default, showing each step."""
    from duly.demo import run_demo

    sys.exit(run_demo(url, seconds, dashboard, port))
