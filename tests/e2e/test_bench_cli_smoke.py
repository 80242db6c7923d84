"""`bench/cli.py` runs and prints its start-up and sync figures (not judged)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[2] / "bench" / "cli.py"


def test_cli_bench_prints_start_up_times() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--runs", "1", "--files", "50"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for row in ("metadisk --version", "metadisk ls"):
        [line] = [line for line in result.stdout.splitlines() if line.startswith(row + " ")]
        median, best = (float(figure) for figure in line[len(row) :].split()[:2])
        assert 0 < best <= median, line
        assert "<=0.25 s" in line
    assert "import time of `metadisk ls`" in result.stdout
    for row in ("metadisk sync up", "metadisk sync up again", "metadisk sync down"):
        [line] = [line for line in result.stdout.splitlines() if line.startswith(row + "  ")]
        assert float(line[len(row) :].split()[0]) > 0, line
