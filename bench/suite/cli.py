"""`python bench/run.py [WORKLOAD ...] [--size tiny|small|full] [--only duly,pgqueuer,...]`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from suite import env as benv
from suite.common import SIZES, WORK, Figure, log
from suite.peers import PEERS
from suite.report import machine, now, print_table, versions, write_doc
from suite.workloads import WORKLOADS

RESULTS = os.path.join(benv.BENCH, "results")
ORDER = ["duly", "pgqueuer", "raw-sql", "procrastinate", "oban", "chancy", "celery", "rq",
         "duly-sqlite", "huey", "raw-sqlite"]  # fmt: skip
#: Which systems each workload runs against (those installed and asked for).
WHO = {
    "drain": ORDER,
    "enqueue": ORDER,
    "latency": ["duly", "duly-sqlite", "pgqueuer", "procrastinate", "oban", "chancy", "celery", "rq", "huey"],
    "mixed": ["duly", "pgqueuer", "celery"],
    "backlog": ["duly"],
    "memory": ["duly", "duly-sqlite", "pgqueuer"],
}


def install_of(peer: str) -> str:
    for inst, names in benv.SERVES.items():
        if peer in names:
            return inst
    return peer


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/run.py", description=__doc__)
    ap.add_argument("workloads", nargs="*", help=f"any of {', '.join(WORKLOADS)} (default: all)")
    ap.add_argument("--size", choices=list(SIZES), default="small")
    ap.add_argument("--only", help="comma-separated systems (default: all): " + ",".join(ORDER))
    ap.add_argument("--runs", type=int, help="measurements per figure (default: the size's)")
    ap.add_argument("--duly-at", metavar="REV", help="measure duly as committed at REV (handled by run.py)")
    ap.add_argument("--reinstall", action="store_true", help="reinstall the systems into bench/.env (handled by run.py)")
    ap.add_argument("--no-doc", action="store_true", help="do not rewrite docs/benchmarks.md")
    args = ap.parse_args(argv)
    unknown = set(args.workloads) - set(WORKLOADS) - {"profile"}
    if unknown:
        ap.error(f"unknown workload(s): {', '.join(sorted(unknown))}")
    only = [p.strip() for p in args.only.split(",")] if args.only else ORDER
    bad = set(only) - set(ORDER)
    if bad:
        ap.error(f"unknown system(s): {', '.join(sorted(bad))}")
    size = SIZES[args.size]
    if args.runs:
        size = type(size)(**{**size.__dict__, "runs": args.runs})
    os.makedirs(WORK, exist_ok=True)
    status = benv.load_status()
    workloads = args.workloads or list(WORKLOADS)
    if workloads == ["profile"]:
        from suite.profile import profile

        profile(size, write_doc=not args.no_doc)
        return 0
    command = "python bench/run.py " + " ".join(sys.argv[1:])
    figures: list[Figure] = []
    started = time.monotonic()
    import atexit
    import signal

    from suite.common import stop_all

    atexit.register(stop_all)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    one = type(size)(**{**size.__dict__, "runs": 1})
    for w in workloads:
        if w == "profile":
            from suite.profile import profile

            profile(size, write_doc=not args.no_doc)
            continue
        todo = []
        for name in [p for p in WHO[w] if p in only]:
            inst = status.get(install_of(name), {})
            if name not in PEERS:
                figures.append(Figure(w, "-", name, "", error="n/a: no adapter"))
            elif not inst.get("ok"):
                figures.append(Figure(w, "-", name, "", error=f"not installed: {inst.get('error', 'not tried')}"))
            else:
                todo.append(name)
        # Round-robin: run 1 of every system, then run 2 of every system, ... so that a
        # change in the machine's load hits every system alike.
        merged: dict[tuple[str, str], Figure] = {}
        failed: set[str] = set()
        for r in range(size.runs if w not in ("memory",) else 1):
            for name in todo:
                if name in failed:
                    continue
                log(f"== {w} · {name} · size {size.name} · run {r + 1}/{size.runs}")
                for f in WORKLOADS[w](PEERS[name], one):
                    key = (f.variant, f.peer)
                    if key not in merged:
                        merged[key] = f
                    else:
                        m = merged[key]
                        m.values += f.values
                        for k, v in f.extra.items():
                            have = m.extra.get(k, [])
                            m.extra[k] = (have if isinstance(have, list) else [have]) + (v if isinstance(v, list) else [v])
                        m.error = m.error or f.error
                    if f.error:
                        failed.add(name)
        figures.extend(merged.values())
    log(f"bench: done in {time.monotonic() - started:.0f}s")
    # A run that does not write the document (--no-doc: an A/B pair, a quick look) keeps
    # its figures out of bench/results too; a later run would otherwise write them into
    # docs/benchmarks.md beside its own, as if measured with it.
    results = merge(size.name, [f.to_json() for f in figures], save=not args.no_doc)
    backends = {n: c.backend for n, c in PEERS.items()}
    print_table(current(results, workloads, only), backends)
    if not args.no_doc:
        meta = {
            "command": command, "size": size.name, "when": now(), "machine": machine(), "backends": backends,
            "systems": systems(),
        }  # fmt: skip
        write_doc(results, meta)
        log("bench: wrote docs/benchmarks.md")
    broken = [f for f in figures if f.error and not f.error.startswith("n/a")]
    for f in broken:
        log(f"bench: FAILED {f.workload}/{f.variant} on {f.peer}: {f.error}")
    return 1 if broken else 0  # no speed is asserted; a workload that breaks fails the run


def current(results: list[dict[str, Any]], workloads: list[str], only: list[str]) -> list[dict[str, Any]]:
    return [r for r in results if r["workload"] in workloads and r["peer"] in only]


def merge(size: str, new: list[dict[str, Any]], save: bool = True) -> list[dict[str, Any]]:
    """Keep every earlier figure of this size that this run did not measure again (written
    back to bench/results unless ``save`` is false)."""
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"{size}.json")
    try:
        with open(path) as f:
            old = json.load(f)
    except (OSError, ValueError):
        old = []
    key = lambda r: (r["workload"], r["variant"], r["peer"])  # noqa: E731
    redone = {(r["workload"], r["peer"]) for r in new}
    merged = {key(r): r for r in old if (r["workload"], r["peer"]) not in redone}
    merged.update({key(r): r for r in new})
    wl = list(WORKLOADS)
    out = sorted(merged.values(), key=lambda r: (wl.index(r["workload"]) if r["workload"] in wl else 99, r["variant"],
                                                 ORDER.index(r["peer"]) if r["peer"] in ORDER else 99))  # fmt: skip
    if save:
        with open(path, "w") as f:
            json.dump(out, f, indent=1)
    return out


def systems() -> dict[str, dict[str, str]]:
    out = {}
    status = benv.load_status()
    for name in ORDER:
        cls = PEERS.get(name)
        inst = status.get(install_of(name), {})
        if cls is None:
            out[name] = {"version": "—", "settings": "—", "keeps": "—"}
            continue
        version = versions([cls.package])[cls.package] if inst.get("ok") else f"not installed: {inst.get('error', '')}"
        out[name] = {"version": version, "settings": cls().settings if inst.get("ok") else "—", "keeps": cls.keeps}
    return out
