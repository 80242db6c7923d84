"""The reclaim and piece deletion chores, driven in-process with pause() and trigger_and_wait().

The bridge's services run here on a real database (SQLite file, or PostgreSQL) with a clock the
test moves; farmers are HTTP doubles that check every DELETE order limit they receive.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from metadisk.bridge.accounts.db import User
from metadisk.bridge.auth.service import Access
from metadisk.bridge.chore import Chore
from metadisk.bridge.config import (
    AccountsConfig,
    BridgeConfig,
    ChoresConfig,
    DatabaseConfig,
    NodesConfig,
    sqlite_url,
)
from metadisk.bridge.deletion.chore import DeletionReport
from metadisk.bridge.launcher import postgres_database
from metadisk.bridge.peer import Bridge
from metadisk.core.encoding import b64encode
from metadisk.core.identity import Identity
from tests.bridge.conftest import ENGINES, postgres_url_or_skip
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


@pytest.fixture(params=ENGINES)
def fresh_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of this test alone (nodes of other tests would be selected otherwise)."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    with postgres_database(postgres_url_or_skip()) as url:
        yield url


@pytest.fixture
async def bridge(
    fresh_database: str, tmp_path: Path, clock: Clock, fleet: FarmerFleet
) -> AsyncIterator[Bridge]:
    config = BridgeConfig(
        data_dir=tmp_path,
        database=DatabaseConfig(fresh_database),
        accounts=AccountsConfig(argon2_time_cost=1, argon2_memory_kib=8),
        nodes=NodesConfig(single_host=True, contact_skew=10**10),
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
        bridge.accounts.register, f"u{id(clock)}@example.org", "password1", clock.now
    )
    project = bridge.accounts.create_project(user, "p", None, clock.now)
    key = bridge.accounts.create_key(user, project.id, "k", clock.now)
    access = bridge.authority.resolve(key.api_key)
    bridge.buckets.create(access, "bucket", None, clock.now)
    return access


async def _checkin(bridge: Bridge, fleet: FarmerFleet, clock: Clock) -> None:
    for farmer in fleet.farmers:
        contact = farmer.contact(timestamp=clock.now)
        result = await bridge.overlay.checkin(b64encode(contact.encode()), clock.now)
        assert result.online


def _deleted(fleet: FarmerFleet) -> set[bytes]:
    return {piece for farmer in fleet.farmers for piece in farmer.deleted}


async def test_reclaim_then_delete(bridge: Bridge, fleet: FarmerFleet, clock: Clock) -> None:
    for chore in bridge.chores:
        chore.pause()
    await _checkin(bridge, fleet, clock)
    access = await _access(bridge, clock)
    began = bridge.metainfo.begin_object(access, "bucket", "YQ", clock.now)
    orders = bridge.metainfo.begin_segment(access, began.stream_id, 0, 400, 100, clock.now)
    pieces = {order.order_limit.piece_id for order in orders.orders}

    # Before the deadline nothing is reclaimed.
    assert await bridge.reclaim_chore.trigger_and_wait() == 0
    clock.now = began.deadline + 1
    assert await bridge.reclaim_chore.trigger_and_wait() == 1
    assert await bridge.reclaim_chore.trigger_and_wait() == 0
    assert bridge.deletion_store.pending() == len(pieces)

    report = await bridge.deletion_chore.trigger_and_wait()
    assert report == DeletionReport(deleted=10, failed=0, dropped=0)
    assert _deleted(fleet) == pieces
    assert bridge.deletion_store.pending() == 0
    assert not any(farmer.delete_failures for farmer in fleet.farmers)


async def test_failed_deletes_are_retried_then_dropped(
    bridge: Bridge, fleet: FarmerFleet, clock: Clock
) -> None:
    for chore in bridge.chores:
        chore.pause()
    await _checkin(bridge, fleet, clock)
    access = await _access(bridge, clock)
    began = bridge.metainfo.begin_object(access, "bucket", "YQ", clock.now)
    orders = bridge.metainfo.begin_segment(access, began.stream_id, 0, 400, 100, clock.now)
    flaky = fleet.by_node(orders.orders[0].order_limit.node_id.hex())
    flaky.delete_status = 500
    bridge.metainfo.abort_upload(access, began.stream_id, clock.now)

    first = await bridge.deletion_chore.trigger_and_wait()
    assert first == DeletionReport(deleted=9, failed=1, dropped=0)
    # Not due again until its backoff has passed.
    assert await bridge.deletion_chore.trigger_and_wait() == DeletionReport(0, 0, 0)
    clock.now += 3600
    assert await bridge.deletion_chore.trigger_and_wait() == DeletionReport(0, 1, 0)
    clock.now += 3600
    assert await bridge.deletion_chore.trigger_and_wait() == DeletionReport(0, 1, 1)
    assert bridge.deletion_store.pending() == 0

    # A farmer that answers 404 (never had the piece) settles the delete too.
    flaky.delete_status = 404
    await _checkin(bridge, fleet, clock)  # hours have passed: check in to be online again
    again = bridge.metainfo.begin_object(access, "bucket", "Yg", clock.now)
    bridge.metainfo.begin_segment(access, again.stream_id, 0, 400, 100, clock.now)
    bridge.metainfo.abort_upload(access, again.stream_id, clock.now)
    report = await bridge.deletion_chore.trigger_and_wait()
    assert (report.deleted, report.failed) == (10, 0)


async def test_paused_chore_runs_only_when_triggered(bridge: Bridge, clock: Clock) -> None:
    calls = 0

    async def work() -> int:
        nonlocal calls
        calls += 1
        return calls

    chore = Chore("test", 0.01, work)
    chore.pause()
    task = asyncio.create_task(chore.run())
    await asyncio.sleep(0.1)
    assert calls == 0
    assert await chore.trigger_and_wait() == 1
    chore.resume()
    for _ in range(200):
        if calls > 1:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    assert calls > 1
