"""A bridge peer in the test's own process, with its chores paused (a test runs each when it
means to), and real farmer processes checked in with it through its node directory."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from metadisk.bridge.config import BridgeConfig
from metadisk.bridge.peer import Bridge
from metadisk.core.identity import Identity
from metadisk.core.messages import NodeContact
from metadisk.devnet.farmer import FarmerProcess, farmer_process
from metadisk.farmer.config import TrustedBridge


@contextlib.asynccontextmanager
async def paused_bridge(
    config: BridgeConfig, *, clock: Callable[[], int] | None = None
) -> AsyncIterator[Bridge]:
    """A migrated `Bridge` whose worker chores wait for `trigger_and_wait`."""
    peer = Bridge(config, Identity.generate(), **({} if clock is None else {"clock": clock}))
    peer.migrate()
    for chore in peer.worker.chores:
        chore.pause()
    try:
        yield peer
    finally:
        await peer.aclose()


async def check_in(bridge: Bridge, farmer: FarmerProcess, space: int) -> None:
    """Check `farmer` in with `bridge` (which pings it back) offering `space` bytes."""
    now = int(time.time())
    contact = NodeContact(farmer.identity.public_key, farmer.url, space, space, "test", now)
    result = await bridge.api.overlay.checkin(contact.signed_by(farmer.identity).encode(), now)
    assert result.online


@contextlib.asynccontextmanager
async def farmers_of(
    bridge: Bridge, root: Path, count: int, allocated: int = 64 << 20
) -> AsyncIterator[list[FarmerProcess]]:
    """`count` farmer processes trusting `bridge`, checked in with it, stopped on exit. They
    know no bridge address of their own (nothing listens at it): the check-in goes through the
    bridge's service here."""
    identity = bridge.identity
    trusted = TrustedBridge(identity.node_id, identity.public_key, "http://127.0.0.1:9")
    async with contextlib.AsyncExitStack() as stack:
        started = [
            await stack.enter_async_context(
                farmer_process(root / f"f{i}", [trusted], allocated=allocated)
            )
            for i in range(count)
        ]
        for farmer in started:
            await check_in(bridge, farmer, allocated)
        yield started
