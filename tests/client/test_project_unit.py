"""Unit tests of the client's side of resume, move and copy against `FakeBridgeAPI` and in-memory
farmers: interruptions at exact points and the calls made (`test_project.py` runs the same
features against a real bridge and real farmers)."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from metadisk.client import AsyncProject, ClientConfig, NotFound, ResumeMismatch, SegmentSizing
from metadisk.client.coordinators import BackgroundReports
from metadisk.client.errors import PieceError, UploadFailed
from metadisk.client.offload import Offload
from metadisk.core.erasure import LOCAL
from metadisk.core.grant import AccessGrant
from metadisk.core.identity import Identity, NodeId
from metadisk.core.macaroon import APIKey
from metadisk.core.paths import EncryptionAccess
from metadisk.wire.api.objects import PieceOutcome
from tests.client.doubles import MemoryFarmers, Request
from tests.client.fake_bridge import FakeBridgeAPI

MiB = 1 << 20
CONFIG = ClientConfig(sizing=SegmentSizing(piece_target=256 * 1024))


@pytest.fixture
async def project(
    farmers: MemoryFarmers, bridge_identity: Identity, offload: Offload
) -> AsyncIterator[AsyncProject]:
    fake = FakeBridgeAPI(list(farmers.farmers), bridge_identity)
    api_key, _ = APIKey.generate()
    grant = AccessGrant(fake.url, api_key, EncryptionAccess(os.urandom(32)))
    opened = AsyncProject(
        grant,
        config=CONFIG,
        bridge=fake,
        transport=farmers,
        offload=offload,  # type: ignore[arg-type]
    )
    await opened.create_bucket("bkt")
    await opened.create_bucket("other")
    yield opened
    await opened.aclose()


def fake(project: AsyncProject) -> FakeBridgeAPI:
    return project._bridge  # type: ignore[return-value]


async def read(project: AsyncProject, bucket: str, key: str) -> bytes:
    return b"".join([chunk async for chunk in project.stream(bucket, key)])


@pytest.mark.parametrize("size", [100, 3 * MiB + 5])
async def test_move_rekeys_without_moving_data(
    project: AsyncProject, farmers: MemoryFarmers, size: int
) -> None:
    data = os.urandom(size)
    await project.upload("bkt", "old/name", data, content_type="a/b", metadata={"x": "y"})
    farmers.requests.clear()
    moved = await project.move("bkt", "old/name", "other", "new/name")
    assert moved.key == "new/name" and moved.content_type == "a/b"
    assert not [r for r in farmers.requests if r.method == "PUT"]
    with pytest.raises(NotFound):
        await project.stat("bkt", "old/name")
    info = await project.stat("other", "new/name")
    assert (info.size, info.metadata) == (size, {"x": "y"})
    assert await read(project, "other", "new/name") == data


async def test_copy_keeps_both(project: AsyncProject) -> None:
    data = os.urandom(2 * MiB)
    await project.upload("bkt", "a", data)
    await project.copy("bkt", "a", "bkt", "b")
    assert await read(project, "bkt", "a") == data
    assert await read(project, "bkt", "b") == data
    assert fake(project).calls[-1] == "copy_object"


async def interrupt_after(farmers: MemoryFarmers, segments: int) -> None:
    """Make every upload after the first `segments` segments fail (PUTs refused)."""
    seen: set[bytes] = set()

    async def handler(request: Request) -> None:
        if request.method != "PUT":
            return
        seen.add(request.limit.serial)
        if len(seen) > segments * 10:
            raise PieceError("network gone", code="connection-failed")

    farmers.handler = handler


async def test_an_interrupted_upload_resumes(
    project: AsyncProject, farmers: MemoryFarmers, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    data = os.urandom(5 * MiB + 17)
    source.write_bytes(data)
    state_dir = tmp_path / "state"
    await interrupt_after(farmers, 2)
    with pytest.raises(UploadFailed):
        await project.upload("bkt", "big", source, resume_dir=state_dir)
    [state] = list(state_dir.iterdir())
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    saved = json.loads(state.read_text())
    assert set(saved) == {
        "version",
        "bridge",
        "bucket",
        "key",
        "source",
        "size",
        "mtime_ns",
        "stream_id",
        "segment_size",
    }
    assert "abort_upload" not in fake(project).calls  # kept for resuming

    farmers.handler = None
    fake(project).calls.clear()
    info = await project.upload("bkt", "big", source, resume_dir=state_dir)
    assert info.size == len(data)
    begun = [c for c in fake(project).calls if c.startswith("begin_segment")]
    assert "get_upload" in fake(project).calls
    assert "begin_segment 0" not in begun and "begin_segment 1" not in begun
    assert await read(project, "bkt", "big") == data
    assert list(state_dir.iterdir()) == []


async def test_a_changed_file_is_not_resumed(
    project: AsyncProject, farmers: MemoryFarmers, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(4 * MiB))
    state_dir = tmp_path / "state"
    await interrupt_after(farmers, 2)
    with pytest.raises(UploadFailed):
        await project.upload("bkt", "big", source, resume_dir=state_dir)
    farmers.handler = None
    # Same size and times, different bytes: only the segment tags can tell.
    before = source.stat()
    changed = bytearray(source.read_bytes())
    changed[10:17] = b"changed"
    source.write_bytes(changed)
    os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(ResumeMismatch):
        await project.upload("bkt", "big", source, resume_dir=state_dir)
    assert fake(project).calls[-1] == "abort_upload"
    assert list(state_dir.iterdir()) == []


async def test_a_vanished_pending_upload_starts_over(
    project: AsyncProject, farmers: MemoryFarmers, tmp_path: Path
) -> None:
    data = os.urandom(3 * MiB)
    source = tmp_path / "f"
    source.write_bytes(data)
    await interrupt_after(farmers, 1)
    with pytest.raises(UploadFailed):
        await project.upload("bkt", "f", source, resume_dir=tmp_path / "s")
    farmers.handler = None
    fake(project).uploads.clear()  # reclaimed by the bridge meanwhile
    await project.upload("bkt", "f", source, resume_dir=tmp_path / "s")
    assert await read(project, "bkt", "f") == data


async def test_a_failed_upload_without_resume_is_aborted(
    project: AsyncProject, farmers: MemoryFarmers
) -> None:
    await interrupt_after(farmers, 1)
    with pytest.raises(UploadFailed):
        await project.upload("bkt", "f", os.urandom(2 * MiB))
    assert fake(project).calls[-1] == "abort_upload"
    assert not fake(project).uploads


async def test_a_move_rereads_an_object_overwritten_meanwhile(
    project: AsyncProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys re-wrapped for one version are never stored on another: the move starts over."""
    second = os.urandom(2 * MiB)
    await project.upload("bkt", "a", os.urandom(MiB + 1))
    bridge = fake(project)
    original = bridge.get_object
    reads = 0

    async def overwritten_after_first_read(bucket: str, key: str) -> Any:
        nonlocal reads
        record = await original(bucket, key)
        reads += 1
        if reads == 1:
            await project.upload("bkt", "a", second)
        return record

    monkeypatch.setattr(bridge, "get_object", overwritten_after_first_read)
    await project.move("bkt", "a", "other", "b")
    assert reads == 2
    monkeypatch.setattr(bridge, "get_object", original)
    assert await read(project, "other", "b") == second


async def test_4_kib_is_inline(project: AsyncProject) -> None:
    data = os.urandom(4096)  # 4,112 bytes of ciphertext: the bridge's limit exactly
    info = await project.upload("bkt", "small", data)
    assert info.segment_count == 0
    assert fake(project).calls[-1] == "put_inline"
    assert "begin_object" not in fake(project).calls
    assert await read(project, "bkt", "small") == data


async def test_a_bridge_with_a_smaller_inline_limit_gets_segments(project: AsyncProject) -> None:
    fake(project).inline_limit = 4096  # as bridges before 4 KiB of plaintext fitted
    data = os.urandom(4096)
    info = await project.upload("bkt", "small", data)
    assert info.segment_count == 1
    assert fake(project).calls.index("put_inline") < fake(project).calls.index("begin_object")
    assert await read(project, "bkt", "small") == data


# -- how each piece transfer went, told to the bridge -------------------------------------------


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(3000):  # 30 s at most, generous: reports go out in the background
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("it never happened")


async def test_uploads_tell_the_bridge_each_piece_with_the_commit(project: AsyncProject) -> None:
    info = await project.upload("bkt", "a", os.urandom(3 * MiB + 5))
    outcomes = fake(project).outcomes
    assert info.segment_count == 4
    assert sum(o.outcome == "success" for o in outcomes) >= 4 * LOCAL.o


async def test_downloads_report_segments_off_the_critical_path(project: AsyncProject) -> None:
    data = os.urandom(2 * MiB + 5)
    info = await project.upload("bkt", "a", data)
    assert info.segment_count > 1
    for _ in range(8):  # all well: one segment in eight is reported, the first one first
        assert await read(project, "bkt", "a") == data
    bridge = fake(project)
    reads = 8 * info.segment_count
    await until(lambda: len(bridge.reports) == -(-reads // 8))
    (stored,) = [record for record, _ in bridge.objects.values()]
    assert {(r.key, r.stream_id) for r in bridge.reports} == {(stored.key, stored.stream_id)}
    assert all(sum(o.outcome == "success" for o in r.outcomes) >= LOCAL.k for r in bridge.reports)


async def test_a_bridge_without_the_report_route_changes_nothing(
    project: AsyncProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(2 * MiB)
    await project.upload("bkt", "a", data)
    tried = []

    async def no_route(*args: object) -> None:
        tried.append(args)
        raise NotFound("no such route", code="not-found", status=404)  # an older bridge

    monkeypatch.setattr(fake(project), "report_segment", no_route)
    assert await read(project, "bkt", "a") == data
    await until(lambda: len(tried) >= 1)
    assert await read(project, "bkt", "a") == data
    await asyncio.sleep(0.05)
    assert len(tried) <= 3  # the segments of the first download at most, then no more


async def test_a_report_the_bridge_never_answers_delays_nothing(
    project: AsyncProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(2 * MiB)
    await project.upload("bkt", "a", data)

    async def silent(*args: object) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(fake(project), "report_segment", silent)
    async with asyncio.timeout(30):  # generous: only to catch a download waiting on reports
        assert await read(project, "bkt", "a") == data
        await project.aclose()  # gives the reports two seconds, then drops them


async def test_segments_with_trouble_are_always_reported() -> None:
    sent: list[str] = []

    class Bridge:
        async def report_segment(self, bucket: str, key: str, index: int, stream: str,
                                 outcomes: object) -> None:  # fmt: skip
            sent.append(f"{index}")

    reports = BackgroundReports(Bridge(), success_every=4)  # type: ignore[arg-type]
    node = NodeId(bytes(32))
    ok = [PieceOutcome(piece_number=0, node_id=node, outcome="success", latency_ms=3)]
    slow = [PieceOutcome(piece_number=1, node_id=node, outcome="slow", latency_ms=900)]
    for index in range(8):
        reports.send("b", "k", index, "s" * 32, ok)
    reports.send("b", "k", 99, "s" * 32, slow)
    await reports.aclose()
    assert sent == ["0", "4", "99"]
