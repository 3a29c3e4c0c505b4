#!/usr/bin/env python3
"""duly's benchmark suite: `python bench/run.py [WORKLOAD ...] [--size tiny|small|full] [--only a,b]`.

Workloads: drain, enqueue, latency, mixed, backlog, memory (default: all), and profile.
It creates bench/.env (its own virtualenv), installs duly and the peers there, re-runs
itself inside it, prints the table and writes docs/benchmarks.md. See docs/benchmarks.md.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from suite import env as benv  # noqa: E402


def wanted(argv: list[str]) -> list[str]:
    """The installations the asked-for systems need (all, without --only)."""
    only = None
    for i, a in enumerate(argv):
        if a == "--only" and i + 1 < len(argv):
            only = argv[i + 1]
        elif a.startswith("--only="):
            only = a.split("=", 1)[1]
    names = [n.strip() for n in only.split(",")] if only else None
    out = ["duly"]
    for inst, serves in benv.SERVES.items():
        if inst != "duly" and (names is None or set(serves) & set(names)):
            out.append(inst)
    if "profile" in argv or names is None:
        out.append("tools")
    return out


if __name__ == "__main__":
    args = sys.argv[1:]
    if not benv.in_env():
        if ("-h" in args or "--help" in args) and not os.path.exists(benv.PY):
            print(__doc__)  # the suite's environment is made by the first real run
            sys.exit(0)
        if "-h" not in args and "--help" not in args:
            benv.ensure(wanted(args), reinstall="--reinstall" in args)
        args = [a for a in args if a != "--reinstall"]
        if "--duly-at" in args:  # measure a commit of duly, not the working tree
            i = args.index("--duly-at")
            rev = args[i + 1]
            del args[i : i + 2]
            src = benv.export_duly(rev)
            os.environ["BENCH_DULY_SRC"] = src
            os.environ["PYTHONPATH"] = os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        # duly is installed editable, so its modules would be compiled afresh by every
        # worker process where PYTHONDONTWRITEBYTECODE is set (the peers' come from wheels,
        # compiled at install): compile them once, as installing a wheel does.
        src = os.environ.get("BENCH_DULY_SRC") or os.path.dirname(HERE)
        benv.compile_duly(os.path.join(src, "duly"))
        os.execv(benv.PY, [benv.PY, os.path.abspath(__file__), *args])
    from suite.cli import main

    sys.exit(main(args))
