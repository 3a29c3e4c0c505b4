"""What starting duly costs: ``import duly`` and the ``duly`` command load only what they
use, so a worker process (and ``--processes N``'s supervisor, before it starts its children)
gets to work sooner. Checked by the modules a fresh interpreter has loaded."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import duly

HEAVY = ("duly.app", "duly.runtime.worker", "duly.store.base", "psycopg", "asyncio", "rich", "croniter")


def loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    modules = json.loads(out.stdout.strip().splitlines()[-1])
    return sorted({h for h in HEAVY for m in modules if m == h or m.startswith(h + ".")})


def test_importing_duly_loads_none_of_its_runtime() -> None:
    assert loaded_after("import duly") == []


def test_the_worker_command_and_its_supervisor_load_none_of_the_runtime() -> None:
    code = "from duly.cli import cli\ncli.get_command(None, 'worker')\nimport duly.runtime.supervisor"
    assert loaded_after(code) == []


def test_a_cron_expression_still_loads_its_parser_when_used() -> None:
    assert loaded_after("from duly.core.triggers import normalise_cron\nnormalise_cron('*/5 * * * *')") == ["croniter"]


def test_every_public_name_resolves_and_star_import_matches_all() -> None:
    for name in duly.__all__:
        assert getattr(duly, name) is not None, name
    assert set(duly.__all__) <= set(dir(duly))
    namespace: dict[str, object] = {}
    exec("from duly import *", namespace)
    assert {k for k in namespace if not k.startswith("__")} | {"__version__"} == set(duly.__all__)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        duly.Nope  # noqa: B018
    with pytest.raises(ImportError):
        exec("from duly import Nope", {})
