"""The ``duly`` command line: thin shells over the public API."""

from __future__ import annotations

import importlib
from typing import Any

import click

#: Each command, by name: ``module:attribute``. A command's module is imported when that
#: command runs (or the help lists them all), so ``duly worker`` does not load the
#: dashboard's web stack or the admin tables, and its ``--processes`` supervisor starts its
#: children without loading duly's runtime at all.
COMMANDS = {
    "dashboard": "duly.cli.admin:dashboard_cmd",
    "demo": "duly.cli.worker:demo_cmd",
    "enqueue": "duly.cli.jobs:enqueue_cmd",
    "jobs": "duly.cli.jobs:jobs_group",
    "migrate": "duly.cli.jobs:migrate_cmd",
    "prune": "duly.cli.admin:prune_cmd",
    "queues": "duly.cli.admin:queues_group",
    "triggers": "duly.cli.triggers:triggers_group",
    "worker": "duly.cli.worker:worker_cmd",
    "workers": "duly.cli.admin:workers_cmd",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        command: Any = getattr(importlib.import_module(module), attr)
        return command  # type: ignore[no-any-return]


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="duly")
def cli() -> None:
    """duly: durable background jobs and schedules in SQLite or PostgreSQL.

    The database comes from --url, else $DULY_DATABASE_URL, else sqlite:///duly.db here.
    """


def main() -> None:
    cli(prog_name="duly")
