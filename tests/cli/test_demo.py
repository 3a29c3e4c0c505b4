"""The README's demo command runs end to end on the embedded SQLite default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path




def test_duly_demo_runs_jobs_and_serves_the_dashboard(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DULY_DATABASE_URL", "DULY_DEMO_URL")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "duly", "demo", "--seconds", "9", "--port", "0"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=90)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert (tmp_path / "duly-demo.db").exists()
    for fragment in ("resize_image", "succeeded", "ValueError: card for order 1042 was declined",
                     "call_flaky_api", "cancelled", "trigger demo.heartbeat", "dashboard: http://127.0.0.1:"):  # fmt: skip
        assert fragment in out, f"{fragment!r} missing from the demo's output:\n{out}"
