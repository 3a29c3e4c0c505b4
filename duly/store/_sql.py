"""Named SQL loaded once from ``queries.sql`` files, and numbered migration files.

A queries file holds blocks that start with ``-- name: <name>``. Table names are written
``{jobs}``, ``{attempts}`` ... and filled in by the backend with safely quoted identifiers.
"""

from __future__ import annotations

import re
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*([a-z_0-9]+)\s*$", re.M)
_PREFIX = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")

TABLES = ("jobs", "attempts", "workers", "migrations", "triggers", "slots", "queues")
INDEXES = (
    "jobs_fetch", "jobs_lease", "jobs_expiry", "jobs_key", "jobs_queue_state", "jobs_finished",
    "jobs_queue_stats", "triggers_due", "jobs_trigger", "jobs_task",
)


def check_prefix(prefix: str) -> str:
    if not _PREFIX.match(prefix):
        raise ValueError(
            f"invalid table prefix {prefix!r}: use lower-case letters, digits and underscores, "
            "starting with a letter or underscore"
        )
    return prefix


def load_queries(package: str, filename: str = "queries.sql") -> dict[str, str]:
    text = resources.files(package).joinpath(filename).read_text("utf-8")
    parts = _NAME.split(text)
    return {parts[i]: parts[i + 1].strip().rstrip(";") for i in range(1, len(parts), 2)}


def load_migrations(package: str) -> list[tuple[int, str]]:
    folder = resources.files(package).joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        m = re.match(r"^(\d{4})_[a-z0-9_]+\.sql$", entry.name)
        if m:
            found.append((int(m.group(1)), entry.read_text("utf-8")))
    found.sort()
    for expected, (version, _) in enumerate(found, start=1):
        if version != expected:
            raise RuntimeError(f"migration numbering has a gap at {expected} in {package}")
    return found


def load_schema(package: str) -> str:
    """The fresh-install schema (``schema.sql``) of a backend."""
    return resources.files(package).joinpath("schema.sql").read_text("utf-8")
