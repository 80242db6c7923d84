"""The public node card (``GET /v1/node``) carries the free space, as the check-in does."""

from __future__ import annotations

import os

import aiohttp
import pytest
from pydantic import ValidationError

from metadisk.farmer.peer import Peer
from metadisk.wire.dataplane.contract import NODE_INFO, STATUS, NodeInfo, NodeReport
from tests.farmer.helpers import Bridge, Clock, put


async def card(session: aiohttp.ClientSession, peer: Peer) -> NodeInfo:
    async with session.get(peer.address + NODE_INFO) as response:
        assert response.status == 200
        return NodeInfo.model_validate_json(await response.read())


async def report(session: aiohttp.ClientSession, peer: Peer) -> NodeReport:
    async with session.get(peer.address + STATUS) as response:
        assert response.status == 200
        return NodeReport.model_validate_json(await response.read())


async def test_the_card_tells_the_free_space_as_it_shrinks(
    peer: Peer, bridge: Bridge, clock: Clock, session: aiohttp.ClientSession
) -> None:
    empty = await card(session, peer)
    assert empty.free == peer.config.allocated
    assert empty.free == peer.contact.contact().free  # what a check-in would say

    node = peer.identity.node_id.hex()
    await put(session, peer.address, bridge, node, os.urandom(3 << 20), now=clock.now)
    filled = await card(session, peer)
    assert filled.free is not None
    # The piece, its leaf hashes and footer: at least its bytes less, the status route agrees.
    assert filled.free <= peer.config.allocated - (3 << 20)
    assert filled.free == (await report(session, peer)).free
    assert filled.node_id == peer.identity.node_id and filled.address == peer.address


@pytest.mark.parametrize("free", [-1, 1 << 63])
def test_a_card_claiming_impossible_space_is_malformed(free: int) -> None:
    """The bridge's uptime check stores `free` in a signed 64-bit column: out of range is a bad
    answer from the farmer, not a failed write in the bridge's worker."""
    card = {"node_id": "00" * 32, "public_key": "AA", "version": "x", "address": "x", "free": free}
    with pytest.raises(ValidationError):
        NodeInfo.model_validate(card)
