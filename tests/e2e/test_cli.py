"""The `metadisk` CLI end to end, against a real bridge and ten real farmers.

Most commands run in this process through `metadisk.cli.main.main` (quick); the ones where the
process itself matters (setup's prompts and environment, exit statuses and stderr of a real
process, an upload killed with SIGKILL) run `metadisk` as a separate process.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from metadisk.cli import config as cfg
from metadisk.cli.accounts import run_accounts
from metadisk.client.bridge_api import BridgeAccounts
from metadisk.core.grant import AccessGrant
from metadisk.core.keys import derive_root_key
from metadisk.devnet.network import Tenant
from metadisk.wire.api.accounts import Project
from tests.e2e.harness import (
    CLI,
    BackgroundNetwork,
    InProcessCli,
    MiB,
    files_under,
    piece_files,
    run_cli,
    write_config,
)


def test_setup_derives_the_same_keys_from_the_passphrase(
    network: BackgroundNetwork,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    email = f"{os.urandom(4).hex()}@example.com"
    env = {"MD_PASSWORD": "correct horse battery", "MD_PASSPHRASE": "purple monkey dishwasher"}
    secrets = ["--password-env", "MD_PASSWORD", "--passphrase-env", "MD_PASSPHRASE"]
    laptop = tmp_path / "laptop"
    # The first one as a real process, as a script would run it.
    made = run_cli(
        "setup", network.bridge_url, "--register", "--email", email, *secrets,
        config_dir=laptop, env=env,
    )  # fmt: skip
    assert made.status == 0, made.err
    config_file = laptop / cfg.CONFIG_FILE
    assert config_file.stat().st_mode & 0o777 == 0o600
    assert laptop.stat().st_mode & 0o777 == 0o700
    assert env["MD_PASSWORD"] not in config_file.read_text()
    assert env["MD_PASSPHRASE"] not in config_file.read_text()

    # The root key is Argon2id of the passphrase with the project's salt from the bridge.
    loaded = cfg.load(laptop)
    assert loaded.account is not None

    async def projects(api: BridgeAccounts) -> tuple[Project, ...]:
        await api.login(email, env["MD_PASSWORD"])
        return await api.projects()

    mine = loaded.account.project_id
    (project,) = [p for p in run_accounts(network.bridge_url, projects) if p.id == mine]
    grant = AccessGrant.parse(loaded.grant or "")
    assert grant.encryption.root_key == derive_root_key(env["MD_PASSPHRASE"], project.salt)

    cli = InProcessCli(capfd, laptop)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    note = tmp_path / "note.txt"
    note.write_text("written on the laptop")
    assert cli("mb", "md://notes").status == 0
    assert cli("cp", note, "md://notes/").status == 0

    # Another machine: log in (no --register), same passphrase, same keys, same files.
    desktop = tmp_path / "desktop"
    joined = cli("setup", network.bridge_url, "--email", email, *secrets, config_dir=desktop)
    assert joined.status == 0, joined.err
    read = cli("cat", "md://notes/note.txt", config_dir=desktop)
    assert (read.status, read.out) == (0, "written on the laptop")

    # Another passphrase is refused (the project's verifier; tests/e2e/test_passphrase.py).
    stranger = tmp_path / "stranger"
    monkeypatch.setenv("OTHER_PASSPHRASE", "something else entirely")
    refused = cli(
        "setup", network.bridge_url, "--email", email, "--password-env", "MD_PASSWORD",
        "--passphrase-env", "OTHER_PASSPHRASE", config_dir=stranger,
    )  # fmt: skip
    assert refused.status == 4
    assert "wrong passphrase for this project" in refused.error_line

    again = cli("setup", network.bridge_url, "--email", email, *secrets)
    assert again.status == 2
    assert "--force" in again.error_line
    monkeypatch.setenv("MD_PASSWORD", "not the password")
    wrong = cli("setup", network.bridge_url, "--email", email, *secrets, config_dir=tmp_path / "x")
    assert wrong.status == 2
    assert "--register" in wrong.error_line
    monkeypatch.setenv("MD_PASSWORD", env["MD_PASSWORD"])
    monkeypatch.delenv("MD_PASSPHRASE")
    unset = cli("setup", "--force", network.bridge_url, "--email", email, *secrets)
    assert unset.status == 2
    assert "MD_PASSPHRASE is not set" in unset.error_line
    assert cfg.load(laptop) == loaded  # a failed setup leaves the config as it was


def test_copy_list_cat_move_and_remove(cli: InProcessCli, tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "sub" / "deeper").mkdir(parents=True)
    (source / "a.txt").write_bytes(b"alpha")
    (source / "sub" / "b.bin").write_bytes(os.urandom(2 * MiB + 12_345))  # three segments
    (source / "sub" / "deeper" / "empty").write_bytes(b"")

    assert cli("mb", "md://docs").status == 0
    copied = cli("cp", "-r", "--parallelism", "3", source, "md://docs/backup")
    assert copied.status == 0, copied.err
    assert len(copied.out.splitlines()) == 3
    listing = cli("ls", "md://docs/backup")
    names = [line.split()[-1] for line in listing.out.splitlines()]
    assert names == ["a.txt", "sub/"]
    assert "PRE" in listing.out.splitlines()[1]
    deep = cli("ls", "--recursive", "md://docs").out.splitlines()
    assert [line.split()[-1] for line in deep] == [
        "backup/a.txt",
        "backup/sub/b.bin",
        "backup/sub/deeper/empty",
    ]
    assert deep[1].split()[-2] == str(2 * MiB + 12_345)

    assert cli("cat", "md://docs/backup/a.txt").out == "alpha"
    assert cli("cat", "--offset", "1", "--length", "3", "md://docs/backup/a.txt").out == "lph"
    assert cli("ls", "md://docs/backup/a.txt").out.split()[-1] == "a.txt"  # one object

    restored = tmp_path / "restored"
    assert cli("cp", "-r", "md://docs/backup", restored).status == 0
    assert files_under(restored) == files_under(source)
    into = tmp_path / "into"
    into.mkdir()
    assert cli("cp", "md://docs/backup/a.txt", into).status == 0
    assert (into / "a.txt").read_bytes() == b"alpha"
    assert not [p for p in into.iterdir() if p.name.endswith(".part")]

    moved = cli("mv", "md://docs/backup/sub/b.bin", "md://docs/moved.bin")
    assert moved.status == 0, moved.err
    assert cli("cat", "md://docs/backup/sub/b.bin").status == 3
    local = tmp_path / "local.txt"
    local.write_text("to be moved")
    assert cli("mv", local, "md://docs/").status == 0
    assert not local.exists()
    assert cli("cat", "md://docs/local.txt").out == "to be moved"
    back = tmp_path / "back.bin"
    assert cli("mv", "md://docs/moved.bin", back).status == 0
    assert back.read_bytes() == (source / "sub" / "b.bin").read_bytes()

    removed = cli("rm", "-r", "md://docs/backup")
    assert removed.status == 0, removed.err
    assert len(removed.out.splitlines()) == 2  # a.txt and deeper/empty
    assert [line.split()[-1] for line in cli("ls", "-r", "md://docs").out.splitlines()] == [
        "local.txt"
    ]
    full = cli("rb", "md://docs")
    assert full.status == 1
    assert "--force" in full.error_line
    assert cli("rb", "--force", "md://docs").status == 0
    assert "md://docs" not in cli("ls").out


def test_share_inspect_restrict_and_revoke(
    cli: InProcessCli, tenant: Tenant, tmp_path: Path
) -> None:
    plan, diary = tmp_path / "plan.txt", tmp_path / "diary.txt"
    plan.write_text("the plan")
    diary.write_text("dear diary")
    assert cli("mb", "md://team").status == 0
    assert cli("cp", plan, "md://team/docs/plan.txt").status == 0
    assert cli("cp", diary, "md://team/private/diary.txt").status == 0

    shared = cli("share", "md://team/docs", "--expires", "1h")
    assert shared.status == 0, shared.err
    grant = shared.out.strip()
    assert "read, list" in shared.err
    friend = tmp_path / "friend"
    imported = cli("setup", "--grant", grant, config_dir=friend)
    assert imported.status == 0, imported.err
    assert cli("cat", "md://team/docs/plan.txt", config_dir=friend).out == "the plan"
    assert cli("cat", "md://team/private/diary.txt", config_dir=friend).status == 4
    assert cli("ls", "md://team", config_dir=friend).status == 4
    refused = cli("cp", plan, "md://team/docs/new.txt", config_dir=friend)
    assert refused.status == 4
    assert "access-denied" in refused.error_line

    inspected = cli("access", "inspect", grant)
    assert inspected.status == 0
    assert "only md://team/docs/" in inspected.out
    assert "no write/delete" in inspected.out
    assert "key for md://team/docs/" in inspected.out
    root_key = AccessGrant.parse(tenant.grant).encryption.root_key
    assert root_key is not None
    tail = AccessGrant.parse(grant).api_key.tail
    for secret in (root_key, tail):
        for shown in (secret.hex(), base64.urlsafe_b64encode(secret).decode().rstrip("=")):
            assert shown not in inspected.out
    assert "root key" in cli("access", "inspect").out  # the configured grant: full access

    readonly = cli("access", "restrict", "--readonly")
    assert readonly.status == 0
    viewer = tmp_path / "viewer"
    assert cli("setup", "--grant", readonly.out.strip(), config_dir=viewer).status == 0
    assert cli("cat", "md://team/private/diary.txt", config_dir=viewer).out == "dear diary"
    assert cli("rm", "md://team/private/diary.txt", config_dir=viewer).status == 4

    revoked = cli("access", "revoke", grant)
    assert revoked.status == 0, revoked.err
    # The bridge caches keys briefly (a second or so): wait for the revocation to take.
    deadline = time.monotonic() + 30
    while cli("cat", "md://team/docs/plan.txt", config_dir=friend).status == 0:
        assert time.monotonic() < deadline, "the revoked grant still works"
        time.sleep(0.2)
    assert cli("cat", "md://team/docs/plan.txt", config_dir=friend).status == 4
    assert cli("cat", "md://team/docs/plan.txt").out == "the plan"  # the owner's key still works


def test_api_keys(
    cli: InProcessCli, tenant: Tenant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MD_PASSWORD", tenant.password)
    listed = cli("access", "list", "--password-env", "MD_PASSWORD")
    assert listed.status == 0, listed.err
    assert [line.split()[-1] for line in listed.out.splitlines()] == ["owner"]
    assert (cli.config_dir / cfg.SESSION_FILE).stat().st_mode & 0o777 == 0o600

    made = cli("access", "create", "laptop")  # the cached session: no password needed
    assert made.status == 0, made.err
    laptop = tmp_path / "laptop"
    assert cli("setup", "--grant", made.out.strip(), config_dir=laptop).status == 0
    assert cli("mb", "md://from-laptop", config_dir=laptop).status == 0

    keys = cli("access", "list").out.splitlines()
    assert sorted(line.split()[-1] for line in keys) == ["laptop", "owner"]
    (laptop_id,) = [line.split()[0] for line in keys if line.endswith("laptop")]
    assert cli("access", "revoke", "--key-id", laptop_id).status == 0
    deadline = time.monotonic() + 30
    while cli("ls", config_dir=laptop).status == 0:
        assert time.monotonic() < deadline, "the deleted key still works"
        time.sleep(0.2)
    assert cli("ls", config_dir=laptop).status == 4
    assert "md://from-laptop" in cli("ls").out


def test_bad_input_is_one_line_and_a_status(cli: InProcessCli, tmp_path: Path) -> None:
    assert cli("mb", "md://here").status == 0
    local = tmp_path / "file.txt"
    local.write_text("x")
    cases: list[tuple[list[str | os.PathLike[str]], int, str]] = [
        (["ls", "md://no-such-bucket"], 3, "bucket-not-found"),
        (["cat", "md://here/missing"], 3, "object-not-found"),
        (["cp", "md://here/missing", tmp_path / "out"], 3, "object-not-found"),
        (["ls", "s3://here"], 2, "md://bucket/key"),
        (["ls", "md://"], 2, "no bucket"),
        (["cat", "md://here"], 2, "not an object"),
        (["cat", "md://here//x"], 2, "empty path component"),
        (["cp", local, tmp_path / "elsewhere"], 2, "md://"),
        (["cp", tmp_path / "nothing-here", "md://here/x"], 1, "No such file"),
        (["cp", tmp_path, "md://here/"], 2, "--recursive"),
        (["rm", "md://here/folder/"], 2, "--recursive"),
        (["mb", "md://Not_Valid"], 2, "bucket name"),
        (["share", "md://here", "--expires", "soon"], 2, "duration"),
        (["share", "md://here", "--readonly", "--write"], 2, "exclude"),
        (["access", "inspect", "mdg1nonsense"], 2, "not an access grant"),
        (["access", "revoke"], 2, "--key-id"),
        (["ls", "--bogus"], 2, "--bogus"),
    ]
    for args, status, fragment in cases:
        result = cli(*args)
        assert result.status == status, (args, result)
        assert fragment in result.error_line, (args, result.err)
    empty = tmp_path / "no-config"
    missing = cli("ls", config_dir=empty)
    assert missing.status == 2
    assert "metadisk setup" in missing.error_line
    assert cli("access", "list", config_dir=empty).status == 2


def test_a_real_process_prints_one_line(network: BackgroundNetwork, config_dir: Path) -> None:
    unknown = run_cli("ls", "md://no-such-bucket", config_dir=config_dir)
    assert unknown.status == 3
    assert "bucket-not-found" in unknown.error_line
    bad = run_cli("cp", "md:/here/x", "out", config_dir=config_dir)
    assert bad.status == 2
    assert "md://" in bad.error_line
    missing = run_cli("ls", config_dir=config_dir.parent / "nowhere")
    assert missing.status == 2
    assert "no access grant" in missing.error_line
    # The bridge unreachable: one line too, not a connection traceback.
    config = cfg.load(config_dir)
    grant = AccessGrant.parse(config.grant or "")
    elsewhere = AccessGrant("http://127.0.0.1:9", grant.api_key, grant.encryption)
    cfg.save(config_dir, cfg.CliConfig(elsewhere.serialize(), None, config.client))
    unreachable = run_cli("ls", config_dir=config_dir)
    assert unreachable.status == 1
    assert "cannot reach the bridge" in unreachable.error_line


def test_an_upload_killed_midway_completes_when_run_again(
    network: BackgroundNetwork, tenant: Tenant, tmp_path: Path
) -> None:
    config_dir = write_config(tmp_path / "config", tenant)
    assert run_cli("mb", "md://big", config_dir=config_dir).status == 0
    # Many small segments, killed after a quarter: the rest takes far longer than one poll
    # (a glob over every farmer's piece directories), so the kill lands mid-upload.
    segments = 32
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(segments * MiB))
    before = len(piece_files(network.root))
    n = network.network.redundancy.n
    environment = {**os.environ, cfg.ENV_CONFIG_DIR: str(config_dir)}
    errors = tmp_path / "upload.err"
    upload = subprocess.Popen(
        [*CLI, "cp", str(source), "md://big/big.bin"],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=errors.open("wb"),
    )
    try:
        deadline = time.monotonic() + 60
        # A quarter of the segments' pieces on disk: at least a few segments are committed.
        while len(piece_files(network.root)) - before < segments // 4 * n and upload.poll() is None:
            assert time.monotonic() < deadline, "the upload made no progress"
            time.sleep(0.02)
        upload.send_signal(signal.SIGKILL)
    finally:
        upload.wait()
    if upload.returncode == 0:
        pytest.skip("the upload finished before it could be killed (a very fast machine)")
    # Anything but our SIGKILL is the upload failing on its own: show why.
    assert upload.returncode == -signal.SIGKILL, errors.read_text()
    assert list((config_dir / cfg.UPLOADS_DIR).rglob("upload-*.json"))  # resume state is kept
    at_kill = len(piece_files(network.root))

    again = run_cli("cp", source, "md://big/big.bin", config_dir=config_dir)
    assert again.status == 0, again.err
    copy = tmp_path / "copy.bin"
    assert run_cli("cp", "md://big/big.bin", copy, config_dir=config_dir).status == 0
    assert copy.read_bytes() == source.read_bytes()
    assert not list((config_dir / cfg.UPLOADS_DIR).rglob("upload-*.json"))  # done: state gone
    # Resumed: the second run sent only the segments the first did not commit, fewer than a
    # whole upload's o pieces per segment.
    sent_again = len(piece_files(network.root)) - at_kill
    assert sent_again < segments * network.network.redundancy.o
