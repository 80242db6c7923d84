"""The reclaim and piece deletion chores, driven in-process with pause() and trigger_and_wait().

The bridge's services run here on a real database (SQLite file, or PostgreSQL) with a clock the
test moves; farmers are HTTP doubles that check every DELETE order limit they receive.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from metadisk.bridge import errors
from metadisk.bridge.accounts.db import User
from metadisk.bridge.auth.service import Access
from metadisk.bridge.config import (
    AccountsConfig,
    BridgeConfig,
    ChoresConfig,
    DatabaseConfig,
    NodesConfig,
)
from metadisk.bridge.deletion.chore import DeletionReport
from metadisk.bridge.peer import Bridge
from metadisk.core.encoding import b64encode
from metadisk.core.identity import Identity
from tests.bridge.helpers import FarmerFleet


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fleet() -> Iterator[FarmerFleet]:
    farmers = FarmerFleet(10)
    yield farmers
    farmers.close()


@pytest.fixture
async def bridge(
    fresh_database: str, tmp_path: Path, clock: Clock, fleet: FarmerFleet
) -> AsyncIterator[Bridge]:
    config = BridgeConfig(
        data_dir=tmp_path,
        database=DatabaseConfig(fresh_database),
        accounts=AccountsConfig(argon2_time_cost=1, argon2_memory_kib=8),
        nodes=NodesConfig(
            single_host=True, private_addresses=True, contact_skew=10**10, difficulty=0
        ),
        chores=ChoresConfig(delete_max_attempts=3, delete_timeout=5),
    )
    peer = Bridge(config, Identity.generate(), clock=clock)
    peer.migrate()
    fleet.bridge_public_key = peer.identity.public_key
    fleet.clock = clock
    yield peer
    await peer.aclose()


async def _access(bridge: Bridge, clock: Clock) -> Access:
    user: User = await asyncio.to_thread(
        bridge.api.accounts.register, f"u{id(clock)}@example.org", "password1", clock.now
    )
    project = bridge.api.accounts.create_project(user, "p", None, clock.now)
    key = bridge.api.accounts.create_key(user, project.id, "k", clock.now)
    access = bridge.api.authority.resolve(key.api_key)
    bridge.api.buckets.create(access, "bucket", None, clock.now)
    return access


async def _checkin(bridge: Bridge, fleet: FarmerFleet, clock: Clock) -> None:
    for farmer in fleet.farmers:
        contact = farmer.contact(timestamp=clock.now)
        result = await bridge.api.overlay.checkin(contact.encode(), clock.now)
        assert result.online


def _deleted(fleet: FarmerFleet) -> set[bytes]:
    return {piece for farmer in fleet.farmers for piece in farmer.deleted}


async def test_reclaim_then_delete(bridge: Bridge, fleet: FarmerFleet, clock: Clock) -> None:
    for chore in bridge.worker.chores:
        chore.pause()
    await _checkin(bridge, fleet, clock)
    access = await _access(bridge, clock)
    began = bridge.api.uploads.begin_object(access, "bucket", "YQ", clock.now)
    orders = bridge.api.uploads.begin_segment(access, began.stream_id, 0, 400, 100, clock.now)
    pieces = {order.order_limit.piece_id for order in orders.orders}

    # Before the deadline nothing is reclaimed.
    assert await bridge.worker.reclaim_chore.trigger_and_wait() == 0
    clock.now = began.deadline + 1
    assert await bridge.worker.reclaim_chore.trigger_and_wait() == 1
    assert await bridge.worker.reclaim_chore.trigger_and_wait() == 0
    assert bridge.worker.deletion_store.pending() == len(pieces)

    report = await bridge.worker.deletion_chore.trigger_and_wait()
    assert report == DeletionReport(deleted=10, failed=0, dropped=0)
    assert _deleted(fleet) == pieces
    assert bridge.worker.deletion_store.pending() == 0
    assert not any(farmer.delete_failures for farmer in fleet.farmers)


async def test_failed_deletes_are_retried_then_dropped(
    bridge: Bridge, fleet: FarmerFleet, clock: Clock
) -> None:
    for chore in bridge.worker.chores:
        chore.pause()
    await _checkin(bridge, fleet, clock)
    access = await _access(bridge, clock)
    began = bridge.api.uploads.begin_object(access, "bucket", "YQ", clock.now)
    orders = bridge.api.uploads.begin_segment(access, began.stream_id, 0, 400, 100, clock.now)
    flaky = fleet.by_node(orders.orders[0].order_limit.node_id.hex())
    flaky.delete_status = 500
    bridge.api.uploads.abort_upload(access, began.stream_id, clock.now)

    first = await bridge.worker.deletion_chore.trigger_and_wait()
    assert first == DeletionReport(deleted=9, failed=1, dropped=0)
    # Not due again until its backoff has passed.
    assert await bridge.worker.deletion_chore.trigger_and_wait() == DeletionReport(0, 0, 0)
    clock.now += 3600
    assert await bridge.worker.deletion_chore.trigger_and_wait() == DeletionReport(0, 1, 0)
    clock.now += 3600
    assert await bridge.worker.deletion_chore.trigger_and_wait() == DeletionReport(0, 1, 1)
    assert bridge.worker.deletion_store.pending() == 0

    # A farmer that answers 404 (never had the piece) settles the delete too.
    flaky.delete_status = 404
    await _checkin(bridge, fleet, clock)  # hours have passed: check in to be online again
    again = bridge.api.uploads.begin_object(access, "bucket", "Yg", clock.now)
    bridge.api.uploads.begin_segment(access, again.stream_id, 0, 400, 100, clock.now)
    bridge.api.uploads.abort_upload(access, again.stream_id, clock.now)
    report = await bridge.worker.deletion_chore.trigger_and_wait()
    assert (report.deleted, report.failed) == (10, 0)


async def _upload(
    bridge: Bridge, access: Access, fleet: FarmerFleet, clock: Clock, key: str, segments: int
) -> set[bytes]:
    """A whole upload through the services, farmers played by `fleet`; the piece ids stored."""
    began = bridge.api.uploads.begin_object(access, "bucket", key, clock.now)
    pieces: set[bytes] = set()
    for index in range(segments):
        orders = bridge.api.uploads.begin_segment(
            access, began.stream_id, index, 400, 100, clock.now
        )
        receipts = [
            b64encode(
                fleet.by_node(o.order_limit.node_id.hex())
                .receipt(b64encode(o.order_limit.encode()))
                .encode()
            )
            for o in orders.orders
        ]
        uploads = bridge.api.uploads
        uploads.commit_segment(access, began.stream_id, index, receipts, 300, b"k", clock.now)
        pieces |= {o.order_limit.piece_id for o in orders.orders}
    bridge.api.uploads.commit_object(access, began.stream_id, b"meta", clock.now)
    return pieces


def _relocate(
    bridge: Bridge, access: Access, clock: Clock, key: str, new_key: str, *, copy: bool
) -> None:
    info = bridge.api.objects.get_object(access, "bucket", key, clock.now)
    rekeyed = [(segment.index, b"rewrapped") for segment in info.segments]
    bridge.api.objects.relocate(
        access, "bucket", key, None, "bucket", new_key, b"m", rekeyed, clock.now, copy=copy
    )


async def test_copies_share_pieces_until_the_last_goes(
    bridge: Bridge, fleet: FarmerFleet, clock: Clock
) -> None:
    for chore in bridge.worker.chores:
        chore.pause()
    await _checkin(bridge, fleet, clock)
    access = await _access(bridge, clock)
    pieces = await _upload(bridge, access, fleet, clock, "YQ", segments=2)
    assert len(pieces) == 20 and bridge.worker.deletion_store.pending() == 0
    _relocate(bridge, access, clock, "YQ", "Yg", copy=True)  # a copy
    _relocate(bridge, access, clock, "Yg", "Yw", copy=True)  # a copy of the copy
    _relocate(bridge, access, clock, "Yw", "ZA", copy=False)  # moved: still one reference
    for key in ("YQ", "Yg"):
        bridge.api.objects.delete_object(access, "bucket", key, clock.now)
        assert bridge.worker.deletion_store.pending() == 0  # "ZA" still uses every piece
    for index in (0, 1):
        left = bridge.api.objects.download_segment(access, "bucket", "ZA", index, None, clock.now)
        assert {o.order_limit.piece_id for o in left.orders} <= pieces
    # The last reference goes: every piece is queued once, and deleted from its farmer.
    bridge.api.objects.delete_object(access, "bucket", "ZA", clock.now)
    assert bridge.worker.deletion_store.pending() == len(pieces)
    report = await bridge.worker.deletion_chore.trigger_and_wait()
    assert report == DeletionReport(deleted=20, failed=0, dropped=0)
    assert _deleted(fleet) == pieces


async def test_a_bucket_of_copies_deletes_each_piece_once(
    bridge: Bridge, fleet: FarmerFleet, clock: Clock
) -> None:
    for chore in bridge.worker.chores:
        chore.pause()
    await _checkin(bridge, fleet, clock)
    access = await _access(bridge, clock)
    pieces = await _upload(bridge, access, fleet, clock, "YQ", segments=1)
    _relocate(bridge, access, clock, "YQ", "Yg", copy=True)
    _relocate(bridge, access, clock, "YQ", "Yw", copy=True)
    # Overwriting a copy gives up its reference only.
    bridge.api.uploads.put_inline(access, "bucket", "Yw", b"tiny", 4, None, clock.now)
    assert bridge.worker.deletion_store.pending() == 0
    # Two references in one transaction: both dropped, each piece queued once.
    bridge.api.buckets.delete(access, "bucket", True, clock.now)
    assert bridge.worker.deletion_store.pending() == len(pieces) == 10
    await bridge.worker.deletion_chore.trigger_and_wait()
    assert _deleted(fleet) == pieces


async def test_copies_deleted_and_copied_at_once(
    bridge: Bridge, fleet: FarmerFleet, clock: Clock
) -> None:
    """Deletes of every copy race a copy of one of them: the pieces are queued once, exactly
    when no object is left using them (PostgreSQL runs these transactions concurrently)."""
    for chore in bridge.worker.chores:
        chore.pause()
    await _checkin(bridge, fleet, clock)
    access = await _access(bridge, clock)
    pieces = await _upload(bridge, access, fleet, clock, "YQ", segments=1)
    copies = [f"Yw{i}" for i in range(7)]
    for key in copies:
        _relocate(bridge, access, clock, "YQ", key, copy=True)

    def delete(key: str) -> None:
        bridge.api.objects.delete_object(access, "bucket", key, clock.now)

    def copy_last() -> bool:
        try:
            _relocate(bridge, access, clock, copies[-1], "ZA", copy=True)
        except errors.NotFound:
            return False  # deleted first
        return True

    *_, copied = await asyncio.gather(
        *(asyncio.to_thread(delete, key) for key in ["YQ", *copies]), asyncio.to_thread(copy_last)
    )
    if copied:
        assert bridge.worker.deletion_store.pending() == 0
        delete("ZA")
    assert bridge.worker.deletion_store.pending() == len(pieces)
