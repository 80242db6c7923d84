"""A whole local network for client integration tests: a real bridge and real farmer processes.

Every process listens on 127.0.0.1 on an ephemeral port; farmers check in with the bridge as
they would in production, and tenants (account, project, API key, grant) are made through the
bridge's real API.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from metadisk.client import AsyncProject, ClientConfig, ClientError
from metadisk.client.bridge_api import BridgeAccounts
from metadisk.core.grant import AccessGrant
from metadisk.core.macaroon import APIKey
from metadisk.core.paths import EncryptionAccess
from metadisk.devnet.bridge import BridgeProcess
from metadisk.devnet.farmer import FarmerProcess, farmer_process
from metadisk.farmer.config import TrustedBridge

# Piece deletes reach the farmers within a test, so that one can tell they did not happen.
BRIDGE_SETTINGS = {"chores": {"delete_interval": 0.2}}


@dataclass
class Planet:
    bridge: BridgeProcess
    farmers: list[FarmerProcess]

    def untried_deletes(self) -> int:
        """Piece deletes the bridge has queued but not yet sent (read from its SQLite file)."""
        path = self.bridge.data_dir / "bridge.sqlite3"
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            query = "SELECT count(*) FROM piece_deletes WHERE attempts = 0"
            return int(db.execute(query).fetchone()[0])

    async def deletes_sent(self, within: float = 60) -> None:
        """Wait until the bridge has sent every piece delete queued so far (bounded, no timing)."""
        deadline = time.monotonic() + within
        while self.untried_deletes():
            if time.monotonic() > deadline:
                raise TimeoutError("the bridge did not send its piece deletes")
            await asyncio.sleep(0.05)

    async def grant(self) -> str:
        """A fresh tenant's full access grant (random root key: no Argon2 in tests)."""
        accounts = BridgeAccounts(self.bridge.url)
        try:
            email = f"{os.urandom(6).hex()}@example.com"
            await accounts.register(email, "correct horse battery")
            await accounts.login(email, "correct horse battery")
            project = await accounts.create_project("test")
            api_key = (await accounts.create_api_key(project.id, "test")).api_key
        finally:
            await accounts.aclose()
        access = EncryptionAccess(root_key=os.urandom(32))
        return AccessGrant(self.bridge.url, APIKey.parse(api_key), access).serialize()


@contextlib.contextmanager
def bridge_running(data_dir: Path) -> Iterator[BridgeProcess]:
    bridge = BridgeProcess(data_dir, settings=BRIDGE_SETTINGS)
    bridge.start()
    try:
        yield bridge
    finally:
        bridge.stop()


@contextlib.asynccontextmanager
async def planet(root: Path, farmers: int = 10) -> AsyncIterator[Planet]:
    """A bridge and `farmers` farmer processes that have checked in and are online."""
    with bridge_running(root / "bridge") as bridge:
        trusted = TrustedBridge(_node_id(bridge.node_id), bridge.public_key, bridge.url)
        async with contextlib.AsyncExitStack() as stack:
            running = await asyncio.gather(
                *[
                    stack.enter_async_context(
                        farmer_process(root / f"farmer-{i}", [trusted], allocated=2 << 30)
                    )
                    for i in range(farmers)
                ]
            )
            world = Planet(bridge, list(running))
            await _wait_until_online(world, farmers)
            yield world


def _node_id(text: str):  # type: ignore[no-untyped-def]
    from metadisk.core.identity import NodeId

    return NodeId.from_hex(text)


async def _wait_until_online(world: Planet, count: int) -> None:
    """Poll until an upload that needs every farmer goes through (check-ins are asynchronous)."""
    grant = await world.grant()
    deadline = time.monotonic() + 60
    async with await AsyncProject.open(grant, config=ClientConfig(processes=False)) as project:
        await project.create_bucket("warmup")
        while True:
            try:
                await project.upload("warmup", "probe", os.urandom(64 * 1024))
                return
            except ClientError as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the network did not come up: {exc}") from exc
                await asyncio.sleep(0.2)
