"""Objects assembled from parts (the ground of S3 multipart uploads), size hints, and copies
with new metadata, on a real network: a bridge process and ten farmer processes on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import blake3
import pytest
import pytest_asyncio

from metadisk.client import (
    AsyncProject,
    BridgeError,
    ClientConfig,
    IntegrityFailure,
    InvalidArgument,
    SegmentSizing,
)
from metadisk.client.records import PartWritten
from metadisk.client.transfers import _MemoryBudget
from metadisk.core import content
from tests.client.planet import Planet, planet
from tests.client.test_project import SMALL, read_all

on_module_loop = pytest.mark.asyncio(loop_scope="module")

MiB = 1 << 20
SLOT = 1 << 17  # indices per part, as the S3 gateway spaces them


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Planet]:
    async with planet(tmp_path_factory.mktemp("planet")) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module")
async def project(world: Planet) -> AsyncIterator[AsyncProject]:
    async with await AsyncProject.open(await world.grant(), config=SMALL) as opened:
        await opened.create_bucket("bkt")
        yield opened


def stored_pieces(world: Planet) -> int:
    return sum(
        1
        for farmer in world.farmers
        for p in (farmer.data_dir / "pieces").rglob("*")
        if p.is_file()
    )


async def chunks_of(data: bytes, size: int = 100_000) -> AsyncIterator[bytes]:
    """A stream that cannot tell its length."""
    for start in range(0, len(data), size):
        yield data[start : start + size]
        await asyncio.sleep(0)


def encrypted(sizes: list[int]) -> int:
    return sum(content.ciphertext_size(size) for size in sizes)


@on_module_loop
async def test_parts_stored_at_once_and_out_of_order_make_one_object(
    world: Planet, project: AsyncProject
) -> None:
    one, two_old, two, three = (os.urandom(n) for n in (MiB + MiB // 2, 700_000, 900_001, 2 * MiB))
    await world.deletes_sent()
    before = stored_pieces(world)
    upload_id = await project.begin_upload("bkt", "big/object")
    # Parts in reverse order, at once; part 2 is then sent again into a sub-range of its slot
    # (its first attempt, say, timed out at the S3 client): the first attempt is left out.
    third, first, second_old = await asyncio.gather(
        project.upload_part("bkt", "big/object", upload_id, three, first_index=2 * SLOT),
        project.upload_part("bkt", "big/object", upload_id, chunks_of(one), first_index=0),
        project.upload_part("bkt", "big/object", upload_id, two_old, first_index=SLOT),
    )
    second = await project.upload_part(
        "bkt", "big/object", upload_id, chunks_of(two), first_index=SLOT + SLOT // 2, size=len(two)
    )
    assert first == PartWritten(0, 2, len(one), (0, 1), blake3.blake3(one).digest())
    assert second == PartWritten(
        SLOT + SLOT // 2, 1, len(two), (SLOT + SLOT // 2,), blake3.blake3(two).digest()
    )
    assert (third.segment_count, third.size, third.indices) == (
        2,
        2 * MiB,
        (2 * SLOT, 2 * SLOT + 1),
    )
    assert second_old.indices == (SLOT,)
    await world.deletes_sent()
    with_every_part = stored_pieces(world)

    segments = [*first.indices, *second.indices, *third.indices]
    info = await project.commit_upload(
        "bkt", "big/object", upload_id, segments, content_type="video/mp4", metadata={"a": "b"}
    )
    data = one + two + three
    assert (info.size, info.segment_count, info.content_type) == (len(data), 5, "video/mp4")
    assert info.checksum is None  # parts are hashed apart: no whole-object checksum
    assert await read_all(project, "big/object") == data
    # Ranges across the parts' boundaries.
    for offset, length in [
        (len(one) - 100, 300),
        (len(one) + len(two) - 1, 2),
        (MiB - 5, len(one) + len(two)),
        (len(data) - 10, 10),
    ]:
        got = await read_all(project, "big/object", offset=offset, length=length)
        assert got == data[offset : offset + length], (offset, length)
    # Only what the object keeps is counted; the left-out part's pieces leave the farmers.
    usage = await project.usage()
    assert (usage.usage.segments, usage.pending.uploads, usage.pending.storage_bytes) == (5, 0, 0)
    assert usage.usage.storage_bytes == encrypted([MiB, MiB // 2, len(two), MiB, MiB])
    await world.deletes_sent()
    kept = stored_pieces(world)
    assert before < kept < with_every_part
    # A sparse object moves and copies like any other.
    await project.copy("bkt", "big/object", "bkt", "big/copy")
    await project.move("bkt", "big/object", "bkt", "big/moved")
    assert await read_all(project, "big/moved") == data
    await project.delete("bkt", "big/moved")
    assert (
        await read_all(project, "big/copy", offset=len(one) - 1, length=2)
        == data[len(one) - 1 : len(one) + 1]
    )
    await project.delete("bkt", "big/copy")
    await world.deletes_sent()
    assert stored_pieces(world) == before


@on_module_loop
async def test_a_commit_is_checked(project: AsyncProject) -> None:
    upload_id = await project.begin_upload("bkt", "checked")
    part = await project.upload_part("bkt", "checked", upload_id, b"x" * 10_000, first_index=7)
    with pytest.raises(BridgeError) as missing:
        await project.commit_upload("bkt", "checked", upload_id, [7, 8])
    assert (missing.value.status, missing.value.code) == (400, "segments-missing")
    assert "segment 8 " in str(missing.value)
    with pytest.raises(InvalidArgument):
        await project.commit_upload("bkt", "checked", upload_id, [7, 7])
    # Parts go to the upload of their path only: under another path their keys never open.
    with pytest.raises(InvalidArgument):
        await project.upload_part("bkt", "elsewhere", upload_id, b"y", first_index=20)
    with pytest.raises(InvalidArgument):
        await project.commit_upload("bkt", "elsewhere", upload_id, list(part.indices))
    info = await project.commit_upload("bkt", "checked", upload_id, list(part.indices))
    assert info.size == 10_000
    assert await read_all(project, "checked") == b"x" * 10_000


@on_module_loop
async def test_one_part_committed_with_its_checksum_is_checked_whole(
    project: AsyncProject,
) -> None:
    data = os.urandom(MiB + 3)
    upload_id = await project.begin_upload("bkt", "whole")
    part = await project.upload_part("bkt", "whole", upload_id, data, first_index=0)
    info = await project.commit_upload(
        "bkt", "whole", upload_id, list(part.indices), checksum=part.checksum
    )
    assert info.checksum == part.checksum == blake3.blake3(data).digest()
    assert await read_all(project, "whole") == data
    # A checksum that is not the data's: the full read says so.
    upload_id = await project.begin_upload("bkt", "lying")
    part = await project.upload_part("bkt", "lying", upload_id, data, first_index=0)
    await project.commit_upload("bkt", "lying", upload_id, list(part.indices), checksum=bytes(32))
    with pytest.raises(IntegrityFailure):
        await read_all(project, "lying")


@on_module_loop
async def test_empty_parts_store_nothing_and_alone_make_an_empty_object(
    project: AsyncProject,
) -> None:
    upload_id = await project.begin_upload("bkt", "empty")
    empty = await project.upload_part("bkt", "empty", upload_id, b"", first_index=SLOT)
    assert empty == PartWritten(SLOT, 0, 0, (), blake3.blake3(b"").digest())
    info = await project.commit_upload("bkt", "empty", upload_id, list(empty.indices))
    assert (info.size, info.segment_count) == (0, 0)
    assert await read_all(project, "empty") == b""
    assert not await project.list_uploads("bkt")  # the upload was given up for the object
    # Between others, an empty part adds nothing.
    upload_id = await project.begin_upload("bkt", "mixed")
    parts = [
        await project.upload_part("bkt", "mixed", upload_id, data, first_index=i * SLOT)
        for i, data in enumerate([b"a" * 5000, b"", b"b" * 7000])
    ]
    indices = [i for part in parts for i in part.indices]
    assert indices == [0, 2 * SLOT]
    await project.commit_upload("bkt", "mixed", upload_id, indices)
    assert await read_all(project, "mixed") == b"a" * 5000 + b"b" * 7000


@on_module_loop
async def test_a_size_hint_must_be_the_truth(project: AsyncProject) -> None:
    data = os.urandom(300_000)
    upload_id = await project.begin_upload("bkt", "hinted")
    for size in (len(data) + 1, len(data) - 1):
        with pytest.raises(InvalidArgument):
            await project.upload_part(
                "bkt", "hinted", upload_id, chunks_of(data), first_index=0, size=size
            )
        with pytest.raises(InvalidArgument):  # a source that knows its size disagrees
            await project.upload_part("bkt", "hinted", upload_id, data, first_index=0, size=size)
    await project.abort_upload(upload_id)
    # A stream of known length: its total is known to the progress callback, and it is
    # stored in segments sized to it.
    seen: list[tuple[int, int | None]] = []
    info = await project.upload(
        "bkt", "stream", chunks_of(data), size=len(data), progress=lambda d, t: seen.append((d, t))
    )
    assert (info.size, info.segment_count) == (len(data), 1)
    assert seen[-1] == (len(data), len(data))
    assert await read_all(project, "stream") == data
    with pytest.raises(InvalidArgument):
        await project.upload("bkt", "short", chunks_of(data), size=len(data) + 10)
    with pytest.raises(InvalidArgument):
        await project.upload("bkt", "tiny", chunks_of(b"abc"), size=2)  # an inline one, too


@on_module_loop
async def test_copy_replaces_metadata_elsewhere_and_in_place(project: AsyncProject) -> None:
    data = os.urandom(MiB + 3)
    await project.upload("bkt", "meta/orig", data, content_type="a/b", metadata={"k": "v"})
    copied = await project.copy(
        "bkt", "meta/orig", "bkt", "meta/copy", content_type="c/d", metadata={"new": "1"}
    )
    assert (copied.content_type, copied.metadata, copied.size) == ("c/d", {"new": "1"}, len(data))
    stat = await project.stat("bkt", "meta/copy")
    assert (stat.content_type, stat.metadata) == ("c/d", {"new": "1"})
    assert stat.checksum == (await project.stat("bkt", "meta/orig")).checksum is not None
    assert (await project.stat("bkt", "meta/orig")).metadata == {"k": "v"}
    # Onto itself (S3's REPLACE directive): the same data, new metadata, one object.
    itself = await project.copy("bkt", "meta/orig", "bkt", "meta/orig", metadata={"k": "w"})
    assert (itself.content_type, itself.metadata) == ("a/b", {"k": "w"})
    assert (await project.stat("bkt", "meta/orig")).metadata == {"k": "w"}
    assert await read_all(project, "meta/orig") == data  # the whole-object checksum still holds
    names = [item.key async for item in project.list_objects("bkt", "meta/")]
    assert sorted(names) == ["meta/copy", "meta/orig"]
    # Small objects live at the bridge: their key is re-wrapped with the new metadata.
    await project.upload("bkt", "meta/tiny", b"tiny", content_type="x/y")
    await project.copy("bkt", "meta/tiny", "bkt", "meta/tiny", content_type="z/w")
    assert (await project.stat("bkt", "meta/tiny")).content_type == "z/w"
    assert await read_all(project, "meta/tiny") == b"tiny"
    with pytest.raises(InvalidArgument):
        await project.copy("bkt", "meta/tiny", "bkt", "x", metadata={"big": "v" * 10_000})


@on_module_loop
async def test_ten_parts_at_once(world: Planet) -> None:
    """As an S3 client sends them: ten parts of one upload at once, each its own pipeline, all
    within one memory budget (here room for about two parts' buffers at a time)."""
    tight = ClientConfig(
        sizing=SegmentSizing(piece_target=256 * 1024, memory_budget=2 * MiB), processes=False
    )
    async with await AsyncProject.open(await world.grant(), config=tight) as project:
        await project.create_bucket("bkt")
        await ten_parts(project)


async def ten_parts(project: AsyncProject) -> None:
    parts = [os.urandom(150_000 + n) for n in range(10)]
    upload_id = await project.begin_upload("bkt", "ten")
    written = await asyncio.gather(
        *[
            project.upload_part(
                "bkt", "ten", upload_id, chunks_of(part), first_index=n * SLOT, size=len(part)
            )
            for n, part in enumerate(parts)
        ]
    )
    assert [w.indices for w in written] == [(n * SLOT,) for n in range(10)]
    segments = [i for w in written for i in w.indices]
    info = await project.commit_upload("bkt", "ten", upload_id, segments)
    assert (info.size, info.segment_count) == (sum(map(len, parts)), 10)
    assert await read_all(project, "ten") == b"".join(parts)


async def test_parts_wait_for_room_in_the_memory_budget() -> None:
    budget = _MemoryBudget(100)
    inside: list[int] = []
    seen: list[tuple[int, ...]] = []

    async def part(amount: int) -> None:
        async with budget.hold(amount):
            inside.append(amount)
            seen.append(tuple(sorted(inside)))
            await asyncio.sleep(0.01)
            inside.remove(amount)

    await asyncio.gather(*[part(40) for _ in range(6)], part(250))
    # Two parts of 40 side by side, never a third; one larger than the budget runs alone.
    assert all(sum(held) <= 100 or held == (250,) for held in seen), seen
    assert (40, 40) in seen and (250,) in seen
    assert not inside
