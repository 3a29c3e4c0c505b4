"""The ``duly`` command line: thin shells over the public API."""

from __future__ import annotations

import click

from duly.cli import admin, jobs, triggers, worker


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="duly")
def cli() -> None:
    """duly: durable background jobs and schedules in SQLite or PostgreSQL.

    The database comes from --url, else $DULY_DATABASE_URL, else sqlite:///duly.db here.
    """


cli.add_command(worker.worker_cmd)
cli.add_command(worker.demo_cmd)
cli.add_command(jobs.jobs_group)
cli.add_command(admin.queues_group)
cli.add_command(admin.workers_cmd)
cli.add_command(admin.prune_cmd)
cli.add_command(admin.dashboard_cmd)
cli.add_command(jobs.migrate_cmd)
cli.add_command(jobs.enqueue_cmd)
cli.add_command(triggers.triggers_group)


def main() -> None:
    cli(prog_name="duly")
