"""A 300 MB `metadisk cp` in a pseudo-terminal draws its progress cleanly.

pexpect gives the command a real terminal (Rich draws bars only on one), which a pipe or
capfd cannot; the raw stream it reads is what a user's terminal would be sent.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pexpect

from metadisk.devnet.network import Tenant
from tests.e2e.harness import CLI, write_config

MB = 1_000_000
SIZE = 300 * MB
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _big_file(path: Path, size: int = SIZE) -> Path:
    block = os.urandom(1 << 20)
    with path.open("wb") as out:
        written = 0
        while written < size:
            out.write(block[: min(len(block), size - written)])
            written += min(len(block), size - written)
    return path


def _in_terminal(args: list[str], **env: str) -> tuple[int, str]:
    """Run the CLI in a pseudo-terminal; its exit status and everything it drew."""
    environment = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "METADISK_DEBUG")}
    environment.update(TERM="xterm-256color", COLUMNS="120", LINES="30", **env)
    child = pexpect.spawn(
        CLI[0], [*CLI[1:], *args], env=environment, dimensions=(30, 120), timeout=240,
        encoding="utf-8",
    )  # fmt: skip
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus, child.before


def test_cp_progress_is_drawn_cleanly(tmp_path: Path, tenant: Tenant) -> None:
    # Default-sized pieces: a 300 MB upload in a reasonable time on a shared machine.
    config = write_config(tmp_path / "config", tenant, piece_target=4 << 20)
    source = _big_file(tmp_path / "big.bin")
    base = ["--config-dir", str(config)]
    subprocess.run([*CLI, *base, "mb", "md://tty"], check=True, capture_output=True, timeout=60)

    status, raw = _in_terminal([*base, "cp", str(source), "md://tty/big.bin"])
    assert status == 0, raw[-2000:]
    assert "Traceback" not in raw

    text = ANSI.sub("", raw)
    frames = [frame for frame in re.split(r"[\r\n]+", text) if frame.strip()]
    bars = [frame for frame in frames if "━" in frame]
    assert bars, text[-2000:]
    # One unit family: sizes and speeds both binary.
    for frame in bars:
        assert re.search(r"\bMiB\b", frame), frame
        assert not re.search(r"\b[kMG]B\b|[kMG]B/s", frame), frame
    assert any(re.search(r"MiB/s|KiB/s|B/s", frame) for frame in bars)
    last_bar = max(i for i, frame in enumerate(frames) if "━" in frame)
    assert "286.1/286.1 MiB" in frames[last_bar], frames[last_bar]  # 300 MB, complete

    # The final line comes after the finished bar, alone on its own line.
    copied = [i for i, frame in enumerate(frames) if "copied" in frame]
    assert len(copied) == 1, frames[-5:]
    assert copied[0] > last_bar, frames[-5:]
    assert frames[copied[0]] == f"copied {source} -> md://tty/big.bin", frames[copied[0]]
    assert re.search(r"\n[^\n]*copied ", raw.replace("\r", "\n")), raw[-500:]


def test_quiet_and_no_color_in_a_terminal(tmp_path: Path, tenant: Tenant) -> None:
    config = write_config(tmp_path / "config", tenant)
    source = _big_file(tmp_path / "small.bin", 3 * MB)
    base = ["--config-dir", str(config)]
    subprocess.run([*CLI, *base, "mb", "md://quiet"], check=True, capture_output=True, timeout=60)

    # --quiet: nothing drawn and no notes, yet an error is still said.
    status, raw = _in_terminal([*base, "--quiet", "cp", str(source), "md://quiet/a"])
    assert (status, raw.strip()) == (0, "")
    status, raw = _in_terminal([*base, "-q", "cp", str(tmp_path / "missing"), "md://quiet/b"])
    assert status != 0 and raw.strip().startswith("error: "), raw

    # NO_COLOR: the bar is drawn, with no colour in it.
    status, raw = _in_terminal([*base, "cp", str(source), "md://quiet/c"], NO_COLOR="1")
    assert status == 0 and "━" in raw, raw
    colours = re.findall(r"\x1b\[[0-9;]*m", raw)
    assert not [code for code in colours if re.search(r"\[(3|4|9|10)[0-9]", code)], colours
    status, raw = _in_terminal(["cp", "--help"], NO_COLOR="1")
    assert status == 0 and not re.search(r"\x1b\[[0-9;]*(3|4|9)[0-9][;m]", raw), raw
