"""A wrong passphrase is refused, at `metadisk setup` and at a grant's import, on a real network;
the right one is accepted, and a project from before the verifier keeps working and gets one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from metadisk.cli import config as cfg
from metadisk.cli.accounts import run_accounts
from metadisk.cli.errors import EXIT_REFUSED
from metadisk.client.bridge_api import BridgeAccounts
from metadisk.core.grant import AccessGrant
from metadisk.core.keys import derive_root_key, passphrase_verifier
from metadisk.core.paths import EncryptionAccess
from metadisk.devnet.network import Tenant
from metadisk.wire.api.accounts import ApiKey, Project
from tests.e2e.harness import BackgroundNetwork, InProcessCli, run_cli

PASSWORD = "correct horse battery"
RIGHT, WRONG = "purple monkey dishwasher", "purple monkey dishwashers"
REFUSED = "error: wrong passphrase for this project"


def setup_args(bridge_url: str, email: str, passphrase_env: str) -> list[str]:
    return [
        "setup", bridge_url, "--email", email,
        "--password-env", "MD_PASSWORD", "--passphrase-env", passphrase_env,
    ]  # fmt: skip


def project_and_keys(bridge_url: str, email: str, password: str) -> tuple[Project, list[ApiKey]]:
    async def work(api: BridgeAccounts) -> tuple[Project, list[ApiKey]]:
        await api.login(email, password)
        (project,) = await api.projects()
        return project, list(await api.api_keys(project.id))

    return run_accounts(bridge_url, work)


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MD_PASSWORD", PASSWORD)
    monkeypatch.setenv("RIGHT", RIGHT)
    monkeypatch.setenv("WRONG", WRONG)


@pytest.mark.usefixtures("secrets")
def test_setup_refuses_a_wrong_passphrase_and_saves_nothing(
    network: BackgroundNetwork, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    email = f"{os.urandom(4).hex()}@example.com"
    cli = InProcessCli(capfd, tmp_path / "laptop")
    made = cli(*setup_args(network.bridge_url, email, "RIGHT"), "--register")
    assert made.status == 0, made.err
    project, keys = project_and_keys(network.bridge_url, email, PASSWORD)
    root_key = derive_root_key(RIGHT, project.salt)
    assert project.passphrase_verifier == passphrase_verifier(root_key)

    # Another machine with a mistyped passphrase, as a real process: one line, exit 4, and
    # neither a config nor an API key left behind.
    desktop = tmp_path / "desktop"
    wrong = run_cli(*setup_args(network.bridge_url, email, "WRONG"), config_dir=desktop)
    assert (wrong.status, wrong.error_line) == (EXIT_REFUSED, REFUSED)
    assert not (desktop / cfg.CONFIG_FILE).exists()
    assert project_and_keys(network.bridge_url, email, PASSWORD)[1] == keys

    # The right one works there, and reads what the laptop wrote.
    note = tmp_path / "note.txt"
    note.write_text("from the laptop")
    assert cli("mb", "md://notes").status == 0
    assert cli("cp", note, "md://notes/").status == 0
    right = cli(*setup_args(network.bridge_url, email, "RIGHT"), config_dir=desktop)
    assert right.status == 0, right.err
    assert cli("cat", "md://notes/note.txt", config_dir=desktop).out == "from the laptop"


@pytest.mark.usefixtures("secrets")
def test_a_grant_import_checks_what_it_can(
    network: BackgroundNetwork, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    email = f"{os.urandom(4).hex()}@example.com"
    cli = InProcessCli(capfd, tmp_path / "owner")
    assert cli(*setup_args(network.bridge_url, email, "RIGHT"), "--register").status == 0
    assert cli("mb", "md://team").status == 0
    owner = AccessGrant.parse(cfg.load(cli.config_dir).grant or "")
    project, _ = project_and_keys(network.bridge_url, email, PASSWORD)

    # The owner's API key with keys from a mistyped passphrase: refused, nothing saved.
    mistyped = AccessGrant(
        owner.bridge_url,
        owner.api_key,
        EncryptionAccess(root_key=derive_root_key(WRONG, project.salt)),
    ).serialize()
    friend = tmp_path / "friend"
    refused = cli("setup", "--grant", mistyped, config_dir=friend)
    assert (refused.status, refused.error_line) == (EXIT_REFUSED, REFUSED)
    assert not (friend / cfg.CONFIG_FILE).exists()

    # The right grant, and a read-only narrowing of it (still the root key), are checked.
    for grant in (owner.serialize(), cli("access", "restrict", "--readonly").out.strip()):
        imported = cli("setup", "--grant", grant, "--force", config_dir=friend)
        assert imported.status == 0, imported.err
        assert "checked: the root key matches" in imported.err

    # A grant for a folder holds that folder's key only: it cannot be checked, and says so.
    shared = cli("share", "md://team/docs").out.strip()
    folder = cli("setup", "--grant", shared, "--force", config_dir=friend)
    assert folder.status == 0, folder.err
    assert "not checked: a restricted grant holds folder keys" in folder.err


@pytest.mark.usefixtures("secrets")
def test_a_project_without_a_verifier_keeps_working_and_gets_one(
    network: BackgroundNetwork,
    tenant: Tenant,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A project made through the API, as every project before the verifier was: none stored.
    monkeypatch.setenv("MD_PASSWORD", tenant.password)
    project, _ = project_and_keys(network.bridge_url, tenant.email, tenant.password)
    assert project.passphrase_verifier is None
    root_key = derive_root_key(RIGHT, project.salt)
    old = AccessGrant.parse(tenant.grant)
    grant = AccessGrant(old.bridge_url, old.api_key, EncryptionAccess(root_key=root_key))

    cli = InProcessCli(capfd, tmp_path / "old")
    imported = cli("setup", "--grant", grant.serialize())
    assert imported.status == 0, imported.err
    assert "not checked: the project has no verifier yet" in imported.err
    note = tmp_path / "note.txt"
    note.write_text("written before the verifier")
    assert cli("mb", "md://old").status == 0
    assert cli("cp", note, "md://old/").status == 0

    # The first setup with the passphrase stores the verifier, and reads the old files.
    fresh = tmp_path / "fresh"
    first = cli(*setup_args(network.bridge_url, tenant.email, "RIGHT"), config_dir=fresh)
    assert first.status == 0, first.err
    project, _ = project_and_keys(network.bridge_url, tenant.email, tenant.password)
    assert project.passphrase_verifier == passphrase_verifier(root_key)
    assert cli("cat", "md://old/note.txt", config_dir=fresh).out == "written before the verifier"
    # From now on a wrong one is refused, at setup and at import.
    wrong = cli(*setup_args(network.bridge_url, tenant.email, "WRONG"), config_dir=tmp_path / "w")
    assert (wrong.status, wrong.error_line) == (EXIT_REFUSED, REFUSED)
    reimport = cli("setup", "--grant", tenant.grant, "--force")
    assert (reimport.status, reimport.error_line) == (EXIT_REFUSED, REFUSED)
