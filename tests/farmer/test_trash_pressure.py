"""The trash stays out of the way: it counts as free space, and an upload that needs it gets it,
oldest trashed pieces first; 507 comes only when the pieces alone leave no room."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from metadisk.core.identity import Identity
from metadisk.core.messages import Action
from metadisk.farmer.config import DISK_RESERVE
from metadisk.farmer.peer import Peer, running
from metadisk.farmer.pieces import service as piece_service
from metadisk.farmer.pieces.store import trailer_size
from tests.farmer.helpers import (
    Bridge,
    Clock,
    error_code,
    get,
    make_config,
    order_header,
    piece_id,
    put,
    put_headers,
)

PIECE = 300_000
ON_DISK = PIECE + trailer_size(PIECE)


async def make_peer(
    tmp_path: Path, bridge: Bridge, clock: Clock, allocated: int
) -> AsyncIterator[Peer]:
    config = make_config(tmp_path, bridge.trusted, allocated=allocated)
    async with running(config, Identity.generate(), clock=clock) as peer:
        for chore in peer.chores:
            chore.pause()
        yield peer


@pytest_asyncio.fixture
async def small(tmp_path: Path, bridge: Bridge, clock: Clock) -> AsyncIterator[Peer]:
    """A peer with room for three and a half pieces of `PIECE` bytes."""
    async for peer in make_peer(tmp_path, bridge, clock, 3 * ON_DISK + ON_DISK // 2):
        yield peer


async def delete(session: aiohttp.ClientSession, peer: Peer, bridge: Bridge, pid: bytes) -> None:
    clock = peer.pieces._clock
    limit = bridge.limit(peer.identity.node_id, pid, Action.DELETE, now=clock())
    async with session.delete(
        f"{peer.address}/v1/pieces/{pid.hex()}", headers=order_header(limit)
    ) as response:
        assert response.status == 204


async def try_put(
    session: aiohttp.ClientSession, peer: Peer, bridge: Bridge, clock: Clock, size: int
) -> tuple[int, str | None]:
    pid, data = piece_id(), os.urandom(size)
    limit = bridge.limit(peer.identity.node_id, pid, Action.PUT, now=clock.now)
    async with session.put(
        f"{peer.address}/v1/pieces/{pid.hex()}", data=data, headers=put_headers(limit, data)
    ) as response:
        if response.status == 201:
            return 201, None
        return response.status, await error_code(response)


def trash_names(peer: Peer, bridge: Bridge) -> set[bytes]:
    trash = peer.config.data_dir / "trash" / bridge.identity.node_id.hex()
    return {bytes.fromhex(path.name.split(".")[0]) for path in trash.iterdir()}


async def test_an_upload_that_needs_the_trash_empties_it_oldest_first(
    small: Peer, bridge: Bridge, clock: Clock, session: aiohttp.ClientSession
) -> None:
    node = small.identity.node_id.hex()
    a, b, c = [
        (await put(session, small.address, bridge, node, os.urandom(PIECE), now=clock.now))[0]
        for _ in range(3)
    ]
    clock.now += 1
    await delete(session, small, bridge, a)
    clock.now += 1
    await delete(session, small, bridge, b)
    assert (small.usage.used, small.usage.trash) == (ON_DISK, 2 * ON_DISK)
    # Offered as free: all but the one stored piece.
    assert small.pieces.free == small.config.allocated - ON_DISK

    # 1.5 pieces are free without the trash: a piece of 1.2 needs one trashed piece gone, the
    # oldest (a), and no more.
    bigger = int(PIECE * 1.2)
    assert await try_put(session, small, bridge, clock, bigger) == (201, None)
    assert trash_names(small, bridge) == {b}
    assert small.usage.trash == ON_DISK
    assert small.usage.used == ON_DISK + bigger + trailer_size(bigger)
    code, _, _ = await get(session, small.address, bridge, node, c, now=clock.now)
    assert code == 200

    # Pieces alone leave ~1.3 pieces: a piece of 1.5 is refused, the trash left as it was...
    assert await try_put(session, small, bridge, clock, int(PIECE * 1.5)) == (
        507,
        "insufficient-storage",
    )
    assert trash_names(small, bridge) == {b}
    # ...while a piece of 1.0 fits once the trash is gone.
    assert await try_put(session, small, bridge, clock, PIECE) == (201, None)
    assert trash_names(small, bridge) == set()
    assert small.usage.trash == 0
    assert await try_put(session, small, bridge, clock, PIECE // 2) == (
        507,
        "insufficient-storage",
    )
    async with session.get(f"{small.address}/metrics") as response:
        metrics = await response.text()
    assert 'metadisk_farmer_trash_purged_total{why="allocation"} 2.0' in metrics


async def test_uploads_with_room_never_touch_the_trash(
    small: Peer, bridge: Bridge, clock: Clock, session: aiohttp.ClientSession
) -> None:
    node = small.identity.node_id.hex()
    pid, _ = await put(session, small.address, bridge, node, os.urandom(PIECE), now=clock.now)
    await delete(session, small, bridge, pid)
    assert await try_put(session, small, bridge, clock, PIECE) == (201, None)
    assert await try_put(session, small, bridge, clock, PIECE // 4) == (201, None)
    assert trash_names(small, bridge) == {pid}


@pytest.fixture
def small_disk(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path, int], None]:
    """Make the disk under a data dir look `capacity` bytes large (statvfs of the piece
    service only; what is on it is really there)."""

    def install(data_dir: Path, capacity: int) -> None:
        real = os.statvfs

        def statvfs(path: Any) -> Any:
            if not str(path).startswith(str(data_dir)):
                return real(path)
            used = sum(
                (Path(root) / name).stat().st_size
                for root, _, names in os.walk(data_dir)
                for name in names
                if not name.startswith("farmer.db")
            )
            return SimpleNamespace(f_bavail=max(0, capacity - used), f_frsize=1)

        monkeypatch.setattr(piece_service.os, "statvfs", statvfs)

    return install


async def test_a_short_disk_empties_the_trash_first(
    tmp_path: Path,
    bridge: Bridge,
    clock: Clock,
    session: aiohttp.ClientSession,
    small_disk: Callable[[Path, int], None],
) -> None:
    """The allocation (64 MiB) has room; the disk has room for 3.5 pieces beyond its reserve."""
    async for peer in make_peer(tmp_path, bridge, clock, 64 << 20):
        small_disk(peer.config.data_dir, DISK_RESERVE + 7 * ON_DISK // 2)
        node = peer.identity.node_id.hex()
        a, b = [
            (await put(session, peer.address, bridge, node, os.urandom(PIECE), now=clock.now))[0]
            for _ in range(2)
        ]
        clock.now += 1
        await delete(session, peer, bridge, a)
        clock.now += 1
        await delete(session, peer, bridge, b)
        assert await try_put(session, peer, bridge, clock, PIECE) == (201, None)
        assert trash_names(peer, bridge) == {b, a}  # 1.5 pieces free: no need yet
        assert await try_put(session, peer, bridge, clock, PIECE) == (201, None)
        assert trash_names(peer, bridge) == {b}  # the oldest went
        assert await try_put(session, peer, bridge, clock, PIECE) == (201, None)
        assert trash_names(peer, bridge) == set()
        # Only pieces on the disk now: full.
        assert await try_put(session, peer, bridge, clock, PIECE) == (507, "insufficient-storage")
        assert peer.usage.trash == 0
        async with session.get(f"{peer.address}/metrics") as response:
            metrics = await response.text()
        assert 'metadisk_farmer_trash_purged_total{why="disk"} 2.0' in metrics
