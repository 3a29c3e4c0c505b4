#!/usr/bin/env python3
"""The scheduler processes of issue 3 at the issue's size; records the result in
docs/reliability.md.

    python scripts/schedulers_full.py                  # both backends, two minutes each (~5 min)
    python scripts/schedulers_full.py --seconds 25     # the length CI runs
    python scripts/schedulers_full.py --backend sqlite
    python scripts/schedulers_full.py --no-write       # print the result only

It runs ``tests/schedules/test_scheduler_processes.py`` (five scheduler processes on one
PostgreSQL, three on one SQLite file, three triggers with a six-field cron every second, one
per catch-up policy) with ``DULY_SCHED_SECONDS`` set: each slot must make exactly one job
while they run, then every scheduler stops for 12 s and starts again, and each catch-up
policy must be followed exactly. CI runs the same test for 25 s (``pytest -m slow``).

PostgreSQL: --pg-url, else $DULY_TEST_PG_URL, else postgresql://postgres@127.0.0.1:5432/test.
The section it writes sits between two markers in docs/reliability.md; ``chaos_full.py``
rewrites that page, so run this script after it (it puts the section back, from
docs/reliability-schedulers.json with --render-only).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TEST = "tests/schedules/test_scheduler_processes.py"
BEGIN, END = "<!-- schedulers-full: begin -->", "<!-- schedulers-full: end -->"
PROCESSES = {"postgres": 5, "sqlite": 3}


def run(backend: str, seconds: float, pg_url: str) -> dict[str, Any]:
    env = {**os.environ, "CI": "true", "DULY_SCHED_SECONDS": f"{seconds:g}", "DULY_TEST_PG_URL": pg_url}
    cmd = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "-o", "timeout=900",
           f"{TEST}::test_schedulers_in_processes_fire_each_slot_once_and_catch_up_by_policy[{backend}]"]  # fmt: skip
    t0 = time.monotonic()
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=seconds + 600)
    took = time.monotonic() - t0
    out = done.stdout + done.stderr
    summary = re.search(rf"^{backend}: .*$", out, re.M)
    shares = re.search(r"^jobs made per process: (.*)$", out, re.M)
    result: dict[str, Any] = {
        "passed": done.returncode == 0,
        "run_seconds": seconds,
        "schedulers": PROCESSES[backend],
        "took_s": round(took),
        "summary": summary.group(0) if summary else None,
        "jobs_per_process": json.loads(shares.group(1)) if shares else None,
    }
    if done.returncode != 0:
        result["output_tail"] = out[-3000:]
    return result


def render(results: dict[str, dict[str, Any]], when: str, seconds: float) -> str:
    lines = [
        BEGIN,
        "## Scheduler processes at the issue's size (issue 3)",
        "",
        "Five scheduler processes on one PostgreSQL, three on one SQLite file, each ticking once a",
        "second at the same moment, on three triggers with a six-field cron every second (one per",
        "catch-up policy: latest, skip, all with a limit of 4). While they run, each slot must make",
        "exactly one job (no two jobs of a trigger share a slot, the slots table has one row per",
        "job, no slot is skipped); then every scheduler stops for 12 s and starts again, and each",
        "policy must be followed exactly. CI runs the same test for 25 s.",
        "",
        "```",
        f"python scripts/schedulers_full.py --seconds {seconds:g}",
        "```",
        "",
        f"Run on {when}, {os.cpu_count()} CPUs, Python {platform.python_version()}.",
        "",
        "| backend | schedulers | run | result | took | jobs per trigger (policy) | jobs made per process: run, then restart |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for backend, r in results.items():
        policies = (r.get("summary") or "").split(" s; ", 1)[-1] if r.get("summary") else "-"
        lines.append(
            f"| {backend} | {r['schedulers']} | {r['run_seconds']:g} s | {'passed' if r['passed'] else 'FAILED'} "
            f"| {r['took_s']} s | {policies} | {r.get('jobs_per_process') or '-'} |"
        )
    lines += ["", END]
    return "\n".join(lines)


def write_section(page: Path, section: str) -> None:
    text = page.read_text()
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + section + rest.split(END, 1)[1]
    elif "\n## Defects the checks found" in text:
        head, tail = text.split("\n## Defects the checks found", 1)
        text = head + "\n" + section + "\n\n## Defects the checks found" + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    page.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120.0, help="how long the schedulers run (issue: 120)")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], action="append")
    parser.add_argument("--pg-url", default=os.environ.get("DULY_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--no-write", action="store_true", help="do not write docs/reliability.md")
    parser.add_argument("--render-only", action="store_true", help="put the section back from the saved result")
    parser.add_argument("--out", default=str(REPO / "docs" / "reliability.md"))
    opts = parser.parse_args()
    saved = Path(opts.out).with_name("reliability-schedulers.json")
    if opts.render_only:
        old = json.loads(saved.read_text())
        write_section(Path(opts.out), render(old["results"], old["when"], old["seconds"]))
        return 0
    results: dict[str, dict[str, Any]] = {}
    for backend in opts.backend or ["sqlite", "postgres"]:
        print(f"{PROCESSES[backend]} schedulers on {backend} for {opts.seconds:g} s...", flush=True)
        results[backend] = run(backend, opts.seconds, opts.pg_url)
        print("  " + json.dumps({k: v for k, v in results[backend].items() if k != "output_tail"}), flush=True)
        if "output_tail" in results[backend]:
            print(results[backend]["output_tail"], file=sys.stderr)
    when = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    if not opts.no_write:
        write_section(Path(opts.out), render(results, when, opts.seconds))
        saved.write_text(json.dumps({"when": when, "seconds": opts.seconds, "results": results}, indent=1) + "\n")
        print(f"wrote {opts.out}")
    failed = [b for b, r in results.items() if not r["passed"]]
    if failed:
        print(f"FAILED: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
