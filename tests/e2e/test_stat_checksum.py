"""`metadisk stat` and the whole-object checksum, against a real bridge and ten real farmers.

A wrong or missing checksum is made the way only a key holder could: the object is copied at
the bridge (`move_object`, no piece moves) with its metadata sealed again, through the client's
own functions, with another checksum or none (as objects stored before checksums have).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from pathlib import Path

import blake3
import pytest

from metadisk.client import AsyncProject, ClientConfig, IntegrityFailure, SegmentSizing
from metadisk.client.formats import SealedMetadata
from metadisk.client.records import open_metadata, sealed_metadata
from metadisk.client.relocate import _rewrapped
from metadisk.devnet.network import Tenant
from tests.e2e.harness import SMALL_PIECES, BackgroundNetwork, InProcessCli, MiB

SMALL = ClientConfig(sizing=SegmentSizing(piece_target=SMALL_PIECES), processes=False)
SIZE = 3 * MiB + 12_345  # several 1 MiB segments, the last one short
TINY = 1_000  # stored inline at the bridge


async def reseal(project: AsyncProject, path: str, new_path: str, checksum: bytes | None) -> None:
    """Copy bkt/`path` to bkt/`new_path` with its metadata sealed again with `checksum`."""
    bridge = project._bridge
    encrypted, key = project._locate("bkt", path)
    new_encrypted, new_key = project._locate("bkt", new_path)
    record = await bridge.get_object("bkt", encrypted)
    meta = dataclasses.replace(open_metadata(record, key), checksum=checksum)
    old = sealed_metadata(record)
    assert old is not None
    inline = None if old.inline_key is None else old.inline_key.rewrap(key, new_key, 0)
    sealed = SealedMetadata.seal(new_key, meta, inline)
    _, segments = _rewrapped(record, key, new_key)
    await bridge.move_object(
        "bkt", encrypted, "bkt", new_encrypted, sealed.encode(), segments,
        copy=True, stream_id=record.stream_id,
    )  # fmt: skip


async def read_all(project: AsyncProject, path: str, **kwargs: int) -> bytes:
    out = bytearray()
    chunks = project.stream("bkt", path, **kwargs)
    async with contextlib.aclosing(chunks):
        async for chunk in chunks:
            out += chunk
    return bytes(out)


@pytest.fixture
def data() -> dict[str, bytes]:
    return {"big": os.urandom(SIZE), "tiny": os.urandom(TINY)}


def test_uploads_store_the_checksum_and_stat_shows_it(
    network: BackgroundNetwork, tenant: Tenant, cli: InProcessCli, tmp_path: Path
) -> None:
    payload = os.urandom(SIZE)

    async def upload() -> None:
        async with await AsyncProject.open(tenant.grant, config=SMALL) as project:
            await project.create_bucket("bkt")
            info = await project.upload(
                "bkt", "dir/f.bin", payload, content_type="text/plain", metadata={"owner": "ann"}
            )
            assert info.checksum == blake3.blake3(payload).digest()
            assert (await project.stat("bkt", "dir/f.bin")).checksum == info.checksum
            listed = [item async for item in project.list_objects("bkt", "dir/")]
            assert [item.checksum for item in listed] == [info.checksum]
            assert await read_all(project, "dir/f.bin") == payload

    network.call(upload())
    shown = cli("stat", "--json", "md://bkt/dir/f.bin")
    assert shown.status == 0, shown.err
    facts = json.loads(shown.out)
    assert facts["checksum"] == blake3.blake3(payload).hexdigest()
    assert facts["size"] == SIZE
    assert facts["segments"] == 4
    assert facts["content_type"] == "text/plain"
    assert facts["metadata"] == {"owner": "ann"}
    assert set(facts["redundancy"]) == {"k", "m", "o", "n"}
    assert facts["created"] == facts["modified"] > 0

    # A file copied up by the CLI gets one too; the text form names the algorithm.
    local = tmp_path / "small.txt"
    local.write_bytes(b"hello\n")
    assert cli("cp", local, "md://bkt/small.txt").status == 0
    text = cli("stat", "md://bkt/small.txt")
    assert text.status == 0, text.err
    assert f"blake3:{blake3.blake3(b'hello' + bytes([10])).hexdigest()}" in text.out
    assert "inline at the bridge" in text.out
    missing = cli("stat", "md://bkt/nothing")
    assert missing.status != 0
    assert "md://bkt/nothing" in missing.error_line


def test_a_wrong_checksum_fails_full_downloads_with_integrity(
    network: BackgroundNetwork,
    tenant: Tenant,
    cli: InProcessCli,
    tmp_path: Path,
    data: dict[str, bytes],
) -> None:
    wrong = bytes(32)

    async def check() -> None:
        async with await AsyncProject.open(tenant.grant, config=SMALL) as project:
            await project.create_bucket("bkt")
            for name, payload in data.items():
                await project.upload("bkt", name, payload)
                await reseal(project, name, f"{name}.bad", wrong)
                assert (await project.stat("bkt", f"{name}.bad")).checksum == wrong
                with pytest.raises(IntegrityFailure):
                    await read_all(project, f"{name}.bad")
                with pytest.raises(IntegrityFailure):
                    await project.download("bkt", f"{name}.bad", tmp_path / name)
                # A range cannot be held to the whole object's checksum, and is not.
                assert await read_all(project, f"{name}.bad", offset=1) == payload[1:]
                assert await read_all(project, name) == payload

    network.call(check())
    failed = cli("cat", "md://bkt/big.bad")
    assert failed.status != 0
    assert "[integrity]" in failed.error_line


def test_an_object_without_a_checksum_still_reads_and_stats(
    network: BackgroundNetwork, tenant: Tenant, cli: InProcessCli, data: dict[str, bytes]
) -> None:
    async def check() -> None:
        async with await AsyncProject.open(tenant.grant, config=SMALL) as project:
            await project.create_bucket("bkt")
            for name, payload in data.items():
                await project.upload("bkt", name, payload)
                await reseal(project, name, f"{name}.old", None)
                assert (await project.stat("bkt", f"{name}.old")).checksum is None
                assert await read_all(project, f"{name}.old") == payload

    network.call(check())
    for name in data:
        shown = cli("stat", "--json", f"md://bkt/{name}.old")
        assert shown.status == 0, shown.err
        facts = json.loads(shown.out)
        assert facts["checksum"] is None
        assert facts["size"] == len(data[name])
        text = cli("stat", f"md://bkt/{name}.old")
        assert "none (stored before checksums)" in text.out


class _Stop(Exception):
    pass


def test_a_resumed_upload_checksums_the_segments_stored_before(
    network: BackgroundNetwork, tenant: Tenant, tmp_path: Path
) -> None:
    """The segments committed before an interruption are not sent again but still count."""
    payload = os.urandom(SIZE)
    source = tmp_path / "big.bin"
    source.write_bytes(payload)
    state = tmp_path / "state"

    def stop_after_two(done: int, total: int | None) -> None:
        if done >= 2 * MiB:
            raise _Stop

    async def check() -> None:
        async with await AsyncProject.open(tenant.grant, config=SMALL) as project:
            await project.create_bucket("bkt")
            with pytest.raises(_Stop):
                await project.upload(
                    "bkt", "r.bin", source, resume_dir=state, progress=stop_after_two
                )
            [saved] = state.iterdir()  # the pending upload is kept for the next run
            pending = await project._bridge.get_upload(json.loads(saved.read_text())["stream_id"])
            assert len(pending.segments) >= 2
            info = await project.upload("bkt", "r.bin", source, resume_dir=state)
            assert info.checksum == blake3.blake3(payload).digest()
            assert await read_all(project, "r.bin") == payload

    network.call(check())
