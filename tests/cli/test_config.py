"""The CLI config file: where it is, what it holds, and that it stays private."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from metadisk.cli import config as cfg
from metadisk.cli.errors import UsageError
from metadisk.core.grant import AccessGrant
from metadisk.core.macaroon import APIKey
from metadisk.core.paths import EncryptionAccess


def a_grant() -> str:
    key, _secret = APIKey.generate()
    access = EncryptionAccess(root_key=os.urandom(32))
    return AccessGrant("http://127.0.0.1:7777", key, access).serialize()


def test_round_trip_is_private(tmp_path: Path) -> None:
    directory = tmp_path / "deep" / "config"
    written = cfg.CliConfig(
        grant=a_grant(),
        account=cfg.Account("http://127.0.0.1:7777", 'ada "the" @example.com', "ab" * 16),
        client=cfg.ClientTuning(processes=False, workers=2, piece_target=262144),
        origin="metadisk setup",
    )
    path = cfg.save(directory, written)
    assert cfg.load(directory) == written
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert not [p for p in directory.iterdir() if p.name != cfg.CONFIG_FILE]  # no temp left
    tuned = written.client.client_config()
    assert (tuned.processes, tuned.workers, tuned.sizing.piece_target) == (False, 2, 262144)


def test_hedging_and_stall_timeout_reach_the_client(tmp_path: Path) -> None:
    (tmp_path / cfg.CONFIG_FILE).write_text("[client]\ndownload_hedge = 0\nstall_timeout = 2.5\n")
    tuned = cfg.load(tmp_path).client.client_config()
    assert tuned.download.extra_pieces == 0  # hedging off
    assert tuned.transport.stall_timeout == 2.5
    defaults = cfg.ClientTuning().client_config()
    assert defaults.download.extra_pieces == 2  # on by default, the CLI as the library


def test_missing_file_is_an_empty_config(tmp_path: Path) -> None:
    empty = cfg.load(tmp_path)
    assert empty == cfg.CliConfig()
    with pytest.raises(UsageError, match="metadisk setup"):
        empty.access_grant(tmp_path)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("grant = 3\n", "grant must be str"),
        ("colour = 'blue'\n", "unknown setting 'colour'"),
        ("[client]\nworkers = true\n", "workers must be int"),
        ("[client]\nworkers = 0\n", "at least 1"),
        ("[client]\nspeed = 3\n", "unknown setting [client] 'speed'"),
        ("[account]\nemail = 'a@b.c'\n", "[account] needs bridge_url"),
        ("account = 'x'\n", "[account] must be a table"),
        ("grant = \n", "config.toml"),
        ("[client]\ndownload_hedge = -1\n", "download_hedge must be 0 to"),
        ("[client]\ndownload_hedge = 2.5\n", "download_hedge must be int"),
        ("[client]\nstall_timeout = 0\n", "stall_timeout must be above 0"),
    ],
)
def test_bad_files_are_one_line_errors(tmp_path: Path, text: str, fragment: str) -> None:
    (tmp_path / cfg.CONFIG_FILE).write_text(text)
    with pytest.raises(UsageError) as caught:
        cfg.load(tmp_path)
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_malformed_grant_is_reported(tmp_path: Path) -> None:
    cfg.save(tmp_path, cfg.CliConfig(grant="mdg1notagrant"))
    with pytest.raises(UsageError, match="malformed"):
        cfg.load(tmp_path).access_grant(tmp_path)


def test_where_the_config_lives(tmp_path: Path) -> None:
    flag, env = tmp_path / "flag", tmp_path / "env"
    assert cfg.config_dir(flag, {cfg.ENV_CONFIG_DIR: str(env)}) == flag
    assert cfg.config_dir(None, {cfg.ENV_CONFIG_DIR: str(env)}) == env
    default = cfg.config_dir(None, {})
    assert default.name == "metadisk"
    assert default not in (flag, env)
