"""Objects assembled from parts: a commit that names its segments (sparse indices), dropping
the upload's others, on SQLite and on PostgreSQL.

The bridge's services run in this process on a real database with a clock the test moves (the
harness of test_chores); farmers are HTTP doubles that check every DELETE order limit.
"""

# ruff: noqa: F811  (the fixtures imported from test_chores are parameters of the tests here)
from __future__ import annotations

import pytest

from metadisk.bridge import errors
from metadisk.bridge.auth.service import Access
from metadisk.bridge.peer import Bridge
from metadisk.core.encoding import b64encode
from metadisk.wire.api.objects import MAX_SEGMENT_INDEX
from tests.bridge.helpers import FarmerFleet
from tests.bridge.test_chores import (  # noqa: F401  (bridge, clock and fleet are fixtures)
    Clock,
    _access,
    _checkin,
    _deleted,
    bridge,
    clock,
    fleet,
)

SLOT = 1 << 17  # indices per part, as the S3 gateway spaces them
SEGMENT = 400  # encrypted bytes of every segment here
PLAIN = 300


def _store(
    bridge: Bridge, access: Access, fleet: FarmerFleet, clock: Clock, stream: bytes, index: int
) -> set[bytes]:
    """Begin and commit segment `index` of an upload, farmers played by `fleet`; its pieces."""
    orders = bridge.api.uploads.begin_segment(access, stream, index, SEGMENT, 128, clock.now)
    receipts = [
        b64encode(
            fleet.by_node(o.order_limit.node_id.hex())
            .receipt(b64encode(o.order_limit.encode()))
            .encode()
        )
        for o in orders.orders
    ]
    bridge.api.uploads.commit_segment(
        access, stream, index, receipts, PLAIN, f"key {index}".encode(), clock.now
    )
    return {o.order_limit.piece_id for o in orders.orders}


async def _ready(bridge: Bridge, fleet: FarmerFleet, clock: Clock) -> Access:
    await _checkin(bridge, fleet, clock)
    return await _access(bridge, clock)


async def test_commit_keeps_the_listed_segments_and_drops_the_rest(
    bridge: Bridge, fleet: FarmerFleet, clock: Clock
) -> None:
    access = await _ready(bridge, fleet, clock)
    uploads = bridge.api.uploads
    stream = uploads.begin_object(access, "bucket", "cGFydHM", clock.now).stream_id
    # Part 1 in slot 0 (two segments), part 2 in slot 2, then part 2 again in slot 1 (a retry:
    # slot 2's copy is left out), and a segment begun but never committed.
    kept = _store(bridge, access, fleet, clock, stream, 0)
    kept |= _store(bridge, access, fleet, clock, stream, 1)
    dropped = _store(bridge, access, fleet, clock, stream, 2 * SLOT)
    kept |= _store(bridge, access, fleet, clock, stream, SLOT)
    pending = uploads.begin_segment(access, stream, 3 * SLOT, SEGMENT, 128, clock.now)
    dropped |= {o.order_limit.piece_id for o in pending.orders}
    assert bridge.worker.deletion_store.pending() == 0

    info = uploads.commit_object(access, stream, b"meta", clock.now, segments=[0, 1, SLOT])

    assert [s.index for s in info.segments] == [0, 1, SLOT]
    assert (info.segment_count, info.encrypted_size, info.plain_size) == (3, 1200, 900)
    read = bridge.api.objects.get_object(access, "bucket", "cGFydHM", clock.now)
    assert read.segments == info.segments
    assert [s.encrypted_metadata for s in read.segments] == [b"key 0", b"key 1", b"key 131072"]
    usage = bridge.api.objects.usage(access, clock.now)
    assert (usage.storage_bytes, usage.segments, usage.objects) == (1200, 3, 1)
    assert (usage.pending_uploads, usage.pending_storage, usage.pending_segments) == (0, 0, 0)
    # Every segment kept is readable by its own index; a dropped one is gone.
    orders = bridge.api.objects.download_segment(access, "bucket", "cGFydHM", SLOT, None, clock.now)
    assert orders.index == SLOT
    with pytest.raises(errors.NotFound) as gone:
        bridge.api.objects.download_segment(access, "bucket", "cGFydHM", 2 * SLOT, None, clock.now)
    assert gone.value.code == "segment-not-found"
    # The dropped segments' pieces, committed or only ordered, go to the farmers' deletes.
    assert bridge.worker.deletion_store.pending() == len(dropped)
    report = await bridge.worker.deletion_chore.trigger_and_wait()
    assert report.deleted == len(dropped)
    assert _deleted(fleet) == dropped
    assert not kept & dropped
    # Deleting the object then releases the kept ones, and no more.
    bridge.api.objects.delete_object(access, "bucket", "cGFydHM", clock.now)
    await bridge.worker.deletion_chore.trigger_and_wait()
    assert _deleted(fleet) == dropped | kept
    assert bridge.api.objects.usage(access, clock.now).storage_bytes == 0


async def test_a_commit_naming_a_segment_not_committed_is_refused(
    bridge: Bridge, fleet: FarmerFleet, clock: Clock
) -> None:
    access = await _ready(bridge, fleet, clock)
    uploads = bridge.api.uploads
    stream = uploads.begin_object(access, "bucket", "bWlzc2luZw", clock.now).stream_id
    _store(bridge, access, fleet, clock, stream, 5)
    uploads.begin_segment(access, stream, 9, SEGMENT, 128, clock.now)  # begun only

    def refusal(segments: list[int] | None) -> errors.BridgeError:
        with pytest.raises(errors.BridgeError) as refused:
            uploads.commit_object(access, stream, b"m", clock.now, segments=segments)
        return refused.value

    never = refusal([5, 7])
    assert (never.status, never.code) == (400, "segments-missing")
    assert "segment 7 " in never.message
    begun = refusal([5, 9])
    assert begun.code == "segments-missing" and "segment 9 " in begun.message
    # Without a list the object is segments 0, 1, ...: 0 is the first missing.
    contiguous = refusal(None)
    assert contiguous.code == "segments-missing" and "segment 0 " in contiguous.message
    assert refusal([]).code == "no-segments"
    for bad in ([5, 5], [9, 5], [MAX_SEGMENT_INDEX + 1], [-1]):
        assert (refusal(bad).status, refusal(bad).code) == (400, "invalid-request")
    # Refusals change nothing: the upload commits afterwards, dropping the begun segment.
    assert bridge.worker.deletion_store.pending() == 0
    info = uploads.commit_object(access, stream, b"m", clock.now, segments=[5])
    assert [s.index for s in info.segments] == [5]
    assert bridge.worker.deletion_store.pending() == 10


async def test_segment_indices_reach_the_nonce_range(
    bridge: Bridge, fleet: FarmerFleet, clock: Clock
) -> None:
    """The last index a signed 32-bit column holds is a segment's; one past it is refused."""
    access = await _ready(bridge, fleet, clock)
    uploads = bridge.api.uploads
    stream = uploads.begin_object(access, "bucket", "aGlnaA", clock.now).stream_id
    _store(bridge, access, fleet, clock, stream, MAX_SEGMENT_INDEX)
    with pytest.raises(errors.InvalidRequest):
        uploads.begin_segment(access, stream, MAX_SEGMENT_INDEX + 1, SEGMENT, 128, clock.now)
    info = uploads.commit_object(access, stream, b"m", clock.now, segments=[MAX_SEGMENT_INDEX])
    assert [s.index for s in info.segments] == [MAX_SEGMENT_INDEX]


async def test_sparse_objects_move_copy_and_share_pieces(
    bridge: Bridge, fleet: FarmerFleet, clock: Clock
) -> None:
    access = await _ready(bridge, fleet, clock)
    uploads, objects = bridge.api.uploads, bridge.api.objects
    stream = uploads.begin_object(access, "bucket", "c3BhcnNl", clock.now).stream_id
    pieces = _store(bridge, access, fleet, clock, stream, 3)
    pieces |= _store(bridge, access, fleet, clock, stream, 2 * SLOT)
    uploads.commit_object(access, stream, b"m", clock.now, segments=[3, 2 * SLOT])
    rekeyed = [(3, b"re 3"), (2 * SLOT, b"re 2 slots")]
    copied = objects.relocate(
        access, "bucket", "c3BhcnNl", None, "bucket", "Y29weQ", b"c", rekeyed, clock.now, copy=True
    )
    assert [(s.index, s.encrypted_metadata) for s in copied.segments] == rekeyed
    with pytest.raises(errors.InvalidRequest) as contiguous:  # indices must be the object's
        objects.relocate(
            access, "bucket", "c3BhcnNl", None, "bucket", "eA", b"c", [(0, b""), (1, b"")],
            clock.now, copy=False,
        )  # fmt: skip
    assert contiguous.value.code == "segments-mismatch"
    moved = objects.relocate(
        access, "bucket", "Y29weQ", None, "bucket", "bW92ZWQ", b"v", rekeyed, clock.now, copy=False
    )
    assert [s.index for s in moved.segments] == [3, 2 * SLOT]
    objects.delete_object(access, "bucket", "c3BhcnNl", clock.now)
    assert bridge.worker.deletion_store.pending() == 0  # the moved copy still holds them
    objects.delete_object(access, "bucket", "bW92ZWQ", clock.now)
    assert bridge.worker.deletion_store.pending() == len(pieces)
