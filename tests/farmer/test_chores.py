"""The farmer's chores, driven by hand: trash purge, TTL expiry and check-ins.

These run the real peer in the test's event loop (real HTTP on an ephemeral port) with a clock the
test moves, and trigger chores directly, so nothing sleeps.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

import metadisk
from metadisk.core.encoding import b64decode
from metadisk.core.identity import Identity
from metadisk.core.messages import Action, NodeContact
from metadisk.farmer.contact.service import FIRST_RETRY
from metadisk.farmer.errors import Forbidden
from metadisk.farmer.http import require_loopback
from metadisk.farmer.peer import Peer, running
from metadisk.runtime.chore import NextRun
from tests.farmer.helpers import START, Bridge, Clock, get, make_config, order_header, put


async def test_deleted_piece_is_purged_after_the_grace(
    peer: Peer, bridge: Bridge, clock: Clock, session: aiohttp.ClientSession
) -> None:
    node = peer.identity.node_id.hex()
    pid, _ = await put(session, peer.address, bridge, node, os.urandom(100_000), now=clock.now)
    limit = bridge.limit(node, pid, Action.DELETE, now=clock.now)
    async with session.delete(
        f"{peer.address}/v1/pieces/{pid.hex()}", headers=order_header(limit)
    ) as response:
        assert response.status == 204
    trash_dir = peer.config.data_dir / "trash" / bridge.identity.node_id.hex()
    assert len(list(trash_dir.iterdir())) == 1
    assert peer.usage.pieces == 0
    assert peer.usage.used == 0
    assert peer.usage.trash > 100_000  # the trash still takes its space on disk...
    assert peer.pieces.free == peer.config.allocated  # ...but is offered as free

    clock.now += 3599
    await peer.trash_chore.trigger_and_wait()
    assert len(list(trash_dir.iterdir())) == 1  # within the grace: kept

    clock.now += 2
    await peer.trash_chore.trigger_and_wait()
    assert list(trash_dir.iterdir()) == []
    assert (peer.usage.used, peer.usage.trash) == (0, 0)
    assert peer.pieces.free == peer.config.allocated


async def test_piece_expires_with_its_ttl(
    peer: Peer, bridge: Bridge, clock: Clock, session: aiohttp.ClientSession
) -> None:
    node = peer.identity.node_id.hex()
    data = os.urandom(50_000)
    expires = int(clock.now) + 600
    pid, _ = await put(
        session, peer.address, bridge, node, data, now=clock.now, piece_expires_at=expires
    )
    keep, _ = await put(session, peer.address, bridge, node, b"forever", now=clock.now)
    code, body, _ = await get(session, peer.address, bridge, node, pid, now=clock.now)
    assert (code, body) == (200, data)

    clock.now += 599
    await peer.expiry_chore.trigger_and_wait()
    assert peer.usage.pieces == 2

    clock.now += 1
    # past its TTL a piece is never served, even before the chore removes it
    code, _, _ = await get(session, peer.address, bridge, node, pid, now=clock.now)
    assert code == 404
    await peer.expiry_chore.trigger_and_wait()
    assert peer.usage.pieces == 1
    rel = peer.store.piece_rel(bridge.identity.node_id.raw, pid)
    assert not peer.store.exists(rel)
    assert not list((peer.config.data_dir / "trash").iterdir())  # expiry skips the trash
    code, body, _ = await get(session, peer.address, bridge, node, keep, now=clock.now)
    assert (code, body) == (200, b"forever")


async def test_expiry_forgets_used_serials_once_their_limit_expired(
    peer: Peer, bridge: Bridge, clock: Clock, session: aiohttp.ClientSession
) -> None:
    node = peer.identity.node_id.hex()
    serial = os.urandom(16)
    await put(session, peer.address, bridge, node, b"x", now=clock.now, ttl=60, serial=serial)
    assert await peer.db.serial_used(serial)
    clock.now += 59
    await peer.expiry_chore.trigger_and_wait()
    assert await peer.db.serial_used(serial)  # the order limit is still valid: keep it
    clock.now += 2
    await peer.expiry_chore.trigger_and_wait()
    assert not await peer.db.serial_used(serial)


class FakeBridge:
    """The bridge's check-in endpoint, as a test double: verifies and records contacts."""

    def __init__(self) -> None:
        self.contacts: list[NodeContact] = []
        self.pinged: list[dict[str, str]] = []
        self.failing = False
        self.received = asyncio.Event()

    async def checkin(self, request: web.Request) -> web.Response:
        if self.failing:
            return web.json_response({"error": {"code": "unavailable", "message": "x"}}, status=503)
        contact = NodeContact.decode(b64decode((await request.json())["contact"]))
        contact.verify_signature()
        # as the real bridge will: ping the address back to prove it is reachable
        async with (
            aiohttp.ClientSession() as session,
            session.get(contact.address + "/v1/node") as response,
        ):
            self.pinged.append(await response.json())
        self.contacts.append(contact)
        self.received.set()
        return web.json_response({"ok": True})


@pytest_asyncio.fixture
async def fake_bridge() -> AsyncIterator[tuple[FakeBridge, str]]:
    fake = FakeBridge()
    app = web.Application()
    app.router.add_post("/v1/nodes/checkin", fake.checkin)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_checkin_sends_a_signed_contact(
    tmp_path: Path, clock: Clock, fake_bridge: tuple[FakeBridge, str]
) -> None:
    fake, url = fake_bridge
    bridge = Bridge.new(url)
    identity = Identity.generate()
    async with running(make_config(tmp_path, bridge.trusted), identity, clock=clock) as peer:
        async with asyncio.timeout(30):
            await fake.received.wait()  # the first check-in happens at start
        contact = fake.contacts[0]
        assert contact.node_id == identity.node_id
        assert contact.address == peer.address
        assert contact.allocated == 64 << 20
        assert contact.free == peer.pieces.free
        assert contact.version == metadisk.__version__
        assert contact.timestamp == int(START)
        assert fake.pinged[0]["node_id"] == identity.node_id.hex()

        peer.checkin_chore.pause()
        clock.now += 100
        await peer.checkin_chore.trigger_and_wait()
        assert len(fake.contacts) == 2
        assert fake.contacts[1].timestamp == int(START) + 100


async def test_checkin_backs_off_while_the_bridge_fails(
    tmp_path: Path, clock: Clock, fake_bridge: tuple[FakeBridge, str]
) -> None:
    fake, url = fake_bridge
    fake.failing = True
    config = make_config(tmp_path, Bridge.new(url).trusted)
    async with running(config, Identity.generate(), clock=clock) as peer:
        peer.checkin_chore.pause()
        delays = [await peer.contact.checkin() for _ in range(3)]
        for attempt, delay in enumerate(delays, start=1):
            # the chore jitters this wait; the service asks for the exponential backoff
            assert delay == NextRun(FIRST_RETRY * 2 ** (attempt - 1))
        fake.failing = False
        assert await peer.contact.checkin() is None
        assert fake.contacts


def test_status_is_loopback_only() -> None:
    class Transport:
        def __init__(self, host: str) -> None:
            self.host = host

        def get_extra_info(self, name: str, default: object = None) -> object:
            return (self.host, 4242) if name == "peername" else default

    for host in ("127.0.0.1", "::1", "127.0.0.9"):
        require_loopback(make_mocked_request("GET", "/v1/status", transport=Transport(host)))
    for host in ("10.0.0.1", "192.168.1.2", "2001:db8::1"):
        with pytest.raises(Forbidden) as info:
            require_loopback(make_mocked_request("GET", "/v1/status", transport=Transport(host)))
        assert info.value.code == "not-local"


async def test_chores_can_be_triggered_over_loopback(
    peer: Peer, session: aiohttp.ClientSession
) -> None:
    async with session.post(f"{peer.address}/v1/chores/trash") as response:
        assert response.status == 200
        assert (await response.json())["done"] is True
    async with session.post(f"{peer.address}/v1/chores/nothing") as response:
        assert response.status == 404
