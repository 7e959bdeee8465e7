"""The benchmark harness runs a step end to end and leaves nothing behind: no process, no directory (no figure
is judged here: the host's speed is not the harness's behaviour)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import live_descendants

ROOT = Path(__file__).resolve().parent.parent


def test_a_bench_step_runs_and_leaves_no_process_or_directory(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--only", "first-output"],
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(scratch)},  # where each step makes its data directories
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| first output")]
    assert len(rows) == 2, result.stdout
    assert list(scratch.iterdir()) == []
    # A supervisor's command line names its data directory; any left would be this process's (a subreaper).
    assert [cmdline for _, cmdline in live_descendants() if str(scratch) in cmdline] == []


def test_an_unknown_step_is_refused_by_name() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--only", "nope"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "unknown step(s) nope" in result.stderr
