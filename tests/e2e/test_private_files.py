"""Secrets at rest on one machine: another local user reads none of a network's files, and files
an older version (or a hand) left open are tightened when a process starts on them.

Real processes: a `metadisk bridge run` and farmers (`metadisk.devnet.LocalNetwork`), the CLI's
config. Reading as another user needs root (to become ``nobody``): skipped otherwise.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from metadisk.cli import config as cfg
from metadisk.devnet.bridge import BridgeProcess
from metadisk.devnet.network import LocalNetwork

OTHER_USER = "nobody"
SECRET_FILES = (
    "bridge/bridge.sqlite3",
    "bridge/bridge.sqlite3-wal",
    "bridge/bridge.sqlite3-shm",
    "bridge/identity.seed",
    "bridge/api-keys.kek",
    "farmers/farmer-01/identity.key",
    "farmers/farmer-01/farmer.db",
    "farmers/farmer-01/farmer.db-wal",
    "cli/config.toml",
)
PRIVATE_DIRS = ("", "bridge", "farmers/farmer-01", "cli")


@pytest.fixture
def open_base() -> Iterator[Path]:
    """A directory every local user may enter (pytest's own tmp dirs are 0700)."""
    base = Path(tempfile.mkdtemp(prefix="metadisk-private-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip(f"reading as another user ({OTHER_USER}) needs root to switch users")


def readable_by_other_user(paths: list[Path]) -> list[str]:
    """The paths `OTHER_USER` can open (files) or list (directories)."""
    script = (
        'for p; do if [ -d "$p" ]; then ls "$p"; else cat "$p"; fi >/dev/null 2>&1 && echo "$p";'
        " done; exit 0"
    )
    done = subprocess.run(
        ["runuser", "-u", OTHER_USER, "--", "sh", "-c", script, "sh", *map(str, paths)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.split()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_another_local_user_reads_none_of_a_network_s_files(open_base: Path) -> None:
    need_root()
    root = open_base / "net"
    network = LocalNetwork(root, farmers=3)
    await network.start()
    try:
        tenant = await network.create_tenant()
        cfg.save(root / "cli", cfg.CliConfig(grant=tenant.grant))
        # Even with the top directory opened to all (an operator's mistake, or a shared parent
        # such as /var/lib), every data dir and secret file stays closed.
        root.chmod(0o755)
        # All but the piece store's 256 fan-out directories per bridge (their parent is tried).
        everything = sorted(p for p in root.rglob("*") if p.parent.parent.name != "pieces")
        assert readable_by_other_user(everything) == []
        assert {root / name for name in SECRET_FILES} <= set(everything)
        for name in SECRET_FILES:
            assert mode(root / name) == 0o600, name
        for name in PRIVATE_DIRS[1:]:
            assert mode(root / name) == 0o700, name
    finally:
        await network.stop()


def test_a_bridge_started_on_an_open_data_dir_keeps_its_files_to_itself(open_base: Path) -> None:
    """`metadisk bridge run --data-dir D`, D made by hand: D 0700, its database 0600."""
    need_root()
    data_dir = open_base / "bridge"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    bridge = BridgeProcess(data_dir)
    bridge.start()
    try:
        files = [data_dir / name for name in ("bridge.sqlite3", "identity.seed", "api-keys.kek")]
        assert readable_by_other_user([data_dir, *files]) == []
        assert mode(data_dir) == 0o700
        assert all(mode(path) == 0o600 for path in files)
    finally:
        bridge.stop()


async def test_files_found_open_are_tightened_with_one_warning_each(
    open_base: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = open_base / "net"
    network = LocalNetwork(root, farmers=1)
    await network.start()
    await network.stop()
    opened = {
        root / "bridge": 0o755,
        root / "bridge/bridge.sqlite3": 0o644,
        root / "bridge/bridge.sqlite3-wal": 0o644,
        root / "bridge/api-keys.kek": 0o640,
        root / "farmers/farmer-01": 0o755,
        root / "farmers/farmer-01/farmer.db": 0o644,
    }
    for path, loose in opened.items():
        if path.exists():
            path.chmod(loose)
    opened = {path: loose for path, loose in opened.items() if path.exists()}
    assert root / "bridge/bridge.sqlite3" in opened and root / "farmers/farmer-01" in opened
    logs = [root / "bridge/bridge.log", root / "farmers/farmer-01/farmer.log"]
    before = [log.read_text() for log in logs]

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        await network.start()
        await network.stop()
    # Each is tightened by the first process that opens it: the bridge, a farmer, or the
    # launcher itself (which reads each farmer's config from its data dir).
    said = "".join(log.read_text()[len(old) :] for log, old in zip(logs, before, strict=True))
    warnings = [line for line in said.splitlines() if "tightened permissions" in line]
    warnings += [
        f"path={record.fields['path']} "  # type: ignore[attr-defined]
        for record in caplog.records
        if "tightened permissions" in record.getMessage()
    ]
    for path in opened:
        assert mode(path) == (0o700 if path.is_dir() else 0o600), path
        assert sum(f"path={path} " in line + " " for line in warnings) == 1, (path, warnings)


def test_the_cli_config_found_open_is_tightened(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config_dir = tmp_path / "config"
    cfg.save(config_dir, cfg.CliConfig(grant=None, origin="test"))
    config_dir.chmod(0o755)
    (config_dir / cfg.CONFIG_FILE).chmod(0o644)
    with caplog.at_level(logging.WARNING):
        assert cfg.load(config_dir).origin == "test"
    assert mode(config_dir) == 0o700
    assert mode(config_dir / cfg.CONFIG_FILE) == 0o600
    tightened = [r for r in caplog.records if "tightened permissions" in r.getMessage()]
    assert len(tightened) == 2
    assert mode(cfg.save(config_dir, cfg.load(config_dir))) == 0o600
