"""duly/_faults.py, the crash points of the fault-injection suite (issue 6).

The variables are read once at import, so each case runs a fresh interpreter with its own
environment. A child that must survive many crashes (the rate test) swaps ``os._exit`` for a
counter in that child only; the others really exit.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from duly import _faults

REPO = Path(__file__).resolve().parents[2]


def child(code: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DULY_CRASH", "PYTHON"))}
    return subprocess.run(
        [sys.executable, "-c", code], env={**base, "PYTHONPATH": str(REPO), **env}, cwd=REPO,
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


PASSES = """
from duly._faults import crash_point
for i in range({n}):
    print("pass", i, flush=True)
    crash_point({point!r}, {detail})
print("survived", flush=True)
"""


def passes(
    n: int, point: str = "claim.committed", detail: str = "None", **env: str
) -> tuple[int, list[str]]:
    r = child(PASSES.format(n=n, point=point, detail=detail), **env)
    return r.returncode, r.stdout.split("\n")


def test_unarmed_is_a_no_op() -> None:
    code, out = passes(3)
    assert code == 0 and "survived" in out
    r = child("import duly._faults as f; print(f.ARMED, f.crash_point.__name__)")
    assert r.stdout.split() == ["False", "_unarmed"]


def test_an_unknown_point_name_is_a_clear_error_at_import() -> None:
    r = child("import duly._faults", DULY_CRASH_AT="claim.committed, claim.comitted")
    assert r.returncode != 0
    assert "ValueError" in r.stderr and "unknown crash point" in r.stderr, r.stderr
    assert (
        "claim.comitted" in r.stderr and "fire.between_slot_and_job" in r.stderr
    )  # names the known
    for point in _faults.POINTS + ("*",):
        ok = child("import duly._faults as f; print(f.ARMED)", DULY_CRASH_AT=point)
        assert ok.returncode == 0 and ok.stdout.strip() == "True", (point, ok.stderr)


def test_an_armed_point_exits_137_at_once_and_logs_what_it_held(tmp_path: Path) -> None:
    log = tmp_path / "crashes.log"
    code, out = passes(
        5, "finish.before", "[(7, 2)]", DULY_CRASH_AT="finish.before", DULY_CRASH_LOG=str(log)
    )
    assert code == _faults.EXIT_CODE == 137
    assert "pass 0" in out and "pass 1" not in out
    (line,) = log.read_text().splitlines()
    point, pid, detail = line.split(" ")
    assert point == "finish.before" and int(pid) > 0 and detail == "(7,2)"


def test_other_points_are_not_armed_and_do_not_count() -> None:
    code, out = passes(5, "handler.before", DULY_CRASH_AT="claim.committed")
    assert code == 0 and "survived" in out
    code, _ = passes(5, "fire.between_slot_and_job", DULY_CRASH_AT="*")
    assert code == 137


def test_crash_after_lets_that_many_passes_through(tmp_path: Path) -> None:
    for after in (0, 1, 4):
        code, out = passes(10, DULY_CRASH_AT="claim.committed", DULY_CRASH_AFTER=str(after))
        assert code == 137
        assert f"pass {after}" in out and f"pass {after + 1}" not in out, (after, out)


def test_a_pass_with_nothing_in_hand_is_not_counted() -> None:
    # an empty claim (detail []) passes freely and does not use up DULY_CRASH_AFTER
    code, out = passes(
        6, detail="[] if i < 5 else [1]", DULY_CRASH_AT="claim.committed", DULY_CRASH_AFTER="0"
    )
    assert code == 137 and "pass 5" in out
    code, out = passes(6, detail="[]", DULY_CRASH_AT="claim.committed")
    assert code == 0 and "survived" in out


RATE = """
import os
import duly._faults as f
crashes = []
def exit_(code):  # this child only: count the crash instead of exiting
    crashes.append(code)
os._exit = exit_
for i in range({n}):
    f.crash_point("handler.before", "job")
print(len(crashes), set(crashes))
"""


@pytest.mark.parametrize("rate", [0.0, 0.25, 1.0])
def test_crash_rate_is_the_probability_per_pass(rate: float) -> None:
    n = 4000
    r = child(RATE.format(n=n), DULY_CRASH_AT="handler.before", DULY_CRASH_RATE=str(rate))
    assert r.returncode == 0, r.stderr
    count, codes = r.stdout.split(" ", 1)
    crashes = int(count)
    if rate == 0.0:
        assert crashes == 0
    elif rate == 1.0:
        assert crashes == n and codes.strip() == "{137}"
    else:  # binomial(4000, 0.25): mean 1000, sd 27; 8 sd either side
        assert 780 < crashes < 1220, crashes


def test_crash_rate_and_after_combine() -> None:
    r = child(
        RATE.format(n=1000),
        DULY_CRASH_AT="handler.before",
        DULY_CRASH_RATE="1",
        DULY_CRASH_AFTER="600",
    )
    assert r.stdout.split(" ", 1)[0] == "400", r.stdout + r.stderr
