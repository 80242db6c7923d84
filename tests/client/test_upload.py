"""Unit tests of the upload pipeline over in-memory farmers and the bridge double."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

import pytest

from metadisk.client.download import DownloadPipeline
from metadisk.client.errors import BridgeUnavailable, PieceError, ResumeMismatch, UploadFailed
from metadisk.client.farmer_transport import LongTail, PieceTarget, Suspects
from metadisk.client.formats import SegmentKey
from metadisk.client.offload import Offload, SegmentBuffer
from metadisk.client.segmenter import SourceReader
from metadisk.client.upload import UploadConfig, UploadPipeline, put_pieces
from metadisk.core.content import ciphertext_size
from metadisk.core.erasure import LOCAL
from metadisk.core.identity import Identity
from metadisk.core.messages import OrderLimit, PieceReceipt
from tests.client.doubles import MemoryFarmers, PipelineBridge, Request

SEGMENT = 256 * 1024
KEY = bytes(range(32))
QUICK = UploadConfig(
    segments_in_flight=2,
    segments_uploading=1,  # one segment at a time: what one learns, the next one uses
    replace_laggards=LongTail(factor=1.0, floor=0.05),
    abandon_laggards=LongTail(factor=1.0, floor=0.3),
)


async def upload(
    farmers: MemoryFarmers,
    offload: Offload,
    bridge: PipelineBridge,
    data: bytes,
    *,
    config: UploadConfig | None = None,
    committed: dict[int, SegmentKey] | None = None,
    progress: list[tuple[int, int | None]] | None = None,
) -> int:
    pipeline = UploadPipeline(farmers, offload, config)
    reader = SourceReader.open(data)
    summary = await pipeline.run(
        reader,
        object_key=KEY,
        scheme=LOCAL,
        segment_size=SEGMENT,
        coordinator=bridge,
        committed=committed,
        progress=None if progress is None else lambda d, t: progress.append((d, t)),
    )
    assert summary.plaintext_size == len(data)
    return summary.segment_count


async def download(farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge) -> bytes:
    pipeline = DownloadPipeline(farmers, offload)
    out = bytearray()
    async with contextlib.aclosing(
        pipeline.chunks(bridge.segments(), object_key=KEY, scheme=LOCAL, coordinator=bridge)
    ) as chunks:
        async for view in chunks:
            out += view
    return bytes(out)


@pytest.mark.parametrize(
    "size", [0, 1, 65535, 65536, SEGMENT - 1, SEGMENT, 2 * SEGMENT, 3 * SEGMENT + 12345]
)
async def test_round_trip(
    farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge, size: int
) -> None:
    data = os.urandom(size)
    count = await upload(farmers, offload, bridge, data)
    assert count == max(1, -(-size // SEGMENT))
    assert sorted(bridge.committed) == list(range(count))
    for segment in bridge.committed.values():
        assert len(segment.receipts) >= LOCAL.o
        assert segment.ciphertext_size == ciphertext_size(segment.plaintext_size)
    assert await download(farmers, offload, bridge) == data


async def test_progress_reaches_the_total(
    farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge
) -> None:
    data = os.urandom(3 * SEGMENT + 5)
    seen: list[tuple[int, int | None]] = []
    await upload(farmers, offload, bridge, data, progress=seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert seen[-1] == (len(data), len(data))


async def test_stragglers_are_cancelled_once_o_pieces_are_stored(
    farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge
) -> None:
    hanging = {farmers.farmers[8].address, farmers.farmers[9].address}

    async def handler(request: Request) -> None:
        if request.address in hanging:
            await asyncio.Event().wait()  # never answers

    farmers.handler = handler
    data = os.urandom(2 * SEGMENT)
    await upload(farmers, offload, bridge, data)
    for segment in bridge.committed.values():
        assert sorted(segment.receipts) == list(range(8))
    assert farmers.cancelled == 4  # two hanging pieces in each of two segments
    farmers.handler = None
    assert await download(farmers, offload, bridge) == data


async def test_failed_pieces_the_segment_needs_are_retried_on_other_farmers(
    farmers: MemoryFarmers,
    offload: Offload,
    bridge: PipelineBridge,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = {f.address for f in farmers.farmers[:3]}

    async def handler(request: Request) -> None:
        if request.method == "PUT" and request.address in broken:
            raise PieceError("disk on fire", code="internal", status=500)

    farmers.handler = handler
    data = os.urandom(SEGMENT)
    with caplog.at_level(logging.INFO, logger="metadisk.client.transfers"):
        await upload(farmers, offload, bridge, data)
    # Seven pieces on their way: one replacement makes eight, and no more is asked for.
    assert len(bridge.replaced) == 1 and len(bridge.replaced[0][1]) == 1
    assert set(bridge.replaced[0][1]) < {0, 1, 2}
    # Each farmer routed around is in the log, with the farmer's code.
    routed = [r for r in caplog.records if r.getMessage() == "routed around a farmer"]
    assert sorted(r.fields["piece"] for r in routed) == [0, 1, 2]
    assert {r.fields["code"] for r in routed} == {"internal"}
    assert {r.fields["address"] for r in routed} == broken
    stored = {bridge.placements[0][n].address for n in bridge.committed[0].receipts}
    assert len(bridge.committed[0].receipts) >= LOCAL.o
    assert not stored & broken
    assert stored & {f.address for f in farmers.farmers[10:]}
    assert await download(farmers, offload, bridge) == data


async def test_a_slow_replacement_does_not_delay_the_cancellation(
    farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge
) -> None:
    """o pieces stored while a replacement is still being asked for: the upload ends anyway."""
    asked: list[int] = []
    asking = asyncio.Event()
    lagging = {f.address: number for number, f in enumerate(farmers.farmers[:3])}

    async def handler(request: Request) -> None:
        if request.address in lagging:  # three laggards, one of them needed: once one is
            await asking.wait()  # being replaced, the other two get there after all
            if lagging[request.address] in asked:
                await asyncio.Event().wait()

    class SlowBridge(PipelineBridge):
        async def replace_pieces(
            self, index: int, failed: Sequence[PieceTarget]
        ) -> Sequence[PieceTarget]:
            asked.extend(target.number for target in failed)
            asking.set()
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

    farmers.handler = handler
    slow = SlowBridge(bridge.farmers, LOCAL, bridge.identity)
    async with asyncio.timeout(30):  # generous: only to catch a hang
        await upload(farmers, offload, slow, os.urandom(1000), config=QUICK)
    assert len(asked) == 1
    assert sorted(slow.committed[0].receipts) == sorted(set(range(10)) - set(asked))


async def test_too_few_pieces_fail_with_every_reason(
    farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge
) -> None:
    bridge.farmers = bridge.farmers[:10]  # no spare farmer to retry on
    broken = {f.address: f"boom-{i}" for i, f in enumerate(farmers.farmers[:3])}

    async def handler(request: Request) -> None:
        if request.address in broken:
            raise PieceError("broken", code=broken[request.address])

    farmers.handler = handler
    with pytest.raises(UploadFailed) as caught:
        await upload(farmers, offload, bridge, os.urandom(1000))
    assert caught.value.code == "not-enough-pieces"
    assert sorted(caught.value.failures) == [0, 1, 2]
    assert caught.value.failures[1].startswith("boom-1")
    assert not bridge.committed


class LyingFarmers(MemoryFarmers):
    """Farmers whose receipts are wrong in the way `lie` says, for the first `liars` farmers."""

    lie = "signature"
    liars = 3

    async def put_piece(
        self, address: str, limit: OrderLimit, piece_hash: bytes, data: memoryview
    ) -> PieceReceipt:
        receipt = await super().put_piece(address, limit, piece_hash, data)
        index = self._by_address[address]
        if index >= self.liars:
            return receipt
        identity = self.identities[index]
        if self.lie == "signature":
            return PieceReceipt(*[getattr(receipt, f) for f in _RECEIPT_FIELDS[:-1]], b"\0" * 64)
        fields = {f: getattr(receipt, f) for f in _RECEIPT_FIELDS[:-1]}
        if self.lie == "hash":
            fields["piece_hash"] = bytes(32)
        elif self.lie == "size":
            fields["size"] += 1
        elif self.lie == "serial":
            fields["serial"] = bytes(16)
        elif self.lie == "other-node":
            other = Identity.generate()
            fields["node_id"] = other.node_id
            return PieceReceipt(**fields).signed_by(other)
        return PieceReceipt(**fields).signed_by(identity)


_RECEIPT_FIELDS = (
    "serial",
    "node_id",
    "piece_id",
    "size",
    "piece_hash",
    "stored_at",
    "signature",
)


@pytest.mark.parametrize("lie", ["signature", "hash", "size", "serial", "other-node"])
async def test_a_wrong_receipt_counts_as_a_failed_piece(
    bridge_identity: Identity, offload: Offload, lie: str
) -> None:
    farmers = LyingFarmers(10, bridge_identity)
    farmers.lie = lie
    bridge = PipelineBridge(list(farmers.farmers), LOCAL, bridge_identity)
    with pytest.raises(UploadFailed) as caught:
        await upload(farmers, offload, bridge, os.urandom(1000))
    assert sorted(caught.value.failures) == [0, 1, 2]
    assert all(reason.startswith("bad-receipt") for reason in caught.value.failures.values())


async def test_a_target_whose_key_is_not_the_nodes_is_refused(
    farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge
) -> None:
    class WrongKeys(PipelineBridge):
        async def begin_segment(self, index: int, size: int) -> Sequence[PieceTarget]:
            targets = list(await super().begin_segment(index, size))
            for i in range(3):
                t = targets[i]
                targets[i] = PieceTarget(
                    t.number, t.limit, t.address, Identity.generate().public_key
                )
            return targets

    wrong = WrongKeys(bridge.farmers[:10], LOCAL, bridge.identity)
    with pytest.raises(UploadFailed) as caught:
        await upload(farmers, offload, wrong, os.urandom(1000))
    assert all(r.startswith("bad-target") for r in caught.value.failures.values())
    assert not [r for r in farmers.requests if r.address in {f.address for f in wrong.farmers[:3]}]


async def test_put_pieces_needs_nothing_more_than_success(
    farmers: MemoryFarmers, bridge: PipelineBridge
) -> None:
    """With success == n nothing is cancelled; with fewer targets than success it fails."""
    from metadisk.core.merkle import digest_piece

    pieces = [os.urandom(100) for _ in range(10)]
    digests = [digest_piece(p) for p in pieces]
    targets = await bridge.begin_segment(0, 400)
    receipts = await put_pieces(
        farmers, targets, lambda n: memoryview(pieces[n]), digests, success=10
    )
    assert sorted(receipts) == list(range(10))
    with pytest.raises(UploadFailed):
        await put_pieces(farmers, targets[:5], lambda n: memoryview(pieces[n]), digests, success=6)


class CountingOffload(Offload):
    """An offload that records how many buffers are leased at once."""

    def __init__(self) -> None:
        super().__init__(processes=False, workers=2)
        self.leased = 0
        self.peak = 0

    async def acquire(self, size: int) -> SegmentBuffer:
        self.leased += 1
        self.peak = max(self.peak, self.leased)
        return await super().acquire(size)

    async def release(self, buffer: SegmentBuffer) -> None:
        self.leased -= 1
        await super().release(buffer)


async def test_memory_stays_bounded_whatever_the_size(
    farmers: MemoryFarmers, bridge: PipelineBridge
) -> None:
    counting = CountingOffload()
    try:
        config = UploadConfig(segments_in_flight=3, segments_uploading=2)
        data = os.urandom(12 * SEGMENT)
        assert await upload(farmers, counting, bridge, data, config=config) == 12
        assert counting.peak <= 3
        assert counting.leased == 0
    finally:
        await counting.aclose()


async def test_a_failure_releases_every_buffer(
    farmers: MemoryFarmers, bridge: PipelineBridge
) -> None:
    counting = CountingOffload()

    class FailingBridge(PipelineBridge):
        async def begin_segment(self, index: int, size: int) -> Sequence[PieceTarget]:
            if index == 3:
                raise RuntimeError("bridge fell over")
            return await super().begin_segment(index, size)

    failing = FailingBridge(bridge.farmers, LOCAL, bridge.identity)
    try:
        with pytest.raises(RuntimeError, match="fell over"):
            await upload(farmers, counting, failing, os.urandom(8 * SEGMENT))
        assert counting.leased == 0
    finally:
        await counting.aclose()


async def interrupted_upload(
    farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge, data: bytes, stop_at: int
) -> dict[int, SegmentKey]:
    """Upload until segment `stop_at` fails; return what the bridge committed."""

    async def handler(request: Request) -> None:
        if request.method == "PUT" and request.limit.piece_id in stop_ids:
            raise PieceError("network down", code="connection-failed")

    original = bridge.begin_segment
    stop_ids: set[bytes] = set()

    async def begin(index: int, size: int) -> Sequence[PieceTarget]:
        targets = await original(index, size)
        if index >= stop_at:
            stop_ids.update(t.limit.piece_id for t in targets)
        return targets

    bridge.begin_segment = begin  # type: ignore[method-assign]
    bridge.farmers = bridge.farmers[:10]
    farmers.handler = handler
    config = UploadConfig(segments_in_flight=2, segments_uploading=1)
    with pytest.raises(UploadFailed):
        await upload(farmers, offload, bridge, data, config=config)
    farmers.handler = None
    bridge.begin_segment = original  # type: ignore[method-assign]
    return {i: SegmentKey.decode(s.encrypted_key) for i, s in bridge.committed.items()}


async def test_resume_sends_only_the_missing_segments(
    farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge
) -> None:
    data = os.urandom(5 * SEGMENT + 99)
    committed = await interrupted_upload(farmers, offload, bridge, data, stop_at=3)
    assert sorted(committed) == [0, 1, 2]
    puts_before = sum(r.method == "PUT" for r in farmers.requests)
    await upload(farmers, offload, bridge, data, committed=committed)
    puts = sum(r.method == "PUT" for r in farmers.requests) - puts_before
    assert puts == 3 * LOCAL.n  # segments 3, 4, 5 only
    assert await download(farmers, offload, bridge) == data


@pytest.mark.parametrize("change", ["edited", "shorter"])
async def test_resume_refuses_a_changed_source(
    farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge, change: str
) -> None:
    data = os.urandom(4 * SEGMENT)
    committed = await interrupted_upload(farmers, offload, bridge, data, stop_at=2)
    if change == "edited":
        changed = data[: SEGMENT + 10] + b"x" + data[SEGMENT + 11 :]
    else:
        changed = data[:SEGMENT]
    with pytest.raises(ResumeMismatch):
        await upload(farmers, offload, bridge, changed, committed=committed)


async def test_resume_refuses_segments_stored_under_another_key(
    farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge
) -> None:
    data = os.urandom(3 * SEGMENT)
    committed = await interrupted_upload(farmers, offload, bridge, data, stop_at=1)
    foreign = {
        i: SegmentKey.seal(bytes(32), i, os.urandom(32), k.plaintext_tag)
        for i, k in committed.items()
    }
    with pytest.raises(ResumeMismatch, match="another key"):
        await upload(farmers, offload, bridge, data, committed=foreign)


async def test_sources_of_every_kind(
    farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge, tmp_path: object
) -> None:
    import io
    import pathlib

    data = os.urandom(2 * SEGMENT + 7)
    path = pathlib.Path(str(tmp_path)) / "f.bin"
    path.write_bytes(data)

    async def chunks() -> object:
        for i in range(0, len(data), 10_000):
            yield data[i : i + 10_000]

    for source in (path, str(path), io.BytesIO(data), chunks(), bytearray(data)):
        fresh = PipelineBridge(bridge.farmers, LOCAL, bridge.identity)
        reader = SourceReader.open(source)  # type: ignore[arg-type]
        try:
            summary = await UploadPipeline(farmers, offload).run(
                reader, object_key=KEY, scheme=LOCAL, segment_size=SEGMENT, coordinator=fresh
            )
        finally:
            await reader.aclose()
        assert summary.plaintext_size == len(data)
        assert await download(farmers, offload, fresh) == data


# -- routing around hung farmers, and what the bridge is told ----------------------------------


def never_answer(addresses: set[str]) -> Callable[[Request], Awaitable[None]]:
    async def handler(request: Request) -> None:
        if request.address in addresses:
            await asyncio.Event().wait()

    return handler


async def test_every_attempt_is_reported_with_the_segment(
    farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge
) -> None:
    broken, hanging = farmers.farmers[0], farmers.farmers[9]

    async def handler(request: Request) -> None:
        if request.address == broken.address:
            raise PieceError("disk on fire", code="internal", status=500)
        if request.address == hanging.address:
            await asyncio.Event().wait()

    farmers.handler = handler
    await upload(farmers, offload, bridge, os.urandom(1000))
    segment = bridge.committed[0]
    by_node = {o.node_id: o for o in segment.outcomes}
    assert by_node[broken.node_id].outcome == "failed"
    assert by_node[broken.node_id].code == "internal"
    assert by_node[hanging.node_id].outcome == "slow"  # cancelled once o pieces were in
    stored = [o for o in segment.outcomes if o.outcome == "success"]
    assert sorted(o.piece_number for o in stored) == sorted(segment.receipts)
    assert {o.node_id for o in stored} == {r.node_id for r in segment.receipts.values()}
    assert all(o.latency_ms >= 0 for o in segment.outcomes)


async def test_farmers_that_timed_out_are_replaced_at_once_in_later_segments(
    farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge
) -> None:
    """Three farmers time out in segment 0 (one more than n - o: the segment needs one of
    them) and hang from then on. Later segments do not wait for them to lag: as suspects they
    count as laggards from the start, and one is replaced at once."""
    hung = {f.address: number for number, f in enumerate(farmers.farmers[:3])}
    seen: set[str] = set()

    async def handler(request: Request) -> None:
        if request.address in hung:
            if request.address not in seen:
                seen.add(request.address)
                raise PieceError("farmer did not answer", code="timeout")
            await asyncio.Event().wait()

    farmers.handler = handler
    suspects = Suspects()
    patient = replace(QUICK, replace_laggards=LongTail(factor=1, floor=60), abandon_laggards=None)
    pipeline = UploadPipeline(farmers, offload, patient, suspects=suspects)
    async with asyncio.timeout(30):  # generous: waiting for the laggard line takes a minute
        summary = await pipeline.run(
            SourceReader.open(os.urandom(3 * SEGMENT)),
            object_key=KEY,
            scheme=LOCAL,
            segment_size=SEGMENT,
            coordinator=bridge,
        )
    assert summary.segment_count == 3
    assert all(farmers.farmers[n].node_id in suspects for n in hung.values())
    for index in (1, 2):
        (asked,) = [numbers for i, numbers in bridge.replaced if i == index]
        assert len(asked) == 1 and set(asked) < set(hung.values())
        stored = {bridge.placements[index][n].address for n in bridge.committed[index].receipts}
        assert not stored & set(hung)


async def test_a_suspect_is_still_sent_to_when_no_other_farmer_can_be_had(
    farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge
) -> None:
    bridge.farmers = bridge.farmers[:10]  # no spare farmer
    suspect = farmers.farmers[3]
    suspects = Suspects()
    suspects.add(suspect.node_id, "timeout")  # it failed before, and is fine again now
    full = {farmers.farmers[0].address, farmers.farmers[1].address}

    async def handler(request: Request) -> None:
        if request.address in full:  # so that the segment needs the suspect's piece
            raise PieceError("full", code="insufficient-storage", status=507)

    farmers.handler = handler
    pipeline = UploadPipeline(farmers, offload, QUICK, suspects=suspects)
    await pipeline.run(
        SourceReader.open(os.urandom(1000)),
        object_key=KEY,
        scheme=LOCAL,
        segment_size=SEGMENT,
        coordinator=bridge,
    )
    assert bridge.placements[0][3] == suspect and 3 in bridge.committed[0].receipts
    assert suspect.node_id not in suspects  # it stored its piece: no longer a suspect


async def test_laggards_the_segment_needs_are_replaced_while_they_go_on(
    farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge
) -> None:
    hanging = {f.address for f in farmers.farmers[:3]}  # one more than n - o: one is needed
    farmers.handler = never_answer(hanging)
    async with asyncio.timeout(30):  # generous: only to catch a hang
        await upload(farmers, offload, bridge, os.urandom(1000), config=QUICK)
    segment = bridge.committed[0]
    assert len(segment.receipts) == LOCAL.o
    assert not {bridge.placements[0][n].address for n in segment.receipts} & hanging
    assert bridge.replaced and len(bridge.replaced[0][1]) == 1
    superseded = [o for o in segment.outcomes if o.outcome == "slow" and o.code == "slow"]
    assert superseded  # the replaced laggard, its farmer now a suspect


async def test_hung_farmers_the_network_cannot_spare_fail_the_upload_clearly(
    farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge
) -> None:
    bridge.farmers = bridge.farmers[:10]  # nothing to replace them with
    farmers.handler = never_answer({f.address for f in farmers.farmers[:3]})
    with pytest.raises(UploadFailed) as caught:
        async with asyncio.timeout(30):  # generous: without giving up, this never ends
            await upload(farmers, offload, bridge, os.urandom(1000), config=QUICK)
    assert sorted(caught.value.failures) == [0, 1, 2]
    assert all(reason.startswith("slow") for reason in caught.value.failures.values())
    assert "segment 0" in str(caught.value) and "0 slow" in str(caught.value)
    assert not bridge.committed


class ReplacingAfterTheFact(PipelineBridge):
    """A bridge that answers a replacement request only once the laggard has stored its piece
    after all, and then either replaces it (its receipt must not be used) or has no farmer."""

    grant = True
    landed: asyncio.Event

    async def replace_pieces(
        self, index: int, failed: Sequence[PieceTarget]
    ) -> Sequence[PieceTarget]:
        await self.landed.wait()
        await asyncio.sleep(0.05)  # the pipeline sees the laggard's receipt first
        if not self.grant:
            raise BridgeUnavailable("no node", code="not-enough-nodes", status=503)
        return await super().replace_pieces(index, failed)


@pytest.mark.parametrize("grant", [True, False])
async def test_a_laggard_that_lands_while_it_is_being_replaced(
    farmers: MemoryFarmers, bridge: PipelineBridge, grant: bool
) -> None:
    """Once a replacement is asked for, the bridge may void the laggard's order limit: a receipt
    it sends meanwhile waits for the bridge's answer, and counts only if nothing replaced it."""
    from metadisk.core.merkle import digest_piece

    lagging = ReplacingAfterTheFact(bridge.farmers, LOCAL, bridge.identity)
    lagging.grant = grant
    lagging.landed = asyncio.Event()
    slow = farmers.farmers[0]

    async def handler(request: Request) -> None:
        if request.address == slow.address:
            await asyncio.sleep(0.3)
            lagging.landed.set()

    farmers.handler = handler
    pieces = [os.urandom(100) for _ in range(10)]
    targets = await lagging.begin_segment(0, 400)

    async def replace(failed: Sequence[PieceTarget]) -> Sequence[PieceTarget]:
        return await lagging.replace_pieces(0, failed)

    receipts = await put_pieces(
        farmers,
        targets,
        lambda n: memoryview(pieces[n]),
        [digest_piece(p) for p in pieces],
        success=10,  # every piece needed: the laggard too
        replace=replace,
        max_replacements=10,
        replace_after=LongTail(factor=1.0, floor=0.05),
    )
    expected = lagging.placements[0][0]  # the spare if replaced, else the slow farmer
    assert (expected == slow) is not grant
    assert receipts[0].node_id == expected.node_id
    receipts[0].verify_signature(expected.public_key)


async def test_parts_keep_their_indices_and_read_back_as_one(
    farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge
) -> None:
    """Segments of parts stored apart, at sparse first indices and out of order, read back as
    one object in index order, whole and in ranges across the parts' boundaries; an empty part
    stores no segment."""
    slot = 1 << 17
    parts = [os.urandom(SEGMENT + 1000), b"", os.urandom(SEGMENT // 3), os.urandom(2 * SEGMENT)]
    pipeline = UploadPipeline(farmers, offload, QUICK)
    for number in (3, 1, 0, 2):
        summary = await pipeline.run(
            SourceReader.open(parts[number]),
            object_key=KEY,
            scheme=LOCAL,
            segment_size=SEGMENT,
            coordinator=bridge,
            first_index=number * slot,
            empty_segment=False,
        )
        count = -(-len(parts[number]) // SEGMENT)
        assert (summary.segment_count, summary.plaintext_size) == (count, len(parts[number]))
    assert sorted(bridge.committed) == [0, 1, 2 * slot, 3 * slot, 3 * slot + 1]
    data = b"".join(parts)
    assert await download(farmers, offload, bridge) == data
    reader = DownloadPipeline(farmers, offload)
    for offset, length in [
        (SEGMENT - 5, 2000),
        (SEGMENT + 990, SEGMENT // 3 + 20),
        (7, len(data) - 9),
    ]:
        out = bytearray()
        chunks = reader.chunks(
            bridge.segments(),
            object_key=KEY,
            scheme=LOCAL,
            coordinator=bridge,
            offset=offset,
            length=length,
        )
        async with contextlib.aclosing(chunks):
            async for view in chunks:
                out += view
        assert bytes(out) == data[offset : offset + length]
