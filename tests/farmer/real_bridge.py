"""Helpers for farmer tests against real bridge processes (`metadisk.devnet.bridge`)."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from metadisk.core.identity import NodeId
from metadisk.devnet.bridge import BridgeProcess
from metadisk.farmer.config import TrustedBridge
from metadisk.wire.api.routes import NODE


def trusted(bridge: BridgeProcess) -> TrustedBridge:
    """The bridge as a farmer's config trusts it."""
    return TrustedBridge(NodeId.from_hex(bridge.node_id), bridge.public_key, bridge.url)


async def wait_online(bridge_url: str, node_id: str, within: float = 30.0) -> None:
    """Until the bridge counts the node online (check-ins and ping-backs are asynchronous)."""
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(bridge_url + NODE.format(node_id=node_id)) as response:
                if response.status == 200 and (await response.json())["online"]:
                    return
            assert time.monotonic() < deadline, f"{node_id} not online at {bridge_url}"
            await asyncio.sleep(0.1)
