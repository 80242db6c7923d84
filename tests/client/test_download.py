"""Unit tests of the download pipeline over in-memory farmers and the bridge double."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metadisk.client.download import DownloadConfig, DownloadPipeline, PieceSource, plan_spans
from metadisk.client.errors import BridgeError, DownloadFailed, IntegrityFailure, PieceError
from metadisk.client.farmer_transport import LongTail, Suspects
from metadisk.client.offload import Offload
from metadisk.core.content import BLOCK_SIZE, TAG_SIZE
from metadisk.core.erasure import LOCAL
from tests.client.doubles import MemoryFarmers, PipelineBridge, Request
from tests.client.test_upload import KEY, SEGMENT, CountingOffload, upload


async def read(
    farmers: MemoryFarmers,
    offload: Offload,
    bridge: PipelineBridge,
    offset: int = 0,
    length: int | None = None,
    *,
    config: DownloadConfig | None = None,
    key: bytes = KEY,
) -> bytes:
    pipeline = DownloadPipeline(farmers, offload, config)
    out = bytearray()
    async with contextlib.aclosing(
        pipeline.chunks(
            bridge.segments(),
            object_key=key,
            scheme=LOCAL,
            coordinator=bridge,
            offset=offset,
            length=length,
        )
    ) as chunks:
        async for view in chunks:
            out += view
    return bytes(out)


UNHEDGED = DownloadConfig(extra_pieces=0)


def gets(farmers: MemoryFarmers) -> list[Request]:
    return [r for r in farmers.requests if r.method == "GET"]


@pytest.fixture
async def stored(farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge) -> bytes:
    data = os.urandom(3 * SEGMENT + 4321)
    await upload(farmers, offload, bridge, data)
    farmers.requests.clear()
    return data


def holder(bridge: PipelineBridge, index: int, number: int) -> tuple[str, bytes]:
    receipt = bridge.committed[index].receipts[number]
    return bridge.placements[index][number].address, receipt.piece_id


async def test_all_data_pieces_back_means_only_k_fetches(
    farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge, stored: bytes
) -> None:
    assert await read(farmers, offload, bridge, config=UNHEDGED) == stored
    numbers = [bridge_number(bridge, r) for r in gets(farmers)]
    assert sorted(numbers) == sorted(list(range(LOCAL.k)) * 4)  # 4 segments, data pieces only
    assert not any(r.ranged for r in gets(farmers))


def bridge_number(bridge: PipelineBridge, request: Request) -> int:
    for segment in bridge.committed.values():
        for number, receipt in segment.receipts.items():
            if receipt.piece_id == request.limit.piece_id:
                return number
    raise AssertionError("unknown piece")


async def test_a_failed_data_piece_is_rebuilt_from_a_spare(
    farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge, stored: bytes
) -> None:
    address, _ = holder(bridge, 1, 2)

    async def handler(request: Request) -> None:
        if request.address == address:
            raise PieceError("offline", code="connection-failed")

    farmers.handler = handler
    assert await read(farmers, offload, bridge) == stored
    assert LOCAL.k in [bridge_number(bridge, r) for r in gets(farmers)]


async def test_a_corrupted_piece_is_skipped_and_reported(
    farmers: MemoryFarmers,
    offload: Offload,
    bridge: PipelineBridge,
    stored: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    farmers.corrupt(*holder(bridge, 0, 0))
    with caplog.at_level(logging.INFO, logger="metadisk.client.transfers"):
        assert await read(farmers, offload, bridge) == stored
    # A corrupt piece is a warning in the log, naming the piece and its code.
    (record,) = [r for r in caplog.records if r.getMessage() == "routed around a farmer"]
    assert record.levelno == logging.WARNING
    assert record.fields["code"] == "bad-piece" and record.fields["piece"] == 0
    assert all(exclude == [] for _, exclude in bridge.downloads)  # the two spares were enough
    bad = range(LOCAL.n - LOCAL.k + 1)  # one more than can be lost
    for number in bad[1:]:  # piece 0 is bad already
        farmers.corrupt(*holder(bridge, 0, number))
    with pytest.raises(DownloadFailed) as caught:
        await read(farmers, offload, bridge)
    assert caught.value.code == "segment-unavailable"
    assert sorted(caught.value.failures) == list(bad)  # named, each of them
    assert all(r.startswith("bad-piece") for r in caught.value.failures.values())
    assert str(list(bad)[-1]) in str(caught.value)


async def test_more_pieces_are_asked_for_until_k_are_good(
    farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge, stored: bytes
) -> None:
    bad = range(LOCAL.n - LOCAL.k)  # as many as can be lost: far more than the two spares
    for number in bad:
        farmers.corrupt(*holder(bridge, 1, number))
    bridge.downloads.clear()
    assert await read(farmers, offload, bridge) == stored
    asked = [exclude for index, exclude in bridge.downloads if index == 1]
    assert asked[0] == [] and len(asked) > 1  # the first request, then requests for more
    assert all(set(before) < set(after) for before, after in itertools.pairwise(asked))
    assert all(exclude == [] for index, exclude in bridge.downloads if index != 1)


async def test_hedged_fetches_are_cancelled_once_k_pieces_are_in(
    farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge, stored: bytes
) -> None:
    slow = {holder(bridge, i, LOCAL.k)[0] for i in range(4)}  # the first spare never answers

    async def handler(request: Request) -> None:
        if request.address in slow:
            await asyncio.Event().wait()

    farmers.handler = handler
    config = DownloadConfig(extra_pieces=1, hedge_delay=None)  # the hedge starts at once
    assert await read(farmers, offload, bridge, config=config) == stored
    assert farmers.cancelled == 4


async def test_a_wrong_object_key_is_an_integrity_failure(
    farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge, stored: bytes
) -> None:
    with pytest.raises(IntegrityFailure):
        await read(farmers, offload, bridge, key=bytes(32))


async def test_a_segment_key_handed_out_for_another_segment_does_not_open(
    farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge, stored: bytes
) -> None:
    # A bridge swapping two segments' encrypted keys: each key is bound to its segment's index.
    first, second = bridge.committed[0], bridge.committed[1]
    bridge.committed[0] = replace(first, encrypted_key=second.encrypted_key)
    bridge.committed[1] = replace(second, encrypted_key=first.encrypted_key)
    with pytest.raises(IntegrityFailure, match="segment 0: its key does not open"):
        await read(farmers, offload, bridge)


async def test_a_range_fetches_only_the_blocks_it_needs(
    farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge, stored: bytes
) -> None:
    offset = SEGMENT + 100  # segment 1, block 0: all in data piece 0 (later blocks straddle two)
    assert await read(farmers, offload, bridge, offset, 50) == stored[offset : offset + 50]
    requests = gets(farmers)
    assert len(requests) == 1 and requests[0].ranged
    assert requests[0].length == BLOCK_SIZE + TAG_SIZE


async def test_a_range_across_pieces_and_segments(
    farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge, stored: bytes
) -> None:
    offset, length = SEGMENT - 1000, SEGMENT + 2000
    assert await read(farmers, offload, bridge, offset, length) == stored[offset : offset + length]
    fetched = sum(r.length for r in gets(farmers))
    assert fetched < length + 4 * (BLOCK_SIZE + TAG_SIZE) + 3 * 64  # no whole segments


async def test_a_range_falls_back_to_the_whole_segment(
    farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge, stored: bytes
) -> None:
    address, _ = holder(bridge, 0, 1)

    async def handler(request: Request) -> None:
        if request.address == address and request.ranged:
            raise PieceError("no ranges here", code="range-not-satisfiable")

    farmers.handler = handler
    offset = 70_000  # block 1 of segment 0: in data piece 1
    assert await read(farmers, offload, bridge, offset, 10) == stored[offset : offset + 10]
    assert [r for r in gets(farmers) if not r.ranged]


async def test_a_corrupted_range_is_caught_by_its_tag_and_refetched(
    farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge, stored: bytes
) -> None:
    farmers.corrupt(*holder(bridge, 2, 1))  # flips a byte in the middle of data piece 1
    offset = 2 * SEGMENT + SEGMENT // 4 + SEGMENT // 8  # the middle of piece 1 of segment 2
    got = await read(farmers, offload, bridge, offset, 64, config=UNHEDGED)
    assert got == stored[offset : offset + 64]
    requests = gets(farmers)
    assert requests[0].ranged  # first the blocks alone, whose tag fails,
    assert (
        len([r for r in requests if not r.ranged]) == LOCAL.k + 1
    )  # then the segment, less piece 1


@settings(max_examples=25)
@given(data=st.data())
async def test_any_range_reads_back(data: st.DataObject) -> None:
    from metadisk.core.identity import Identity

    identity = Identity.generate()
    farmers = MemoryFarmers(10, identity)
    bridge = PipelineBridge(list(farmers.farmers), LOCAL, identity)
    offload = Offload(processes=False, workers=1)
    try:
        size = data.draw(st.integers(1, 2 * SEGMENT + 3000))
        content = os.urandom(size)
        await upload(farmers, offload, bridge, content)
        offset = data.draw(st.integers(0, size - 1))
        length = data.draw(st.integers(1, size - offset))
        assert (
            await read(farmers, offload, bridge, offset, length)
            == content[offset : offset + length]
        )
    finally:
        await offload.aclose()


async def test_read_ahead_is_bounded(farmers: MemoryFarmers, bridge: PipelineBridge) -> None:
    counting = CountingOffload()
    try:
        data = os.urandom(10 * SEGMENT)
        await upload(farmers, counting, bridge, data)
        counting.peak = 0
        config = DownloadConfig(read_ahead=2)
        pipeline = DownloadPipeline(farmers, counting, config)
        out = bytearray()
        async with contextlib.aclosing(
            pipeline.chunks(bridge.segments(), object_key=KEY, scheme=LOCAL, coordinator=bridge)
        ) as chunks:
            async for view in chunks:
                await asyncio.sleep(0)  # a consumer that lets the fetchers run ahead
                out += view
        assert bytes(out) == data
        assert counting.peak <= 3
        assert counting.leased == 0
    finally:
        await counting.aclose()


async def test_stopping_early_releases_every_buffer(
    farmers: MemoryFarmers, bridge: PipelineBridge
) -> None:
    counting = CountingOffload()
    try:
        await upload(farmers, counting, bridge, os.urandom(6 * SEGMENT))
        pipeline = DownloadPipeline(farmers, counting)
        async with contextlib.aclosing(
            pipeline.chunks(bridge.segments(), object_key=KEY, scheme=LOCAL, coordinator=bridge)
        ) as chunks:
            async for _ in chunks:
                break
        assert counting.leased == 0
    finally:
        await counting.aclose()


def test_plan_spans() -> None:
    from metadisk.client.download import SegmentInfo

    segments = [SegmentInfo(i, size, 0, b"") for i, size in enumerate([10, 10, 5])]
    spans = plan_spans(segments, 5, 10)
    assert [(s.segment.index, s.offset, s.length) for s in spans] == [(0, 5, 5), (1, 0, 5)]
    assert [s.length for s in plan_spans(segments, 0, None)] == [10, 10, 5]
    assert plan_spans(segments, 25, None) == []
    assert [s.whole for s in plan_spans(segments, 10, 10)] == [True]


async def test_a_bridge_with_no_more_pieces_online_ends_in_the_bad_pieces(
    farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge, stored: bytes
) -> None:
    async def unavailable(index: int, exclude: Collection[int] = ()) -> Sequence[PieceSource]:
        if exclude:
            raise BridgeError("3 pieces online, 4 needed", code="segment-unavailable", status=503)
        return await PipelineBridge.download_segment(bridge, index)

    bridge.download_segment = unavailable  # type: ignore[method-assign]
    for number in range(3):  # one more than the two spares cover
        farmers.corrupt(*holder(bridge, 2, number))
    with pytest.raises(DownloadFailed) as caught:
        await read(farmers, offload, bridge)
    assert sorted(caught.value.failures) == [0, 1, 2]


# -- hedging, hung farmers and what the bridge is told ----------------------------------------

QUICK = DownloadConfig(read_ahead=1, hedge_laggards=LongTail(factor=1.0, floor=0.05))


def hang(addresses: set[str]) -> Callable[[Request], Awaitable[None]]:
    async def handler(request: Request) -> None:
        if request.address in addresses:
            await asyncio.Event().wait()

    return handler


async def test_downloads_hedge_by_default(
    farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge, stored: bytes
) -> None:
    """k + 2 fetches, the two hedges from the moment the first piece is in: two hung farmers
    among them cost nothing, not even a timeout."""
    hung = {holder(bridge, i, 0)[0] for i in range(4)} | {holder(bridge, i, 1)[0] for i in range(4)}
    farmers.handler = hang(hung)
    config = DownloadConfig(hedge_laggards=None)  # the hedge alone, no help from laggards
    async with asyncio.timeout(30):  # generous: without the hedge this never ends
        assert await read(farmers, offload, bridge, config=config) == stored
    per_segment = len(gets(farmers)) / len(bridge.committed)
    assert per_segment == LOCAL.k + 2
    assert farmers.cancelled == 2 * len(bridge.committed)
    assert all(exclude == [] for _, exclude in bridge.downloads)  # no extra bridge calls


async def test_laggards_get_other_sources_from_the_bridge(
    farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge, stored: bytes
) -> None:
    """Four hung farmers among the six sources of a segment: after the laggard line the
    bridge is asked for more, and the hung fetches give up their slots."""
    hung = {holder(bridge, 0, number)[0] for number in range(4)}  # every data piece
    farmers.handler = hang(hung)
    async with asyncio.timeout(30):
        assert await read(farmers, offload, bridge, config=QUICK) == stored
    asked = [exclude for index, exclude in bridge.downloads if index == 0]
    assert len(asked) > 1 and set(asked[1]) >= {0, 1, 2, 3}


async def test_a_farmer_that_timed_out_is_fetched_from_last(
    farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge, stored: bytes
) -> None:
    # The bridge double puts piece i of every segment on farmer i.
    timing_out = holder(bridge, 0, 0)[0]
    assert all(holder(bridge, i, 0)[0] == timing_out for i in range(4))

    async def handler(request: Request) -> None:
        if request.address == timing_out:
            raise PieceError("farmer did not answer", code="timeout")

    farmers.handler = handler
    suspects = Suspects()
    pipeline = DownloadPipeline(farmers, offload, QUICK, suspects=suspects)
    out = bytearray()
    chunks = pipeline.chunks(bridge.segments(), object_key=KEY, scheme=LOCAL, coordinator=bridge)
    async with contextlib.aclosing(chunks):
        async for view in chunks:
            out += view
    assert bytes(out) == stored
    assert sum(r.address == timing_out for r in gets(farmers)) == 1  # segment 0 only
    assert holder(bridge, 0, 0)[0] in {f.address for f in farmers.farmers}
    assert farmers.farmers[0].node_id in suspects


async def test_suspects_are_still_fetched_from_when_nothing_else_is_left(
    farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge, stored: bytes
) -> None:
    suspects = Suspects()
    for farmer in farmers.farmers[: LOCAL.n - 1]:  # all but one of the ten holding pieces
        suspects.add(farmer.node_id, "timeout")
    pipeline = DownloadPipeline(farmers, offload, QUICK, suspects=suspects)
    out = bytearray()
    chunks = pipeline.chunks(bridge.segments(), object_key=KEY, scheme=LOCAL, coordinator=bridge)
    async with contextlib.aclosing(chunks):
        async for view in chunks:
            out += view
    assert bytes(out) == stored
    assert len(suspects) < LOCAL.n - 1  # those that answered are suspects no more


async def test_each_segment_is_reported_with_its_outcomes(
    farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge, stored: bytes
) -> None:
    farmers.corrupt(*holder(bridge, 1, 2))
    assert await read(farmers, offload, bridge, config=UNHEDGED) == stored
    reports = dict(bridge.reports)
    assert sorted(reports) == sorted(bridge.committed)
    for index, outcomes in reports.items():
        good = [o for o in outcomes if o.outcome == "success"]
        assert len(good) == LOCAL.k
        for outcome in good:
            farmer = bridge.placements[index][outcome.piece_number]
            assert outcome.node_id == farmer.node_id
    (bad,) = [o for o in reports[1] if o.outcome == "bad-piece"]
    assert (bad.piece_number, bad.code) == (2, "bad-piece")


async def test_hedges_come_from_the_bridge_when_suspects_hold_the_spares(
    farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge, stored: bytes
) -> None:
    """The two spares the bridge offers sit on suspects, and a data piece's farmer hangs (not
    known yet): other pieces are asked for, to hedge with, rather than waiting on the hung one
    (no laggard line here to end that wait)."""
    suspects = Suspects()
    for number in (4, 5):  # the bridge double puts piece i of every segment on farmer i
        suspects.add(farmers.farmers[number].node_id, "timeout")
    farmers.handler = hang({farmers.farmers[0].address})
    config = DownloadConfig(hedge_laggards=None)
    pipeline = DownloadPipeline(farmers, offload, config, suspects=suspects)
    out = bytearray()
    chunks = pipeline.chunks(bridge.segments(), object_key=KEY, scheme=LOCAL, coordinator=bridge)
    async with asyncio.timeout(30), contextlib.aclosing(chunks):  # generous: else it hangs
        async for view in chunks:
            out += view
    assert bytes(out) == stored
    assert {index for index, exclude in bridge.downloads if exclude} == set(bridge.committed)
    fetched = {r.address for r in gets(farmers)}
    assert not fetched & {farmers.farmers[4].address, farmers.farmers[5].address}


async def test_hedges_start_after_a_delay_when_no_piece_comes(
    farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge, stored: bytes
) -> None:
    """Every data piece's farmer hung: no piece lands to start the hedges, the delay does."""
    farmers.handler = hang({holder(bridge, 0, number)[0] for number in range(LOCAL.k)})
    config = DownloadConfig(hedge_delay=0.05, hedge_laggards=LongTail(factor=1.0, floor=0.05))
    async with asyncio.timeout(30):  # generous: without the delay this waits forever
        assert await read(farmers, offload, bridge, config=config) == stored


async def test_a_range_reports_its_fetches_and_avoids_suspects(
    farmers: MemoryFarmers, offload: Offload, bridge: PipelineBridge, stored: bytes
) -> None:
    offset = SEGMENT + 100  # segment 1, block 0: in data piece 0
    assert await read(farmers, offload, bridge, offset, 50) == stored[offset : offset + 50]
    ((index, outcomes),) = bridge.reports
    assert index == 1 and [o.outcome for o in outcomes] == ["success"]
    suspects = Suspects()
    suspects.add(bridge.placements[1][0].node_id, "stalled")
    farmers.requests.clear()
    pipeline = DownloadPipeline(farmers, offload, UNHEDGED, suspects=suspects)
    out = bytearray()
    chunks = pipeline.chunks(
        bridge.segments(),
        object_key=KEY,
        scheme=LOCAL,
        coordinator=bridge,
        offset=offset,
        length=50,
    )
    async with contextlib.aclosing(chunks):
        async for view in chunks:
            out += view
    assert bytes(out) == stored[offset : offset + 50]
    assert not any(r.ranged for r in gets(farmers))  # the whole segment, without the suspect
    assert holder(bridge, 1, 0)[0] not in {r.address for r in gets(farmers)}
