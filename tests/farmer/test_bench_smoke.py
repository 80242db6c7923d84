"""`bench/farmer.py --quick` runs end to end and prints every row (figures are not judged)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[2] / "bench" / "farmer.py"
ROWS = [
    "PUT 2 MiB x1",
    "PUT 2 MiB x8",
    "GET 2 MiB x1",
    "GET 2 MiB x8",
    "PUT 4 KiB x8",
    "GET 4 KiB x8",
    "PUT 64 KiB x8",
    "GET 64 KiB x8",
]


def test_quick_bench_prints_every_row() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for row in ROWS:
        matching = [line for line in lines if line.startswith(row + " ")]
        assert len(matching) == 1, (row, result.stdout)
        value = float(matching[0][len(row) :].split()[0])
        assert value > 0, matching[0]
