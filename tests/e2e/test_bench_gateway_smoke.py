"""`bench/gateway.py --quick` runs end to end through a real gateway and prints every row
(figures are not judged)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[2] / "bench" / "gateway.py"
ROWS = [
    *(
        f"{who} {way} 4 MiB"
        for way in ("upload", "download")
        for who in ("library", "gateway", "gateway/library")
    ),
    "gateway peak RSS after 4 MiB",
    "put 4 KiB x16 threads",
    "get 4 KiB x16 threads",
    "put 4 KiB x16 processes",
    "get 4 KiB x16 processes",
    "gateway upload 8 MiB (stream)",
    "gateway peak RSS, 8 MiB upload",
]


def test_quick_gateway_bench_prints_every_row() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--sizes", "4", "--objects", "32",
         "--rss-size", "8"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    for row in ROWS:
        matching = [line for line in lines if line[:40].rstrip() == row]
        assert len(matching) == 1, (row, result.stdout)
        value = float(matching[0][40:].split()[0])
        assert value > 0, matching[0]
        assert "MISMATCH" not in matching[0]  # every transfer came back byte for byte
    assert "≥70% of library" in result.stdout
    assert "<300 MiB" in result.stdout
