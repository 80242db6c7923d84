"""The console script answers `--version` without importing the command tree."""

from __future__ import annotations

import subprocess
import sys

import pytest

from metadisk import __version__
from metadisk.cli.entry import main

PROBE = """
import sys
from metadisk.cli.entry import main
assert main(["--version"]) == 0
heavy = sorted(name for name in sys.modules if name.startswith(
    ("metadisk.client", "metadisk.cli.main", "typer", "aiohttp", "pydantic", "rich")))
print("heavy:", heavy)
"""


def test_version_imports_nothing_heavy() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.splitlines() == [f"metadisk {__version__}", "heavy: []"]


def test_everything_else_runs_the_command_tree(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ls", "--help"]) == 0
    assert "Usage: metadisk ls" in capsys.readouterr().out
    assert main(["--version", "--help"]) == 0  # not the fast path: the eager option still wins
    assert capsys.readouterr().out == f"metadisk {__version__}\n"
