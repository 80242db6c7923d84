"""Integration tests of `AsyncProject` and `Project` on a real network: a bridge process and ten
farmer processes on 127.0.0.1, shared by this module's tests (each test has its own tenant)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import io
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from metadisk.client import (
    AccessDenied,
    AsyncProject,
    ClientConfig,
    Conflict,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Permissions,
    Project,
    SegmentSizing,
)
from metadisk.client.bridge_api import BridgeAPI
from metadisk.core.content import BLOCK_SIZE
from metadisk.wire.api.objects import SegmentOrders
from tests.client.planet import Planet, planet

on_module_loop = pytest.mark.asyncio(loop_scope="module")

MiB = 1 << 20
# 1 MiB segments (the minimum) keep multi-segment objects small and the tests quick.
SMALL = ClientConfig(sizing=SegmentSizing(piece_target=256 * 1024), processes=False)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Planet]:
    async with planet(tmp_path_factory.mktemp("planet")) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module")
async def project(world: Planet) -> AsyncIterator[AsyncProject]:
    async with await AsyncProject.open(await world.grant(), config=SMALL) as opened:
        await opened.create_bucket("bkt")
        yield opened


async def read_all(project: AsyncProject, key: str, **kwargs: int) -> bytes:
    out = bytearray()
    chunks = project.stream("bkt", key, **kwargs)
    async with contextlib.aclosing(chunks):
        async for chunk in chunks:
            out += chunk
    return bytes(out)


@on_module_loop
@pytest.mark.parametrize("size", [0, 100, 4096, 4097, 3 * MiB + 12345])
async def test_round_trip(project: AsyncProject, size: int) -> None:
    data = os.urandom(size)
    info = await project.upload("bkt", f"dir/file-{size}", data, content_type="text/plain")
    assert info.size == size
    assert info.segment_count == (0 if size <= 4096 else -(-size // MiB))
    assert await read_all(project, f"dir/file-{size}") == data


@on_module_loop
async def test_stat_decrypts_content_type_and_metadata(project: AsyncProject) -> None:
    await project.upload(
        "bkt", "a/b.txt", b"hello", content_type="text/plain", metadata={"owner": "ada", "é": "ü"}
    )
    info = await project.stat("bkt", "a/b.txt")
    assert (info.size, info.content_type) == (5, "text/plain")
    assert info.metadata == {"owner": "ada", "é": "ü"}


@on_module_loop
async def test_range_reads(project: AsyncProject) -> None:
    data = os.urandom(2 * MiB + 777)
    await project.upload("bkt", "ranged", data)
    cases = [
        (0, 1),
        (BLOCK_SIZE - 3, 10),  # across a block boundary
        (MiB - 100, 300),  # across a segment boundary
        (MiB + 5, MiB + 700),  # into the last, short segment
        (len(data) - 1, 1),
        (1000, None),
    ]
    for offset, length in cases:
        end = len(data) if length is None else offset + length
        kwargs = {"offset": offset} if length is None else {"offset": offset, "length": length}
        assert await read_all(project, "ranged", **kwargs) == data[offset:end], (offset, length)
    assert await read_all(project, "ranged", offset=len(data)) == b""
    with pytest.raises(InvalidArgument):
        await read_all(project, "ranged", offset=len(data) + 1)


@on_module_loop
async def test_files_and_streams(project: AsyncProject, tmp_path: Path) -> None:
    data = os.urandom(MiB + 3)
    source = tmp_path / "in.bin"
    source.write_bytes(data)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(data), 50_000):
            yield data[i : i + 50_000]

    await project.upload("bkt", "from-path", source)
    await project.upload("bkt", "from-file", io.BytesIO(data))
    await project.upload("bkt", "from-iterator", chunks())
    for key in ("from-path", "from-file", "from-iterator"):
        target = tmp_path / f"{key}.out"
        info = await project.download("bkt", key, target)
        assert info.size == len(data)
        assert target.read_bytes() == data
    out = io.BytesIO()
    await project.download("bkt", "from-path", out, offset=10, length=20)
    assert out.getvalue() == data[10:30]


@on_module_loop
async def test_progress_reports_bytes(project: AsyncProject) -> None:
    data = os.urandom(2 * MiB + 1)
    up: list[tuple[int, int | None]] = []
    await project.upload("bkt", "progress", data, progress=lambda d, t: up.append((d, t)))
    assert up[-1] == (len(data), len(data))
    assert [d for d, _ in up] == sorted(d for d, _ in up)
    down: list[tuple[int, int | None]] = []
    await read_all_with_progress(project, down)
    assert down[-1] == (len(data), len(data))


async def read_all_with_progress(project: AsyncProject, seen: list[tuple[int, int | None]]) -> None:
    chunks = project.stream("bkt", "progress", progress=lambda d, t: seen.append((d, t)))
    async with contextlib.aclosing(chunks):
        async for _ in chunks:
            pass


@on_module_loop
async def test_listing_decrypts_names(project: AsyncProject) -> None:
    for key in ("photos/2024/a.jpg", "photos/2024/b.jpg", "photos/2025/c.jpg", "photos/d.jpg"):
        await project.upload("bkt", key, key.encode(), content_type="image/jpeg")
    level = [i async for i in project.list_objects("bkt", "photos/")]
    assert [(i.key, i.is_prefix) for i in level] != []
    assert sorted((i.key, i.is_prefix) for i in level) == [
        ("photos/2024/", True),
        ("photos/2025/", True),
        ("photos/d.jpg", False),
    ]
    everything = [i async for i in project.list_objects("bkt", "photos/", recursive=True)]
    assert sorted(i.key for i in everything) == [
        "photos/2024/a.jpg",
        "photos/2024/b.jpg",
        "photos/2025/c.jpg",
        "photos/d.jpg",
    ]
    found = {i.key: i for i in everything}
    assert found["photos/d.jpg"].content_type == "image/jpeg"
    assert found["photos/d.jpg"].size == len(b"photos/d.jpg")
    page = await project.list_page("bkt", "photos/", recursive=True, limit=3)
    assert len(page.items) == 3 and page.cursor is not None
    rest = await project.list_page("bkt", "photos/", recursive=True, cursor=page.cursor)
    assert sorted(i.key for i in page.items + rest.items) == sorted(found)
    with pytest.raises(InvalidArgument):
        await project.list_page("bkt", "photos")


@on_module_loop
async def test_delete(project: AsyncProject) -> None:
    await project.upload("bkt", "gone", os.urandom(MiB + 1))
    await project.delete("bkt", "gone")
    with pytest.raises(NotFound) as caught:
        await project.stat("bkt", "gone")
    assert caught.value.code == "object-not-found"


@on_module_loop
async def test_buckets(project: AsyncProject) -> None:
    await project.create_bucket("second")
    assert {"bkt", "second"} <= {b.name for b in await project.list_buckets()}
    bucket = await project.get_bucket("second")
    assert (bucket.redundancy.k, bucket.redundancy.n) == (4, 10)
    with pytest.raises(Conflict) as exists:
        await project.create_bucket("second")
    assert exists.value.code == "bucket-exists"
    await project.upload("second", "x", b"x")
    with pytest.raises(Conflict):
        await project.delete_bucket("second")
    await project.delete_bucket("second", force=True)
    with pytest.raises(NotFound) as missing:
        await project.upload("second", "x", os.urandom(MiB))
    assert missing.value.code == "bucket-not-found"


@on_module_loop
async def test_share_gives_exactly_the_prefix(world: Planet, project: AsyncProject) -> None:
    await project.upload("bkt", "shared/one", b"one")
    await project.upload("bkt", "private/two", b"two")
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    grant = project.share([("bkt", "shared")], Permissions(read=True, list=True), not_after=later)
    async with await AsyncProject.open(grant, config=SMALL) as guest:
        assert await read_all(guest, "shared/one") == b"one"
        assert [i.key async for i in guest.list_objects("bkt", "shared/")] == ["shared/one"]
        with pytest.raises(AccessDenied):
            await guest.stat("bkt", "private/two")  # no key for it at all
        with pytest.raises(PermissionDenied):
            await guest.upload("bkt", "shared/new", b"x")  # the bridge refuses the write
        with pytest.raises(AccessDenied):
            guest.share([("bkt", "private")])  # it holds no key above its prefix


@on_module_loop
async def test_a_grant_from_elsewhere_cannot_read(world: Planet, project: AsyncProject) -> None:
    await project.upload("bkt", "mine", os.urandom(10))
    with pytest.raises(InvalidArgument):
        await AsyncProject.open("mdg1notagrant")


@on_module_loop
async def test_worker_processes(world: Planet) -> None:
    config = ClientConfig(sizing=SMALL.sizing, processes=True, workers=2)
    async with await AsyncProject.open(await world.grant(), config=config) as project:
        await project.create_bucket("procs")
        data = os.urandom(3 * MiB + 5)
        await project.upload("procs", "k", data)
        out = bytearray()
        async for chunk in project.stream("procs", "k"):
            out += chunk
        assert out == data


@on_module_loop
async def test_a_dead_farmer_does_not_stop_transfers(world: Planet, project: AsyncProject) -> None:
    data = os.urandom(2 * MiB)
    await project.upload("bkt", "before", data)
    victim = world.farmers[0]
    await victim.kill()
    try:
        assert await read_all(project, "before") == data  # rebuilt from the others
        await project.upload("bkt", "during", data)  # its pieces go elsewhere
        assert await read_all(project, "during") == data
    finally:
        await victim.start()


@on_module_loop
async def test_move_and_copy_share_the_stored_pieces(world: Planet, project: AsyncProject) -> None:
    await project.create_bucket("other")
    data = os.urandom(2 * MiB + 99)
    await project.upload("bkt", "orig", data, content_type="a/b", metadata={"x": "y"})
    copied = await project.copy("bkt", "orig", "bkt", "dir/copy")
    assert (copied.key, copied.size, copied.content_type) == ("dir/copy", len(data), "a/b")
    moved = await project.move("bkt", "dir/copy", "other", "moved")
    assert (moved.bucket, moved.key, moved.metadata) == ("other", "moved", {"x": "y"})
    with pytest.raises(NotFound):
        await project.stat("bkt", "dir/copy")
    assert await read_all(project, "orig") == data
    assert (await project.stat("other", "moved")).metadata == {"x": "y"}
    # The original goes; the copy's pieces must not go with it.
    await project.delete("bkt", "orig")
    await world.deletes_sent()
    chunks = project.stream("other", "moved")
    async with contextlib.aclosing(chunks):
        assert b"".join([chunk async for chunk in chunks]) == data
    # Small objects live at the bridge; they move the same way.
    await project.upload("bkt", "tiny", b"tiny")
    await project.move("bkt", "tiny", "other", "tiny2")
    assert b"".join([c async for c in project.stream("other", "tiny2")]) == b"tiny"


@on_module_loop
async def test_move_and_copy_obey_the_grant(world: Planet, project: AsyncProject) -> None:
    await project.upload("bkt", "in/a", b"a" * 5000)
    no_delete = project.share(
        [("bkt", "in"), ("bkt", "out")], Permissions(read=True, write=True, delete=False)
    )
    read_only = project.share([("bkt", "in"), ("bkt", "out")], Permissions(read=True))
    async with await AsyncProject.open(no_delete, config=SMALL) as guest:
        with pytest.raises(PermissionDenied):
            await guest.move("bkt", "in/a", "bkt", "out/a")  # needs DELETE on the source
        await guest.copy("bkt", "in/a", "bkt", "out/a")
        with pytest.raises(PermissionDenied):
            await guest.copy("bkt", "in/a", "bkt", "out/a")  # would replace out/a
        with pytest.raises(AccessDenied):
            await guest.copy("bkt", "in/a", "bkt", "elsewhere")  # no key for that path
    async with await AsyncProject.open(read_only, config=SMALL) as guest:
        with pytest.raises(PermissionDenied):
            await guest.copy("bkt", "in/a", "bkt", "out/b")  # needs WRITE at the destination
    assert await read_all(project, "out/a") == b"a" * 5000
    # Another project's bucket is not there at all for this one.
    async with await AsyncProject.open(await world.grant(), config=SMALL) as other:
        await other.create_bucket("theirs")
        with pytest.raises(NotFound) as missing:
            await project.copy("bkt", "in/a", "theirs", "stolen")
        assert missing.value.code == "bucket-not-found"
        assert [i async for i in other.list_objects("theirs")] == []


class _CountingBridge(BridgeAPI):
    """The real bridge API, noting which segments an upload begins."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.begun: list[int] = []

    async def begin_segment(
        self, stream_id: str, index: int, encrypted_size: int, piece_size: int
    ) -> SegmentOrders:
        self.begun.append(index)
        return await super().begin_segment(stream_id, index, encrypted_size, piece_size)


_INTERRUPTED_UPLOAD = """
import os, sys
from metadisk.client import ClientConfig, Project, SegmentSizing
grant, source, state = sys.argv[1:]
config = ClientConfig(sizing=SegmentSizing(piece_target=256 * 1024), processes=False)
with Project.open(grant, config=config) as project:
    project.upload("bkt", "resumed", source, resume_dir=state,
                   progress=lambda done, total: print(done, flush=True))
"""


@on_module_loop
async def test_a_killed_upload_resumes(
    world: Planet, project: AsyncProject, tmp_path: Path
) -> None:
    """An upload process SIGKILLed after some segments are committed: the next upload of the
    same file sends only the segments the bridge does not have, and the object is whole."""
    data = os.urandom(6 * MiB + 5)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    state_dir = tmp_path / "state"
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _INTERRUPTED_UPLOAD,
        project.grant.serialize(),
        str(source),
        str(state_dir),
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    try:
        while int((await child.stdout.readline()) or b"-1") < 2 * MiB:
            pass  # until two segments are committed
    finally:
        child.kill()
        await child.wait()
    [state] = state_dir.iterdir()
    stream_id = json.loads(state.read_text())["stream_id"]

    bridge = _CountingBridge(world.bridge.url, project.grant.api_key.serialize())
    try:
        pending = await bridge.get_upload(stream_id)
        committed = {segment.index for segment in pending.segments}
        assert {0, 1} <= committed and len(committed) < 7
        listed = await bridge.list_uploads("bkt", pending.key)
        assert stream_id in {upload.stream_id for upload in listed}
        async with AsyncProject(project.grant, config=SMALL, bridge=bridge) as again:
            info = await again.upload("bkt", "resumed", source, resume_dir=state_dir)
        assert info.size == len(data)
        assert sorted(bridge.begun) == sorted(set(range(7)) - committed)
        with pytest.raises(NotFound) as gone:
            await bridge.get_upload(stream_id)  # committed: no longer pending
        assert gone.value.code == "upload-not-found"
    finally:
        await bridge.aclose()
    assert list(state_dir.iterdir()) == []
    assert await read_all(project, "resumed") == data


def test_sync_project(world: Planet) -> None:
    grant = asyncio.run(world.grant())
    data = os.urandom(MiB + 10)
    with Project.open(grant, config=SMALL) as project:
        project.create_bucket("sync")
        info = project.upload("sync", "f", data, metadata={"k": "v"})
        assert info.size == len(data)
        assert b"".join(project.stream("sync", "f")) == data
        assert b"".join(project.stream("sync", "f", offset=5, length=7)) == data[5:12]
        assert [i.key for i in project.list_objects("sync")] == ["f"]
        assert project.stat("sync", "f").metadata == {"k": "v"}
        project.upload("sync", "g", iter([b"ab", b"cd"]))
        assert b"".join(project.stream("sync", "g")) == b"abcd"
        project.delete("sync", "f")
        with pytest.raises(NotFound):
            project.stat("sync", "f")


@on_module_loop
async def test_other_keys_see_nothing(world: Planet, project: AsyncProject) -> None:
    from metadisk.core.grant import AccessGrant
    from metadisk.core.paths import EncryptionAccess

    await project.upload("bkt", "secret", b"s")
    other = AccessGrant(
        project.grant.bridge_url, project.grant.api_key, EncryptionAccess(os.urandom(32))
    )
    async with AsyncProject(other, config=SMALL) as stranger:
        with pytest.raises(NotFound):
            await stranger.stat("bkt", "secret")  # another root key: another encrypted name
        assert [i async for i in stranger.list_objects("bkt")] == []  # names do not decrypt
