"""Where `metadisk up` leaves its grant: its own config dir always, the CLI's when that is free."""

from __future__ import annotations

import os
from pathlib import Path

from metadisk.cli import config as cfg
from metadisk.cli.context import CliContext
from metadisk.cli.up import CLI_DIR, UpState, _write_configs
from metadisk.core.grant import AccessGrant
from metadisk.core.macaroon import APIKey
from metadisk.core.paths import EncryptionAccess


def state(url: str = "http://127.0.0.1:7777") -> UpState:
    key, _ = APIKey.generate()
    grant = AccessGrant(url, key, EncryptionAccess(root_key=os.urandom(32))).serialize()
    return UpState("owner@local.metadisk", "ab" * 16, grant)


def test_a_free_user_config_gets_the_grant(tmp_path: Path) -> None:
    root, user = tmp_path / "net", tmp_path / "user"
    # Tuning the user keeps in their config survives.
    cfg.save(user, cfg.CliConfig(client=cfg.ClientTuning(workers=3)))
    first = state()
    assert _write_configs(CliContext(user), root, first) == user
    for directory in (user, root / CLI_DIR):
        written = cfg.load(directory)
        assert written.grant == first.grant
        assert written.account == cfg.Account("http://127.0.0.1:7777", first.email, "ab" * 16)
        assert written.origin == f"metadisk up {root}"
    assert cfg.load(user).client.workers == 3
    # A later run (say, the bridge on another port) updates what it wrote itself.
    moved = state("http://127.0.0.1:8888")
    assert _write_configs(CliContext(user), root, moved) == user
    assert cfg.load(user).grant == moved.grant


def test_a_config_for_another_network_is_left_alone(tmp_path: Path) -> None:
    root, user = tmp_path / "net", tmp_path / "user"
    theirs = state("https://bridge.example.com")
    cfg.save(user, cfg.CliConfig(grant=theirs.grant, origin="metadisk setup"))
    ours = state()
    assert _write_configs(CliContext(user), root, ours) == root / CLI_DIR
    assert cfg.load(user).grant == theirs.grant
    assert cfg.load(root / CLI_DIR).grant == ours.grant
    # Another data dir's `up` is another network too.
    assert _write_configs(CliContext(user), tmp_path / "other", state()) != user
