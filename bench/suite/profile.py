"""`python bench/run.py profile`: py-spy samples `duly worker --burst` draining no-op jobs on
PostgreSQL; where the time goes (self and inclusive, by function) goes into
bench/results/profile-<size>.txt and docs/benchmarks.md."""

from __future__ import annotations

import collections
import os
import re
import time

from suite.common import BIN, Probe, Size, env_for, log, spawn, wait_exit
from suite.peers import Duly
from suite.report import DOC

START = "<!-- profile:start (written by bench/run.py profile) -->"
END = "<!-- profile:end -->"
RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "results")
RATE = 200  # samples per second


def _frame(f: str) -> str:
    # py-spy raw frames look like "function (path/to/file.py:123)"
    m = re.match(r"(.*) \((.*?):\d+\)$", f)
    if not m:
        return f
    fn, path = m.groups()
    path = re.sub(r".*site-packages/", "", path)
    path = re.sub(r".*/(duly/)", r"\1", path)
    path = re.sub(r".*/lib/python3\.\d+/", "", path)
    return f"{fn} ({path})"


def summarize(folded: str, top: int = 25) -> str:
    self_t: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    groups: collections.Counter[str] = collections.Counter()
    total = 0
    for line in folded.splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        count = int(n)
        frames = [_frame(f) for f in stack.split(";") if f and not f.startswith(("thread ", "process "))]
        if not frames:
            continue
        total += count
        self_t[frames[-1]] += count
        for f in set(frames):
            incl[f] += count
        groups[_group(frames)] += count
    out = [f"{total} samples at {RATE}/s of the worker's busy threads (idle waits not sampled)", "",
           "Where the time goes (each sample counted once, by the innermost layer it is in):"]  # fmt: skip
    for g, c in groups.most_common():
        out.append(f"  {100 * c / total:5.1f} %  {g}")
    out += ["", f"Top {top} functions by inclusive time:"]
    for f, c in incl.most_common(top):
        out.append(f"  {100 * c / total:5.1f} %  {f}")
    out += ["", f"Top {top} functions by self time:"]
    for f, c in self_t.most_common(top):
        out.append(f"  {100 * c / total:5.1f} %  {f}")
    return "\n".join(out)


GROUPS = [
    ("psycopg / libpq (sending statements, reading and converting rows)", ("psycopg/", "psycopg_pool/", "psycopg_binary")),
    ("duly store: building and decoding rows (store/postgres, core/model)", ("duly/store/", "duly/core/model", "duly/core/transitions")),
    ("duly executor and worker bookkeeping", ("duly/runtime/",)),
    ("logging / events", ("logging/",)),
    ("asyncio event loop and futures", ("asyncio/",)),
    ("concurrent.futures thread hand-offs", ("concurrent/futures", "threading.py")),
    ("json", ("json/",)),
]


def _group(frames: list[str]) -> str:
    for f in reversed(frames):
        for name, keys in GROUPS:
            if any(k in f for k in keys):
                return name
    return "other (interpreter start-up, imports, ...)"


def profile(size: Size, write_doc: bool = True) -> str:
    n = {"tiny": 2_000, "small": 50_000, "full": 100_000}[size.name]
    peer = Duly()
    peer.setup()
    probe = Probe.fresh()
    os.makedirs(RESULTS, exist_ok=True)
    raw = os.path.join(RESULTS, f"profile-{size.name}.folded")
    try:
        peer.enqueue_bulk(n)
        argv = peer.worker_argvs(1, "drain")[0]
        spy = [os.path.join(BIN, "py-spy"), "record", "--format", "raw", "-r", str(RATE), "-o", raw, "--subprocesses", "--"]
        t = time.time()
        p = spawn(spy + argv, env_for(probe, **peer.worker_env()), "profile")
        probe.wait(n, size.timeout * 2, [p])
        first, last = probe.span()
        wait_exit([p], size.timeout)
        rate = n / (last - first)
    finally:
        probe.cleanup()
        peer.teardown()
    text = open(raw).read()
    summary = enqueue_profile(n) + "\n\n" + (f"duly drain of {n:,} no-op jobs, 1 process, concurrency {peer.concurrency}, under py-spy: "
               f"{rate:,.0f} jobs/s while sampled ({time.time() - t:.0f} s in all)\n\n" + summarize(text))  # fmt: skip
    with open(os.path.join(RESULTS, f"profile-{size.name}.txt"), "w") as f:
        f.write(summary + "\n")
    print(summary)
    if write_doc:
        _write_doc(summary, size.name)
    log(f"bench: profile in bench/results/profile-{size.name}.txt" + (" and docs/benchmarks.md" if write_doc else ""))
    return summary


def enqueue_profile(n: int) -> str:
    """pyinstrument over one ``enqueue_many`` of n jobs (in this process)."""
    from pyinstrument import Profiler

    peer = Duly()
    peer.setup()
    try:
        prof = Profiler(interval=0.0005)
        t = time.perf_counter()
        prof.start()
        peer.enqueue_bulk(n)
        prof.stop()
        took = time.perf_counter() - t
    finally:
        peer.teardown()
    text = prof.output_text(unicode=False, color=False, show_all=False, short_mode=True)
    lines = [ln for ln in text.splitlines() if ln.strip()][:45]
    return (f"duly bulk enqueue (`enqueue_many`) of {n:,} jobs under pyinstrument: {n / took:,.0f} jobs/s\n\n"
            + "\n".join(lines))


def _write_doc(summary: str, size: str) -> None:
    block = f"{START}\n\nCommand: `python bench/run.py profile --size {size}`\n\n```text\n{summary}\n```\n\n{END}"
    text = open(DOC).read() if os.path.exists(DOC) else "# Benchmarks\n"
    if START in text and END in text:
        text = text[: text.index(START)] + block + text[text.index(END) + len(END):]
    else:
        text += "\n" + block + "\n"
    with open(DOC, "w") as f:
        f.write(text)


