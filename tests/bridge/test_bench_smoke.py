"""`bench/bridge.py --quick` runs end to end and prints its table (figures are never asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(
    r"^sqlite\s+(?P<operation>put|get|list 1000)\s+(?P<clients>\d+)\s+(?P<rate>\d+)"
    r"\s+(?:>=\d+\s+)?(?P<errors>\d+)$"
)


def test_bench_quick() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bridge.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [ROW.match(line) for line in result.stdout.splitlines()]
    found = {(m["operation"], m["clients"]): m for m in rows if m}
    for operation in ("put", "get", "list 1000"):
        for clients in ("1", "16"):
            row = found[operation, clients]
            assert float(row["rate"]) > 0
            assert row["errors"] == "0", result.stdout  # no failed requests
