"""bench/.env: the suite's own virtualenv, with duly (editable) and the peers from PyPI.

Each peer is installed on its own, so one that fails is recorded (with pip's first error
line) and reported in the table instead of stopping the rest. bench/.env/install.json
remembers what was installed.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(BENCH)
ENV = os.path.join(BENCH, ".env")
PY = os.path.join(ENV, "bin", "python")
STATUS = os.path.join(ENV, "install.json")

#: What each system needs from PyPI (duly itself comes from this checkout).
REQUIREMENTS: dict[str, list[str]] = {
    "duly": ["-e", ROOT + "[postgres]"],
    "pgqueuer": ["pgqueuer", "asyncpg"],
    "procrastinate": ["procrastinate"],
    "oban": ["oban"],
    "chancy": ["chancy"],
    "celery": ["celery[redis]"],
    "rq": ["rq"],
    "huey": ["huey"],
    "tools": ["py-spy", "pyinstrument"],
}
#: The adapter names each installation serves.
SERVES = {
    "duly": ["duly", "duly-sqlite", "raw-sql", "raw-sqlite"],
    "pgqueuer": ["pgqueuer"], "procrastinate": ["procrastinate"], "oban": ["oban"], "chancy": ["chancy"],
    "celery": ["celery"], "rq": ["rq"], "huey": ["huey"],
}  # fmt: skip


def best_python() -> str:
    """$BENCH_PYTHON; else a CPython 3.12 if one is found (oban-py needs it, and the figures
    in docs/benchmarks.md were taken on it); else the interpreter running now. Never chosen
    by the systems a run asks for: bench/.env is made once and kept, and a 3.11 env made by a
    `--only duly` run ran duly's no-op jobs at 25 ms a thousand against 10 on 3.12 (eager
    tasks), so later figures would have depended on which run came first."""
    if os.environ.get("BENCH_PYTHON"):
        return os.environ["BENCH_PYTHON"]
    candidates = [shutil.which("python3.12") or ""]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")), reverse=True)
    for cand in candidates:
        # a pyenv shim exists even when that version is not selected: make sure it runs
        if cand and subprocess.run([cand, "--version"], capture_output=True).returncode == 0:
            return cand
    return sys.executable


def in_env() -> bool:
    return os.path.realpath(sys.prefix) == os.path.realpath(ENV)


def load_status() -> dict[str, dict[str, str | bool]]:
    try:
        with open(STATUS) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def ensure(installs: list[str], reinstall: bool = False) -> dict[str, dict[str, str | bool]]:
    """Create bench/.env if needed and install each of ``installs`` not installed yet."""
    if not os.path.exists(PY):
        py = best_python()
        print(f"bench: creating {ENV} with {py}", file=sys.stderr, flush=True)
        subprocess.run([py, "-m", "venv", ENV], check=True)
        subprocess.run([PY, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-U", "pip"], check=False)
    status = load_status()
    for name in installs:
        if name in status and status[name].get("ok") and not reinstall:
            continue
        print(f"bench: installing {name} into bench/.env", file=sys.stderr, flush=True)
        r = subprocess.run(
            [PY, "-m", "pip", "install", "-q", "--disable-pip-version-check", *REQUIREMENTS[name]],
            capture_output=True, text=True,
        )  # fmt: skip
        if r.returncode == 0:
            status[name] = {"ok": True}
        else:
            lines = [ln for ln in (r.stderr + r.stdout).splitlines() if ln.startswith("ERROR")] or (r.stderr or r.stdout).splitlines()
            status[name] = {"ok": False, "error": (lines[0] if lines else f"pip exited {r.returncode}")[:300]}
            print(f"bench: {name} did not install: {status[name]['error']}", file=sys.stderr, flush=True)
        with open(STATUS, "w") as f:
            json.dump(status, f, indent=1)
    return status


def export_duly(rev: str) -> str:
    """``git archive REV duly`` into a folder of its own (other engineers' uncommitted edits
    in the working tree do not leak into the figures); returns the folder."""
    import tempfile

    sha = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()  # fmt: skip
    dest = os.path.join(os.environ.get("BENCH_WORK", os.path.join(tempfile.gettempdir(), "duly-bench")), f"duly-src-{sha}")
    if not os.path.isdir(os.path.join(dest, "duly")):
        os.makedirs(dest, exist_ok=True)
        archive = subprocess.run(["git", "archive", sha, "duly"], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
    print(f"bench: duly from commit {sha} ({dest})", file=sys.stderr, flush=True)
    return dest


def compile_duly(package_dir: str) -> None:
    """Byte-compile duly's modules for the suite's Python (into their ``__pycache__``)."""
    subprocess.run([PY, "-m", "compileall", "-q", package_dir], check=True)
