"""Many uploads, downloads and audits at once against one farmer process."""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import aiohttp

from metadisk.core.audit import judge
from metadisk.core.encoding import b64decode
from metadisk.core.merkle import LEAF_SIZE, leaf_count
from metadisk.core.messages import Action, AuditResponse, PieceReceipt
from metadisk.devnet.farmer import farmer_process
from tests.farmer.helpers import Bridge, get, order_header, put


async def test_fifty_pieces_with_sixteen_streams(
    tmp_path: Path, bridge: Bridge, session: aiohttp.ClientSession
) -> None:
    rng = random.Random(7)
    pieces = [os.urandom(rng.randrange(1, 600_000)) for _ in range(50)]
    gate = asyncio.Semaphore(16)
    async with farmer_process(tmp_path / "data", [bridge.trusted], checkin_interval=3600) as farmer:

        async def upload(data: bytes) -> tuple[bytes, PieceReceipt]:
            async with gate:
                return await put(session, farmer.url, bridge, farmer.node_id, data)

        stored = await asyncio.gather(*(upload(data) for data in pieces))
        assert len({pid for pid, _ in stored}) == 50

        async def download(pid: bytes, data: bytes) -> None:
            async with gate:
                code, body, _ = await get(session, farmer.url, bridge, farmer.node_id, pid)
                assert (code, body) == (200, data)
                offset = rng.randrange(len(data))
                code, body, _ = await get(
                    session,
                    farmer.url,
                    bridge,
                    farmer.node_id,
                    pid,
                    headers={"Range": f"bytes={offset}-"},
                )
                assert (code, body) == (206, data[offset:])

        async def audit(pid: bytes, receipt: PieceReceipt, data: bytes) -> None:
            async with gate:
                index = rng.randrange(leaf_count(len(data)))
                limit = bridge.limit(farmer.node_id, pid, Action.AUDIT)
                async with session.post(
                    f"{farmer.url}/v1/pieces/{pid.hex()}/audit",
                    json={"leaf_index": index},
                    headers=order_header(limit),
                ) as response:
                    body = await response.json()
                leaf = b64decode(body["leaf"])
                assert leaf == data[index * LEAF_SIZE : (index + 1) * LEAF_SIZE]
                response = AuditResponse.decode(b64decode(body["response"]))
                key = farmer.identity.public_key
                assert judge(limit, receipt, key, index, leaf, response).passed

        await asyncio.gather(
            *(download(pid, data) for (pid, _), data in zip(stored, pieces, strict=True)),
            *(audit(pid, r, data) for (pid, r), data in zip(stored, pieces, strict=True)),
        )
        async with session.get(f"{farmer.url}/v1/status") as response:
            info = await response.json()
        assert info["pieces"] == 50
        usage = info["bridges"][bridge.identity.node_id.hex()]
        assert usage["bandwidth_in"] == sum(len(data) for data in pieces)
