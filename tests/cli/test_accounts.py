"""The CLI's account commands (setup, access list/create/revoke) against a real bridge process.

No farmers: these commands only talk to the bridge's account and key routes. One bridge serves
the module; every test registers its own account.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from metadisk.cli import config as cfg
from metadisk.cli.errors import EXIT_FAILED, EXIT_NOT_FOUND, EXIT_REFUSED, EXIT_USAGE
from metadisk.cli.main import main
from metadisk.core.grant import AccessGrant
from metadisk.devnet.bridge import BridgeProcess, bridge_process

PASSWORD = "correct horse battery"
SECRETS = ["--password-env", "MD_PASSWORD", "--passphrase-env", "MD_PASSPHRASE"]


@dataclass(frozen=True)
class Ran:
    status: int
    out: str
    err: str

    @property
    def error_line(self) -> str:
        assert self.err.count("\n") == 1 and self.err.startswith("error: "), self.err
        assert "Traceback" not in self.err
        return self.err.strip()


@pytest.fixture(scope="module")
def bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeProcess]:
    with bridge_process(tmp_path_factory.mktemp("bridge")) as running:
        yield running


Cli = Callable[..., Ran]


@pytest.fixture
def run(tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """`metadisk` in this process, config in ``tmp_path/config``, secrets in the environment."""
    monkeypatch.setenv("MD_PASSWORD", PASSWORD)
    monkeypatch.setenv("MD_PASSPHRASE", "purple monkey dishwasher")

    def call(*args: str, config_dir: Path = tmp_path / "config") -> Ran:
        capfd.readouterr()
        status = main(["--config-dir", str(config_dir), *args])
        captured = capfd.readouterr()
        return Ran(status, captured.out, captured.err)

    return call


def email() -> str:
    return f"{os.urandom(6).hex()}@example.com"


def session_file(config_dir: Path) -> dict[str, object]:
    path = config_dir / cfg.SESSION_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    return dict(json.loads(path.read_text()))


def test_setup_then_manage_keys_with_the_cached_session(
    bridge: BridgeProcess, run: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    me = email()
    made = run("setup", bridge.url, "--register", "--email", me, "--key-name", "first", *SECRETS)
    assert made.status == 0, made.err
    assert "made project 'default'" in made.err
    config_dir = tmp_path / "config"
    loaded = cfg.load(config_dir)
    assert loaded.account is not None and loaded.account.email == me
    cached = session_file(config_dir)
    assert (cached["bridge_url"], cached["email"]) == (bridge.url, me)

    # The cached session is used: no password needed (and none in the environment).
    monkeypatch.delenv("MD_PASSWORD")
    listed = run("access", "list")
    assert listed.status == 0, listed.err
    ((first_id, _, _, first_name),) = [line.split() for line in listed.out.splitlines()]
    assert first_name == "first"
    assert AccessGrant.parse(loaded.grant or "").api_key.key_id.hex() == first_id

    created = run("access", "create", "laptop")
    assert created.status == 0, created.err
    laptop = AccessGrant.parse(created.out.strip()).api_key.key_id.hex()
    assert f"made API key {laptop} (laptop)" in created.err
    assert {line.split()[0] for line in run("access", "list").out.splitlines()} == {
        first_id,
        laptop,
    }

    deleted = run("access", "revoke", "--key-id", laptop.upper())
    assert deleted.status == 0, deleted.err
    assert [line.split()[0] for line in run("access", "list").out.splitlines()] == [first_id]
    again = run("access", "revoke", "--key-id", laptop)
    assert again.status == EXIT_NOT_FOUND
    assert "api-key-not-found" in again.error_line

    # Another setup of the same account finds the project instead of making one.
    monkeypatch.setenv("MD_PASSWORD", PASSWORD)
    other = tmp_path / "other"
    joined = run("setup", bridge.url, "--email", me, *SECRETS, config_dir=other)
    assert joined.status == 0, joined.err
    assert "made project" not in joined.err
    joined_account = cfg.load(other).account
    assert joined_account is not None and joined_account.project_id == loaded.account.project_id


def test_a_refused_cached_session_logs_in_again(
    bridge: BridgeProcess, run: Cli, tmp_path: Path
) -> None:
    me = email()
    assert run("setup", bridge.url, "--register", "--email", me, *SECRETS).status == 0
    config_dir = tmp_path / "config"
    stale = {**session_file(config_dir), "token": "logged-out-elsewhere"}
    (config_dir / cfg.SESSION_FILE).write_text(json.dumps(stale))

    listed = run("access", "list", "--password-env", "MD_PASSWORD")
    assert listed.status == 0, listed.err
    assert len(listed.out.splitlines()) == 1
    fresh = session_file(config_dir)
    assert fresh["token"] not in ("logged-out-elsewhere", "")


def test_revoke_a_shared_grant_with_the_configured_key(
    bridge: BridgeProcess, run: Cli, tmp_path: Path
) -> None:
    assert run("setup", bridge.url, "--register", "--email", email(), *SECRETS).status == 0
    shared = run("access", "restrict", "--readonly").out.strip()
    revoked = run("access", "revoke", shared)
    assert revoked.status == 0, revoked.err
    assert "revoked API key" in revoked.out

    # A sibling root key is not the configured key's to revoke: refused, one line.
    sibling = run("access", "create", "sibling").out.strip()
    refused = run("access", "revoke", sibling)
    assert refused.status == EXIT_REFUSED
    assert "[access-denied]" in refused.error_line


def test_setup_errors_are_one_line(
    bridge: BridgeProcess, run: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    me = email()
    assert run("setup", bridge.url, "--register", "--email", me, *SECRETS).status == 0
    twice = run("setup", bridge.url, "--register", "--email", me, *SECRETS, "--force")
    assert twice.status == EXIT_FAILED
    assert "[email-taken]" in twice.error_line
    monkeypatch.setenv("MD_PASSWORD", "not the password")
    wrong = run("setup", bridge.url, "--email", me, *SECRETS, "--force")
    assert wrong.status == EXIT_USAGE
    assert f"cannot log in as {me}" in wrong.error_line
    assert "(new here? add --register)" in wrong.error_line


def test_an_unreachable_bridge_is_one_line(run: Cli, tmp_path: Path) -> None:
    nowhere = "http://127.0.0.1:1"
    down = run("setup", nowhere, "--email", email(), *SECRETS)
    assert down.status == EXIT_FAILED
    assert down.error_line.startswith(f"error: cannot reach the bridge at {nowhere}: ")
    assert down.error_line.endswith("[connection-failed]")

    config_dir = tmp_path / "config"
    cfg.save(config_dir, cfg.CliConfig(None, cfg.Account(nowhere, email(), "0" * 32)))
    listed = run("access", "list", "--password-env", "MD_PASSWORD")
    assert listed.status == EXIT_FAILED
    assert listed.error_line.endswith("[connection-failed]")
