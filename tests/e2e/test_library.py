"""The client library end to end: `Project` against a real bridge and ten real farmers.

Round trips of the sizes that take different paths (empty, inline in the bridge's database,
one segment, many, odd), ranges on block and segment edges, what the bridge and farmers get to
see on disk, and shared grants refused outside their prefix, operations and time.
"""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from metadisk.client import (
    AccessDenied,
    NotFound,
    PermissionDenied,
    Permissions,
    Project,
    Unauthenticated,
)
from metadisk.core.content import BLOCK_SIZE
from metadisk.core.grant import AccessGrant
from metadisk.core.macaroon import APIKey
from metadisk.devnet.network import Tenant
from tests.e2e.harness import SEGMENT, SMALL, BackgroundNetwork, all_files, piece_files

INLINE_MAX = 4096  # the largest plaintext stored inline (4,112 bytes of ciphertext)


@pytest.fixture
def project(tenant: Tenant) -> Iterator[Project]:
    with Project.open(tenant.grant, config=SMALL) as opened:
        opened.create_bucket("files")
        yield opened


def read(project: Project, key: str, **span: int) -> bytes:
    return b"".join(project.stream("files", key, **span))


@pytest.mark.parametrize(
    "size",
    [
        0,
        1,
        INLINE_MAX,  # inline: the bridge's database holds the ciphertext
        INLINE_MAX + 1,  # the smallest object on farmers
        BLOCK_SIZE,
        SEGMENT - 1,
        SEGMENT,  # exactly one segment
        SEGMENT + 1,
        2 * SEGMENT + BLOCK_SIZE + 12_345,  # three segments, the last one odd
    ],
)
def test_round_trip(project: Project, tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    source = tmp_path / "source"
    source.write_bytes(data)
    stored = project.upload("files", f"dir/{size}.bin", str(source), content_type="x/test")
    assert stored.size == size
    info = project.stat("files", f"dir/{size}.bin")
    assert (info.size, info.content_type) == (size, "x/test")
    copy = tmp_path / "copy"
    project.download("files", f"dir/{size}.bin", str(copy))
    assert copy.read_bytes() == data
    assert read(project, f"dir/{size}.bin") == data


def test_ranges_on_block_and_segment_edges(project: Project) -> None:
    size = 3 * SEGMENT + 2 * BLOCK_SIZE + 777
    data = os.urandom(size)
    project.upload("files", "ranges", data)
    edges = [0, 1, BLOCK_SIZE - 1, BLOCK_SIZE, BLOCK_SIZE + 1, SEGMENT - 1, SEGMENT]
    edges += [SEGMENT + 1, 2 * SEGMENT - BLOCK_SIZE, 3 * SEGMENT, size - 1]
    for offset in edges:
        for length in (1, BLOCK_SIZE + 1, SEGMENT + 1):
            expected = data[offset : offset + length]
            assert read(project, "ranges", offset=offset, length=length) == expected, (
                offset,
                length,
            )
    assert read(project, "ranges", offset=SEGMENT, length=0) == b""
    assert read(project, "ranges", offset=SEGMENT - 5) == data[SEGMENT - 5 :]
    assert read(project, "ranges", offset=size) == b""


def test_nothing_readable_reaches_the_bridge_or_farmers(
    network: BackgroundNetwork, tenant: Tenant, project: Project
) -> None:
    marker = b"PLAINTEXT-" + os.urandom(8).hex().encode()
    bucket = f"bucket-{os.urandom(6).hex()}"  # bucket names are plaintext by design
    folder, name = f"folder-{os.urandom(6).hex()}", f"name-{os.urandom(6).hex()}.txt"
    meta_value = f"meta-{os.urandom(6).hex()}"
    pieces_before = piece_files(network.root)
    project.create_bucket(bucket)
    # An inline object and one spread over farmers, both full of the marker.
    project.upload(bucket, f"{folder}/{name}", marker * 10, metadata={"note": meta_value})
    big = marker * (2 * SEGMENT // len(marker) + 3)
    project.upload(bucket, f"{folder}/big-{name}", big, metadata={"note": meta_value})
    assert b"".join(project.stream(bucket, f"{folder}/big-{name}")) == big
    stored = piece_files(network.root) - pieces_before
    assert len(stored) >= 3 * network.network.redundancy.o  # the grep below reads real pieces

    root_key = AccessGrant.parse(tenant.grant).encryption.root_key
    assert root_key is not None
    secrets = {
        "plaintext": marker,
        "folder name": folder.encode(),
        "file name": name.encode(),
        "metadata": meta_value.encode(),
        "root key": root_key,
    }
    files = list(all_files(network.root / "bridge")) + list(all_files(network.root / "farmers"))
    assert any(p.name.endswith("-wal") or p.suffix == ".sqlite3" for p in files)
    seen_bucket = False
    for path in files:
        content = path.read_bytes()
        seen_bucket = seen_bucket or bucket.encode() in content
        for what, secret in secrets.items():
            assert secret not in content, f"{what} found in {path}"
    # The one plaintext the bridge keeps is found: the search does see the database's bytes.
    assert seen_bucket


def test_shared_grant_is_refused_outside_its_prefix_ops_and_time(
    tenant: Tenant, project: Project
) -> None:
    project.upload("files", "docs/readme.txt", b"shared")
    project.upload("files", "private/diary.txt", b"not shared")
    reader = project.share([("files", "docs")], Permissions(read=True, list=True))
    with Project.open(reader, config=SMALL) as shared:
        assert b"".join(shared.stream("files", "docs/readme.txt")) == b"shared"
        assert [i.key for i in shared.list_objects("files", "docs/")] == ["docs/readme.txt"]
        with pytest.raises(AccessDenied):  # no key for it: refused before asking the bridge
            shared.stat("files", "private/diary.txt")
        with pytest.raises(AccessDenied):
            list(shared.list_objects("files"))
        with pytest.raises(PermissionDenied):  # read-only: the bridge refuses the write
            shared.upload("files", "docs/new.txt", b"x")
        with pytest.raises(PermissionDenied):
            shared.delete("files", "docs/readme.txt")

    # The bridge enforces the prefix itself: the restricted API key with every encryption key.
    owner = AccessGrant.parse(tenant.grant)
    narrowed = AccessGrant(owner.bridge_url, AccessGrant.parse(reader).api_key, owner.encryption)
    with Project.open(narrowed.serialize(), config=SMALL) as keyed:
        with pytest.raises(PermissionDenied):
            keyed.stat("files", "private/diary.txt")
        with pytest.raises(PermissionDenied):
            list(keyed.list_objects("files", "private/"))
        assert b"".join(keyed.stream("files", "docs/readme.txt")) == b"shared"

    now = int(time.time())
    expired = project.share([("files", "docs")], not_after=now - 60)
    later = project.share([("files", "docs")], not_before=now + 3600)
    for grant in (expired, later):
        with Project.open(grant, config=SMALL) as timed, pytest.raises(PermissionDenied):
            timed.stat("files", "docs/readme.txt")

    writer = project.share(
        [("files", "docs")],
        Permissions(read=True, list=True, write=True, delete=True),
        not_after=datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1),
    )
    with Project.open(writer, config=SMALL) as shared:
        shared.upload("files", "docs/new.txt", b"from a friend")
        with pytest.raises(AccessDenied):
            shared.upload("files", "private/new.txt", b"x")
    assert b"".join(project.stream("files", "docs/new.txt")) == b"from a friend"


def test_another_tenant_sees_nothing(network: BackgroundNetwork, project: Project) -> None:
    project.upload("files", "mine.txt", b"mine")
    stranger = network.tenant()
    with Project.open(stranger.grant, config=SMALL) as other:
        with pytest.raises(NotFound):
            other.stat("files", "mine.txt")
        assert [b.name for b in other.list_buckets()] == []
    # A real key id with a made-up tail: not genuine, so the bridge refuses it outright.
    owner = AccessGrant.parse(stranger.grant)
    fake_key = APIKey(owner.api_key.key_id, (), os.urandom(32))
    forged = AccessGrant(owner.bridge_url, fake_key, owner.encryption)
    with Project.open(forged.serialize(), config=SMALL) as fake, pytest.raises(Unauthenticated):
        fake.list_buckets()
