"""docs/tutorial-python-client.md runs: its Python blocks, in order, against a real network."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.e2e.harness import BackgroundNetwork

TUTORIAL = Path(__file__).parents[2] / "docs" / "tutorial-python-client.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", TUTORIAL.read_text(), re.M | re.S)


def test_the_tutorial_runs(network: BackgroundNetwork, tmp_path: Path) -> None:
    assert "./scripts/up" in blocks("sh")[0]
    script = tmp_path / "tutorial.py"
    script.write_text("\n\n".join(blocks("python")))
    # As typed into an interpreter, which is how the tutorial is followed: `-c` leaves the main
    # module without a file, so the library's worker processes do not import it again.
    runner = "import sys; exec(compile(open(sys.argv[1]).read(), sys.argv[1], 'exec'))"
    done = subprocess.run(
        [sys.executable, "-c", runner, str(script)],
        cwd=tmp_path,
        env={**os.environ, "METADISK_BRIDGE": network.bridge_url},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for expected in (
        f"bridge at {network.bridge_url}",
        "as expected: invalid-credentials",
        "as expected: bucket-exists",
        "library sees: notes/hello.txt 16",
        "b'Hello, metadisk!'",
        "b'metadisk'",
        "bridge sees:",
        "friend reads: b'Hello, metadisk!'",
        "as expected, no writing: access-denied",
        "as expected, nothing outside notes/: access-denied",
        "revoked",
    ):
        assert expected in out, (expected, out)
    assert out.rstrip().endswith("[]")  # the bucket is gone
    assert not (tmp_path / "big-copy.bin").exists()
