"""Check-ins of TLS farmers: the ping-back proves the node id in the TLS handshake, a farmer that
answers at another node's address is not taken for it, and plain HTTP off this host is refused
unless the bridge allows it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from metadisk.bridge.config import BridgeConfig, DatabaseConfig, NodesConfig, sqlite_url
from metadisk.bridge.errors import NodeRejected
from metadisk.bridge.peer import Bridge
from metadisk.core.identity import Identity
from metadisk.core.messages import NodeContact
from metadisk.devnet.farmer import FarmerProcess, farmer_process
from metadisk.farmer.config import TrustedBridge
from tests.bridge.inprocess import paused_bridge

SPACE = 64 << 20


async def bridge_with(tmp_path: Path, *, plain_http: bool = False) -> AsyncIterator[Bridge]:
    nodes = NodesConfig(
        single_host=True, private_addresses=True, ping_timeout=0.5, plain_http=plain_http
    )
    config = BridgeConfig(
        data_dir=tmp_path / "bridge", database=DatabaseConfig(sqlite_url(tmp_path)), nodes=nodes
    )
    async with paused_bridge(config) as peer:
        yield peer


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[Bridge]:
    async for peer in bridge_with(tmp_path):
        yield peer


async def tls_farmer(bridge: Bridge, where: Path) -> AsyncIterator[FarmerProcess]:
    trusted = TrustedBridge(
        bridge.identity.node_id, bridge.identity.public_key, "http://127.0.0.1:9"
    )
    async with farmer_process(where, [trusted], allocated=SPACE, tls=True) as farmer:
        yield farmer


async def checkin(bridge: Bridge, identity: Identity, address: str) -> bool:
    now = int(time.time())
    contact = NodeContact(identity.public_key, address, SPACE, SPACE, "test", now)
    result = await bridge.api.overlay.checkin(contact.signed_by(identity).encode(), now)
    return result.online


async def test_a_tls_farmer_is_pinged_back_over_tls(bridge: Bridge, tmp_path: Path) -> None:
    async for farmer in tls_farmer(bridge, tmp_path / "a"):
        assert farmer.url.startswith("https://")
        assert await checkin(bridge, farmer.identity, farmer.url)


async def test_another_nodes_tls_port_does_not_pass_for_this_node(
    bridge: Bridge, tmp_path: Path
) -> None:
    """A node that names someone else's address: the TLS peer there holds another key (over
    plain HTTP it would only have said so in its JSON card)."""
    async for farmer in tls_farmer(bridge, tmp_path / "a"):
        impostor = Identity.generate()
        assert not await checkin(bridge, impostor, farmer.url)


@pytest.mark.parametrize("plain_http", [False, True])
async def test_plain_http_off_this_host_is_refused_unless_allowed(
    tmp_path: Path, plain_http: bool
) -> None:
    async for bridge in bridge_with(tmp_path, plain_http=plain_http):
        identity = Identity.generate()
        address = "http://10.255.255.1:7777"  # private, not loopback: another machine
        if plain_http:
            assert not await checkin(bridge, identity, address)  # accepted, pinged, unreachable
        else:
            with pytest.raises(NodeRejected) as refused:
                await checkin(bridge, identity, address)
            assert refused.value.code == "plain-http"
        # loopback stays plain-HTTP friendly: `metadisk up` needs no certificates
        assert not await checkin(bridge, Identity.generate(), "http://127.0.0.1:9")
