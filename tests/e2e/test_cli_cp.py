"""`cp`/`mv`/`rm`/`cat` as people expect them, end to end: streaming through real pipes, POSIX
naming of trees, several sources, and errors that say what is wrong (text and exit status)."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import tarfile
from pathlib import Path

import pytest

from metadisk.cli import config as cfg
from metadisk.core.grant import AccessGrant
from metadisk.devnet.network import Tenant
from tests.e2e.harness import (
    CLI,
    BackgroundNetwork,
    InProcessCli,
    MiB,
    files_under,
    piece_files,
    run_cli,
    wait_for,
    write_config,
)


def names(listing: str) -> list[str]:
    return [line.split()[-1] for line in listing.splitlines()]


def shell(command: str, config_dir: Path) -> subprocess.CompletedProcess[bytes]:
    """`command` run by a real shell, with `metadisk` standing for this checkout's CLI."""
    environment = {**os.environ, cfg.ENV_CONFIG_DIR: str(config_dir)}
    environment.pop("METADISK_DEBUG", None)
    metadisk = shlex.join(CLI)
    return subprocess.run(
        ["/bin/sh", "-c", f'set -e; metadisk() {{ {metadisk} "$@"; }}; {command}'],
        env=environment,
        capture_output=True,
        timeout=180,
        check=False,
    )


def test_tar_through_a_pipe_and_back(config_dir: Path, cli: InProcessCli, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "deep" / "er").mkdir(parents=True)
    (tree / "big.bin").write_bytes(os.urandom(3 * MiB + 777))  # several segments
    (tree / "deep" / "er" / "note.txt").write_text("inside the tar")
    assert cli("mb", "md://pipes").status == 0

    up = shell(
        f"tar cf - -C {shlex.quote(str(tree))} . | metadisk cp - md://pipes/backup.tar", config_dir
    )
    assert up.returncode == 0, up.stderr.decode()
    assert "copied - -> md://pipes/backup.tar" in up.stdout.decode()

    out = tmp_path / "out"
    out.mkdir()
    down = shell(
        f"metadisk cp md://pipes/backup.tar - | tar xf - -C {shlex.quote(str(out))}", config_dir
    )
    assert down.returncode == 0, down.stderr.decode()
    assert files_under(out) == files_under(tree)
    assert not (Path.cwd() / "-").exists()  # not a file named "-"

    # The object is the tar stream itself, byte for byte, and `-` wrote only it to stdout.
    raw = shell("metadisk cp md://pipes/backup.tar -", config_dir)
    assert raw.returncode == 0, raw.stderr.decode()
    whole = tmp_path / "whole.tar"
    whole.write_bytes(raw.stdout)
    with tarfile.open(whole) as archive:
        assert "./deep/er/note.txt" in archive.getnames()


def test_streams_refuse_what_they_cannot_do(cli: InProcessCli) -> None:
    assert cli("mb", "md://streams").status == 0
    folder = cli("cp", "-", "md://streams/dir/")
    assert folder.status == 2
    assert "name the object" in folder.error_line
    moved = cli("mv", "-", "md://streams/x")
    assert moved.status == 2
    assert "mv cannot stream" in moved.error_line


def test_cp_r_names_the_tree_as_posix_cp_does(cli: InProcessCli, tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_text("alpha")
    (source / "sub" / "b.txt").write_text("beta")
    assert cli("mb", "md://trees").status == 0

    # Into a folder: under its own name.
    into = cli("cp", "-r", source, "md://trees/")
    assert into.status == 0, into.err
    assert names(cli("ls", "-r", "md://trees").out) == ["src/a.txt", "src/sub/b.txt"]
    # A trailing slash on the source changes nothing, as with cp.
    assert cli("cp", "-r", f"{source}/", "md://trees/again/").status == 0
    assert names(cli("ls", "-r", "md://trees/again/").out) == ["src/a.txt", "src/sub/b.txt"]
    # To a new name: the tree becomes that name.
    assert cli("cp", "-r", source, "md://trees/renamed").status == 0
    assert names(cli("ls", "-r", "md://trees/renamed/").out) == ["a.txt", "sub/b.txt"]
    # An existing folder, without its slash, still receives the tree under its own name.
    assert cli("cp", "-r", source, "md://trees/renamed").status == 0
    assert "src/" in names(cli("ls", "md://trees/renamed/").out)

    # Down: into an existing directory under the folder's name, or to a new name.
    existing = tmp_path / "existing"
    existing.mkdir()
    assert cli("cp", "-r", "md://trees/src", existing).status == 0
    assert files_under(existing) == {"src/a.txt": b"alpha", "src/sub/b.txt": b"beta"}
    fresh = tmp_path / "fresh"
    assert cli("cp", "-r", "md://trees/src/", fresh).status == 0
    assert files_under(fresh) == {"a.txt": b"alpha", "sub/b.txt": b"beta"}
    # Within metadisk, the same rule.
    assert cli("cp", "-r", "md://trees/src", "md://trees/copies/").status == 0
    assert names(cli("ls", "-r", "md://trees/copies/").out) == ["src/a.txt", "src/sub/b.txt"]


def test_several_sources_in_one_command(cli: InProcessCli, tmp_path: Path) -> None:
    files = []
    for name in ("a.txt", "b.txt", "c.txt"):
        path = tmp_path / name
        path.write_text(f"this is {name}")
        files.append(path)
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "d.txt").write_text("in a folder")
    assert cli("mb", "md://many").status == 0

    copied = cli("cp", "-r", *files, folder, "md://many/dir")  # several: DST is a folder
    assert copied.status == 0, copied.err
    assert len(copied.out.splitlines()) == 4
    assert names(cli("ls", "-r", "md://many/dir/").out) == [
        "a.txt",
        "b.txt",
        "c.txt",
        "folder/d.txt",
    ]
    back = tmp_path / "back"
    fetched = cli("cp", "md://many/dir/a.txt", "md://many/dir/c.txt", back)
    assert fetched.status == 0, fetched.err
    assert files_under(back) == {"a.txt": b"this is a.txt", "c.txt": b"this is c.txt"}
    moved = cli("mv", "md://many/dir/a.txt", "md://many/dir/b.txt", "md://many/moved/")
    assert moved.status == 0, moved.err
    assert names(cli("ls", "md://many/moved/").out) == ["a.txt", "b.txt"]
    assert cli("cat", "md://many/dir/a.txt").status == 3


@pytest.mark.parametrize(
    ("args", "status", "fragment"),
    [
        (["cp", "{local}", "md://no-such-bucket/x"], 3, "no bucket md://no-such-bucket "),
        (["cp", "{local}", "md://no-such-bucket/x"], 3, "metadisk mb md://no-such-bucket"),
        (["cp", "-", "md://no-such-bucket/x"], 3, "no bucket md://no-such-bucket "),
        (["cp", "md://truth/folder/inside.txt", "md://nowhere/"], 3, "no bucket md://nowhere "),
        (["rm", "md://truth/folder"], 2, "rm --recursive md://truth/folder/"),
        (["cat", "md://truth/folder"], 2, "md://truth/folder is a folder, not an object"),
        (["cp", "md://truth/folder", "-"], 2, "metadisk ls md://truth/folder/"),
        (["mb", "md://" + "b" * 70], 2, "not a valid bucket name: a bucket name is 3 to 63"),
        (["mb", "md://Not_Valid"], 2, "lowercase letters, digits, '-' and '.'"),
    ],
)
def test_errors_tell_the_truth(
    cli: InProcessCli, tmp_path: Path, args: list[str], status: int, fragment: str
) -> None:
    local = tmp_path / "file.txt"
    local.write_text("x")
    assert cli("mb", "md://truth").status == 0
    assert cli("cp", local, "md://truth/folder/inside.txt").status == 0
    result = cli(*(str(local) if arg == "{local}" else arg for arg in args))
    assert result.status == status, result
    assert fragment in result.error_line, result.err


def test_a_missing_object_is_still_just_that(cli: InProcessCli, tmp_path: Path) -> None:
    assert cli("mb", "md://plain").status == 0
    for args in (["rm", "md://plain/never"], ["cat", "md://plain/never"]):
        missing = cli(*args)
        assert missing.status == 3, missing
        assert "object-not-found" in missing.error_line


def test_an_unreachable_bridge_is_said_in_plain_words(config_dir: Path) -> None:
    config = cfg.load(config_dir)
    grant = AccessGrant.parse(config.grant or "")
    elsewhere = AccessGrant("https://127.0.0.1:9", grant.api_key, grant.encryption)
    cfg.save(config_dir, cfg.CliConfig(elsewhere.serialize(), None, config.client))
    unreachable = run_cli("ls", config_dir=config_dir)
    assert unreachable.status == 1
    line = unreachable.error_line
    assert "cannot reach the bridge at https://127.0.0.1:9" in line
    assert "is the bridge running" in line
    assert "Connect call failed" not in line and "ssl:" not in line


def test_ctrl_c_during_an_upload_says_how_to_resume(
    network: BackgroundNetwork, tenant: Tenant, tmp_path: Path
) -> None:
    config_dir = write_config(tmp_path / "config", tenant)
    assert run_cli("mb", "md://stop", config_dir=config_dir).status == 0
    segments = 32
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(segments * MiB))
    before = len(piece_files(network.root))
    n = network.network.redundancy.n
    environment = {**os.environ, cfg.ENV_CONFIG_DIR: str(config_dir)}
    environment.pop("METADISK_DEBUG", None)
    errors = tmp_path / "upload.err"
    upload = subprocess.Popen(
        [*CLI, "cp", str(source), "md://stop/big.bin"],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=errors.open("wb"),
    )
    try:
        wait_for(
            lambda: len(piece_files(network.root)) - before >= 2 * n or upload.poll() is not None,
            "the upload stored a segment or two",
            every=0.02,
        )
        upload.send_signal(signal.SIGINT)  # what Ctrl-C sends
    finally:
        upload.wait(timeout=60)
    if upload.returncode == 0:
        pytest.skip("the upload finished before it could be interrupted (a very fast machine)")
    lines = errors.read_text().splitlines()
    assert upload.returncode == 130, lines
    assert lines, "nothing on stderr"
    assert lines[-1] == (
        "error: interrupted; run the same command again to resume the upload where it stopped"
    )
    again = run_cli("cp", source, "md://stop/big.bin", config_dir=config_dir)
    assert again.status == 0, again.err
