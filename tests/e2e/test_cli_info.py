"""Seeing what is stored and where space went: `ls --long/-h/--json`, `usage`/`du`, `uploads`.

Against a real bridge and ten real farmers, through the `metadisk` command.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from metadisk.cli import config as cfg
from metadisk.devnet.network import Tenant
from tests.e2e.harness import CLI, BackgroundNetwork, InProcessCli, MiB, run_cli


def as_json(result: Any) -> Any:
    assert result.status == 0, result.err
    return json.loads(result.out)


def test_ls_long_human_readable_and_json(cli: InProcessCli, tmp_path: Path) -> None:
    assert cli("mb", "md://shelf").status == 0
    note = tmp_path / "note.txt"
    note.write_bytes(b"n" * 1536)
    blob = tmp_path / "blob.bin"
    blob.write_bytes(os.urandom(3 * MiB))
    assert cli("cp", note, "md://shelf/note.txt").status == 0
    assert cli("cp", blob, "md://shelf/deep/blob.bin").status == 0

    long = cli("ls", "--long", "md://shelf")
    assert long.status == 0, long.err
    lines = long.out.splitlines()
    assert len(lines) == 2
    assert lines[0].split()[-1] == "deep/" and "PRE" in lines[0]
    assert "1536" in lines[1] and "text/plain" in lines[1] and lines[1].endswith("note.txt")

    human = cli("ls", "-h", "-r", "md://shelf")
    assert human.status == 0, human.err
    by_name = {line.split()[-1]: line for line in human.out.splitlines()}
    assert "1.5 KiB" in by_name["note.txt"]
    assert "3.0 MiB" in by_name["deep/blob.bin"]
    assert "MB" not in human.out and "1536" not in human.out

    listing = as_json(cli("ls", "--json", "-r", "md://shelf"))
    assert listing["bucket"] == "shelf" and listing["prefix"] == ""
    found = {o["key"]: o for o in listing["objects"]}
    assert set(found) == {"note.txt", "deep/blob.bin"}
    assert found["note.txt"]["size"] == 1536
    assert found["note.txt"]["content_type"] == "text/plain"
    assert found["deep/blob.bin"]["size"] == 3 * MiB
    assert isinstance(found["deep/blob.bin"]["modified"], int)
    buckets = as_json(cli("ls", "--json"))["buckets"]
    assert [b["name"] for b in buckets] == ["shelf"]

    # An empty or unknown folder lists nothing, with or without its slash; a bucket that does
    # not exist is still an error.
    for empty in ("md://shelf/nothing", "md://shelf/nothing/", "md://shelf/deep/none"):
        result = cli("ls", empty)
        assert (result.status, result.out, result.err) == (0, "", ""), empty
    assert as_json(cli("ls", "--json", "md://shelf/nothing"))["objects"] == []
    missing = cli("ls", "md://no-such-bucket/x")
    assert missing.status == 3
    assert "no-such-bucket" in missing.error_line


def test_usage_moves_with_an_upload_and_du_sums_a_prefix(cli: InProcessCli, tmp_path: Path) -> None:
    assert cli("mb", "md://meter").status == 0
    before = as_json(cli("usage", "--json"))
    assert before["usage"]["buckets"] == 1
    assert (before["objects"], before["usage"]["storage_bytes"], before["usage"]["segments"]) == (
        0,
        0,
        0,
    )
    assert before["limits"]["storage_bytes"] > 0
    assert before["pending"] == {"uploads": 0, "storage_bytes": 0, "segments": 0}

    sizes = {"logs/a.log": 2 * MiB, "logs/old/b.log": 700_000, "top.bin": 5_000}
    for key, size in sizes.items():
        source = tmp_path / key.replace("/", "_")
        source.write_bytes(os.urandom(size))
        assert cli("cp", source, f"md://meter/{key}").status == 0, key

    after = as_json(cli("usage", "--json"))
    assert after["objects"] == 3
    # Encrypted bytes stored: at least the plaintext (inline objects count too).
    assert after["usage"]["storage_bytes"] >= sum(sizes.values())
    assert after["usage"]["segments"] > before["usage"]["segments"]
    assert after["pending"]["uploads"] == 0

    table = cli("usage")
    assert table.status == 0, table.err
    rows = {line.split()[0]: line for line in table.out.splitlines()}
    assert set(rows) >= {"storage", "egress", "buckets", "objects", "segments", "pending"}
    assert rows["objects"].split()[1] == "3"
    assert "MiB of" in rows["storage"]

    # du of a prefix: the plaintext sizes below it, summed from the listing.
    du = as_json(cli("du", "--json", "md://meter/logs/"))
    assert du == {"path": "md://meter/logs/", "bytes": 2 * MiB + 700_000, "objects": 2}
    same = as_json(cli("usage", "--json", "md://meter/logs"))  # without the slash too
    assert same == du
    whole = cli("du", "md://meter")
    assert whole.status == 0, whole.err
    assert "3 objects" in whole.out and "md://meter/" in whole.out


def _pending_reserved(network: BackgroundNetwork, project_id: str) -> int:
    with contextlib.closing(network.bridge_db()) as db:
        row = db.execute(
            "SELECT COALESCE(SUM(reserved_storage), 0) FROM objects "
            "WHERE project_id = ? AND status = 1",
            (project_id,),
        ).fetchone()
    return int(row[0])


def test_uploads_lists_an_interrupted_upload_and_abort_releases_it(
    network: BackgroundNetwork, tenant: Tenant, config_dir: Path, cli: InProcessCli, tmp_path: Path
) -> None:
    assert run_cli("mb", "md://stuck", config_dir=config_dir).status == 0
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(32 * MiB))
    environment = {**os.environ, cfg.ENV_CONFIG_DIR: str(config_dir)}
    errors = tmp_path / "upload.err"
    upload = subprocess.Popen(
        [*CLI, "cp", str(source), "md://stuck/in/big.bin"],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=errors.open("wb"),
    )
    try:
        deadline = time.monotonic() + 60
        # Killed once the bridge has reserved room for it: a pending upload that holds some.
        while _pending_reserved(network, tenant.project_id) == 0 and upload.poll() is None:
            assert time.monotonic() < deadline, "the upload reserved nothing"
            time.sleep(0.02)
        upload.send_signal(signal.SIGKILL)
    finally:
        upload.wait()
    assert upload.returncode == -signal.SIGKILL, errors.read_text()

    pending = as_json(cli("uploads", "--json", "md://stuck"))["uploads"]
    assert [(u["bucket"], u["key"]) for u in pending] == [("stuck", "in/big.bin")]
    stream_id = pending[0]["stream_id"]
    assert pending[0]["deadline"] > pending[0]["created_at"]
    listed = cli("uploads")  # every bucket
    assert listed.status == 0, listed.err
    assert stream_id in listed.out and "md://stuck/in/big.bin" in listed.out
    assert as_json(cli("uploads", "--json", "md://stuck/in/"))["uploads"] == pending
    assert as_json(cli("uploads", "--json", "md://stuck/elsewhere/"))["uploads"] == []

    held = as_json(cli("usage", "--json"))["pending"]
    assert held["uploads"] == 1 and held["storage_bytes"] > 0 and held["segments"] > 0

    aborted = cli("uploads", "abort", "md://stuck/in/big.bin")
    assert aborted.status == 0, aborted.err
    assert stream_id in aborted.out
    assert as_json(cli("uploads", "--json", "md://stuck"))["uploads"] == []
    assert as_json(cli("usage", "--json"))["pending"] == {
        "uploads": 0,
        "storage_bytes": 0,
        "segments": 0,
    }
    again = cli("uploads", "abort", "md://stuck/in/big.bin")
    assert again.status == 3
    assert "no pending upload" in again.error_line

    # The copy's local resume state names the aborted upload: running it again starts over.
    redo = cli("cp", source, "md://stuck/in/big.bin")
    assert redo.status == 0, redo.err
    assert as_json(cli("ls", "--json", "md://stuck/in/"))["objects"][0]["size"] == 32 * MiB
    assert as_json(cli("uploads", "--json"))["uploads"] == []
