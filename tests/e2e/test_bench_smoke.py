"""`bench/e2e.py --quick` runs end to end and prints every row (figures are not judged)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[2] / "bench" / "e2e.py"
ROWS = [
    "upload 4 MiB",
    "download 4 MiB",
    "client peak RSS 4 MiB",
    "upload 16 MiB",
    "download 16 MiB",
    "client peak RSS 16 MiB",
    "put 4 KiB inline x16",
    "get 4 KiB inline x16",
    "put 4097 B on farmers x16",
    "get 4097 B on farmers x16",
]


def test_quick_bench_prints_every_row() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    for row in ROWS:
        matching = [line for line in lines if line.startswith(row + " ")]
        assert len(matching) == 1, (row, result.stdout)
        value = float(matching[0][len(row) :].split()[0])
        assert value > 0, matching[0]
        assert "MISMATCH" not in matching[0]  # every transfer came back byte for byte
    assert "Tahoe-LAFS" in result.stdout
