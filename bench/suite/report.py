"""The table (stdout) and docs/benchmarks.md (between the results markers)."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from suite.common import ROOT, pg_version, redis_client, sqlite_version

def markers(size: str) -> tuple[str, str]:
    return (f"<!-- results:{size}:start (written by bench/run.py --size {size}; edit outside these markers) -->",
            f"<!-- results:{size}:end -->")  # fmt: skip
DOC = os.path.join(ROOT, "docs", "benchmarks.md")

#: Which duly figure a peer is compared with.
BASE = {"sqlite": "duly-sqlite", "postgres": "duly", "redis": "duly"}


def fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "—"
    if unit == "jobs/s":
        return f"{v:,.0f} jobs/s"
    if unit == "ms":
        return f"{v:.2f} ms"
    if unit == "%":
        return f"{v:+.1f} %"
    return f"{v:,.2f} {unit}"


def ratio(duly: dict[str, Any] | None, peer: dict[str, Any]) -> str:
    if duly is None or duly.get("value") is None or peer.get("value") is None or peer["peer"] == duly["peer"]:
        return ""
    a, b = duly["value"], peer["value"]
    if peer["unit"] == "%":
        return ""
    if not peer["higher_is_better"]:
        a, b = b, a
    return f"{a / b:.2f}×" if b else ""


def rows(results: Sequence[dict[str, Any]], backends: dict[str, str]) -> list[tuple[str, str, str, str, str, str]]:
    """(workload, variant, peer, figure, duly vs peer, notes)."""
    index = {(r["workload"], r["variant"], r["peer"]): r for r in results}
    out = []
    for r in results:
        base = BASE.get(backends.get(r["peer"], "postgres"), "duly")
        if r["peer"].startswith("duly"):
            base = r["peer"]
        duly = index.get((r["workload"], r["variant"], base))
        extra = r.get("extra") or {}
        notes = []
        for k, vs in extra.items():
            if isinstance(vs, list) and vs and all(isinstance(v, int | float) for v in vs):
                vs = sorted(vs)
                notes.append(f"{k}={vs[len(vs) // 2]:g}")
            elif not isinstance(vs, list):
                notes.append(f"{k}={vs}")
        if r.get("values") and len(r["values"]) > 1:
            notes.append("runs=" + "/".join(f"{v:,.0f}" if r["unit"] == "jobs/s" else f"{v:.2f}" for v in r["values"]))
        fig = r["error"] if r.get("error") else fmt(r.get("value"), r["unit"])
        out.append((r["workload"], r["variant"], r["peer"], fig, ratio(duly, r), "; ".join(notes)))
    return out


def table(results: Sequence[dict[str, Any]], backends: dict[str, str]) -> str:
    lines = ["| workload | variant | system | figure | duly ÷ system | notes |", "|---|---|---|---|---|---|"]
    for w, v, p, f, rt, n in rows(results, backends):
        lines.append(f"| {w} | {v} | {p} | {f} | {rt} | {n} |")
    return "\n".join(lines)


def print_table(results: Sequence[dict[str, Any]], backends: dict[str, str]) -> None:
    data = rows(results, backends)
    head = ("workload", "variant", "system", "figure", "duly÷", "notes")
    widths = [max(len(str(x[i])) for x in [head, *data]) for i in range(5)]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=False)) + "  notes")
    for row in data:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[5])


def machine() -> dict[str, str]:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    try:
        redis_v = redis_client().info("server")["redis_version"]
    except Exception as exc:  # noqa: BLE001
        redis_v = f"unavailable ({exc})"
    try:
        pg = pg_version()
    except Exception as exc:  # noqa: BLE001
        pg = f"unavailable ({exc})"
    return {
        "CPU": cpu, "cores": str(os.cpu_count()), "RAM": mem, "OS": platform.platform(),
        "Python": platform.python_version(), "PostgreSQL": pg, "Redis": redis_v, "SQLite": sqlite_version(),
        "duly source": _duly_source(),
    }  # fmt: skip


def _duly_source() -> str:
    src = os.environ.get("BENCH_DULY_SRC")
    if src:
        return f"commit {os.path.basename(src).removeprefix('duly-src-')} (exported with git archive)"
    dirty = " + uncommitted changes in duly/" if _git("status", "--porcelain", "duly") else ""
    return f"working tree at {_git('rev-parse', '--short', 'HEAD')}{dirty}"


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def versions(packages: Sequence[str]) -> dict[str, str]:
    out = {}
    for p in packages:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "not installed"
    return out


def markdown(results: Sequence[dict[str, Any]], meta: dict[str, Any]) -> str:
    start, end = markers(meta["size"])
    lines = [start, "", f"Run: `{meta['command']}` — size **{meta['size']}**, {meta['when']}.", "", "### Machine", ""]
    lines += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in meta["machine"].items()]
    lines += ["", "### Systems: version, configuration, what each keeps", "",
              "| system | version | configured as | keeps after a job |", "|---|---|---|---|"]  # fmt: skip
    for name, s in meta["systems"].items():
        lines.append(f"| {name} | {s['version']} | {s['settings']} | {s['keeps']} |")
    lines += ["", "### Figures", "",
              "Median of the runs listed in *notes*. *duly ÷ system* above 1 means duly is better "
              "(faster, or lower latency); SQLite systems are compared with duly on SQLite, the others with duly on PostgreSQL.",
              "", table(results, meta["backends"]), "", end]  # fmt: skip
    return "\n".join(lines)


def write_doc(results: Sequence[dict[str, Any]], meta: dict[str, Any]) -> None:
    block = markdown(results, meta)
    start, end = markers(meta["size"])
    text = open(DOC).read() if os.path.exists(DOC) else "# Benchmarks\n"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text += "\n" + block + "\n"
    with open(DOC, "w") as f:
        f.write(text)


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
