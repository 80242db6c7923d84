"""`bench/e2e.py --quick` runs end to end, plain and over TLS, and prints every row (figures are
not judged)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[2] / "bench" / "e2e.py"
PLAIN = [
    "upload 4 MiB",
    "download 4 MiB",
    "client peak RSS 4 MiB",
    "put 4 KiB inline x16",
    "get 4 KiB inline x16",
    "put 4097 B on farmers x16",
    "get 4097 B on farmers x16",
]
ROWS = PLAIN + [row.replace(" x16", " TLS x16") if "x16" in row else row + " TLS" for row in PLAIN]


def test_quick_bench_prints_every_row() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--sizes", "4", "--objects", "32"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    for row in ROWS:
        matching = [line for line in lines if line[:36].rstrip() == row]
        assert len(matching) == 1, (row, result.stdout)
        value = float(matching[0][36:].split()[0])
        assert value > 0, matching[0]
        assert "MISMATCH" not in matching[0]  # every transfer came back byte for byte
    assert "TLS cost, upload 4 MiB:" in result.stdout
    assert "Tahoe-LAFS" in result.stdout
