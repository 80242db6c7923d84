"""A farmer that fills up stops being chosen before its next check-in: the bridge's uptime
checker reads the free space on its node card (``GET /v1/node``)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from metadisk.core.encoding import b64encode
from metadisk.core.merkle import digest_piece
from metadisk.devnet.bridge import BridgeProcess
from metadisk.devnet.farmer import farmer_process
from metadisk.wire.api.routes import BUCKET_UPLOADS, SEGMENTS
from metadisk.wire.dataplane.contract import ORDER_LIMIT_HEADER, PIECE, PIECE_HASH_HEADER
from tests.bridge.helpers import Api, Reply, Tenant
from tests.farmer.real_bridge import trusted, wait_online

MiB = 1 << 20
SETTINGS = {
    # One piece a segment, so the one farmer is the whole network; each node checked every second.
    "objects": {
        "profiles": {"single": {"k": 1, "m": 1, "o": 1, "n": 1}},
        "default_profile": "single",
    },
    "health": {"check_interval": 0.2, "node_check_interval": 1},
}


@pytest.fixture
def bridge(tmp_path: Path) -> Iterator[BridgeProcess]:
    process = BridgeProcess(tmp_path / "bridge", settings=SETTINGS)
    process.start()
    yield process
    process.stop()


async def segment(tenant: Tenant, piece_size: int) -> Reply:
    """Ask for the order limits of a new upload's first segment of one `piece_size` piece."""
    upload = await tenant.ok("POST", BUCKET_UPLOADS.format(bucket="full"), json={"key": "k"})
    body = {"index": 0, "encrypted_size": piece_size, "piece_size": piece_size}
    return await tenant.call("POST", SEGMENTS.format(stream_id=upload["stream_id"]), json=body)


async def test_a_farmer_that_filled_up_is_not_chosen_before_its_next_checkin(
    tmp_path: Path, bridge: BridgeProcess
) -> None:
    # One check-in, at start: from then on only the bridge's own checks tell it anything.
    async with (
        farmer_process(
            tmp_path / "farmer", [trusted(bridge)], allocated=4 * MiB, checkin_interval=3600
        ) as farmer,
        aiohttp.ClientSession() as session,
    ):
        node_id = farmer.node_id
        await wait_online(bridge.url, node_id)
        tenant = await Tenant.create(Api(session, bridge.url))
        await tenant.bucket("full")

        # Fill the farmer as a client would: 3 MiB of its 4 under the bridge's order limit.
        first = await segment(tenant, 3 * MiB)
        assert first.status == 201, first
        (order,) = first.body["order_limits"]
        assert order["node_id"] == node_id
        await put_piece(session, order, os.urandom(3 * MiB))

        # The check-in said 4 MiB free; the card says about 1 now. Once a check has read it,
        # a 2 MiB piece finds no node, and a 512 KiB one still finds this one.
        deadline = time.monotonic() + 20
        while (reply := await segment(tenant, 2 * MiB)).status == 201:
            assert time.monotonic() < deadline, "the bridge never learned the farmer is full"
            await asyncio.sleep(0.2)
        assert (reply.status, reply.code) == (503, "not-enough-nodes")
        small = await segment(tenant, MiB // 2)
        assert small.status == 201, small
        assert [o["node_id"] for o in small.body["order_limits"]] == [node_id]


async def put_piece(session: aiohttp.ClientSession, order: dict[str, Any], data: bytes) -> None:
    headers = {
        ORDER_LIMIT_HEADER: order["order_limit"],
        PIECE_HASH_HEADER: b64encode(digest_piece(data).piece_hash),
    }
    url = order["address"] + PIECE.format(piece_id=order["piece_id"])
    async with session.put(url, data=data, headers=headers) as response:
        assert response.status == 201, await response.text()
