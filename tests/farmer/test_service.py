"""The piece service in-process: what HTTP cannot send (a body longer than its declared
length), damaged files, and the accounting of failed uploads."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from metadisk.core.identity import Identity
from metadisk.core.merkle import digest_piece
from metadisk.core.messages import Action
from metadisk.farmer.errors import BadRequest
from metadisk.farmer.peer import Peer, running
from metadisk.farmer.pieces.service import DIRECT_MIN
from tests.farmer.helpers import (
    Bridge,
    Clock,
    error_code,
    make_config,
    order_header,
    piece_id,
    put,
)


def nothing_left(peer: Peer) -> None:
    assert list(peer.store.tmp_dir.iterdir()) == []
    assert peer.usage.used == 0
    assert peer.pieces.free == peer.config.allocated


async def test_body_past_its_length_is_cut_off(peer: Peer, bridge: Bridge, clock: Clock) -> None:
    pid = piece_id()
    limit = bridge.limit(peer.identity.node_id, pid, Action.PUT, now=clock.now)
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        while True:
            sent += 4096
            yield b"x" * 4096

    declared = digest_piece(b"x" * 8192).piece_hash
    with pytest.raises(BadRequest) as info:
        await peer.pieces.put(limit, pid, declared, 8192, endless())
    assert info.value.code == "over-limit"
    assert sent == 3 * 4096  # refused at the first chunk past the declared length
    nothing_left(peer)


async def test_body_shorter_than_its_length(peer: Peer, bridge: Bridge, clock: Clock) -> None:
    pid, data = piece_id(), os.urandom(5000)
    limit = bridge.limit(peer.identity.node_id, pid, Action.PUT, now=clock.now)

    async def short() -> AsyncIterator[bytes]:
        yield data

    with pytest.raises(BadRequest) as info:
        await peer.pieces.put(limit, pid, digest_piece(data).piece_hash, 10_000, short())
    assert info.value.code == "incomplete-body"
    nothing_left(peer)
    assert not await peer.db.serial_used(limit.serial)  # a failed upload spends no serial


async def test_damaged_piece_is_an_error_not_data(
    peer: Peer, bridge: Bridge, clock: Clock, session: aiohttp.ClientSession
) -> None:
    node = peer.identity.node_id.hex()
    pid, _ = await put(session, peer.address, bridge, node, os.urandom(70_000), now=clock.now)
    path = peer.store.path(peer.store.piece_rel(bridge.identity.node_id.raw, pid))
    damaged = path.stat().st_size - 10
    os.truncate(path, damaged)
    limit = bridge.limit(node, pid, Action.GET, now=clock.now)
    async with session.get(
        f"{peer.address}/v1/pieces/{pid.hex()}", headers=order_header(limit)
    ) as response:
        assert response.status == 500
        assert await error_code(response) == "corrupt-piece"
    # it can still be deleted, and the trash counts the bytes it really takes (the bytes the
    # damage took stay counted as stored: a damaged file's original size is not known)
    limit = bridge.limit(node, pid, Action.DELETE, now=clock.now)
    async with session.delete(
        f"{peer.address}/v1/pieces/{pid.hex()}", headers=order_header(limit)
    ) as response:
        assert response.status == 204
    usage = peer.usage.snapshot()[bridge.identity.node_id.hex()]
    assert (usage["pieces"], usage["trash"]) == (0, damaged)


@pytest.mark.parametrize("direct_io", [False, True])
async def test_large_pieces_read_back_whole_with_or_without_direct_io(
    tmp_path: Path, bridge: Bridge, clock: Clock, direct_io: bool
) -> None:
    config = make_config(tmp_path, bridge.trusted, direct_io=direct_io)
    data = os.urandom(3 * DIRECT_MIN + 12345)  # whole blocks, a partial block and a trailer
    async with (
        running(config, Identity.generate(), clock=clock) as peer,
        aiohttp.ClientSession() as session,
    ):
        node = peer.identity.node_id.hex()
        pid, receipt = await put(session, peer.address, bridge, node, data, now=clock.now)
        assert receipt.size == len(data)
        limit = bridge.limit(node, pid, Action.GET, now=clock.now)
        async with session.get(
            f"{peer.address}/v1/pieces/{pid.hex()}", headers=order_header(limit)
        ) as response:
            assert await response.read() == data
