"""A network with TLS on every hop: a bridge with a CA-signed certificate, farmers with
certificates of their node keys. Uploads and downloads work, a man in the middle in front of
the bridge or a farmer sees only TLS, and a farmer answering for another node id is refused."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from metadisk.client import AsyncProject, BridgeAccounts, BridgeNodes, ClientConfig, SegmentSizing
from metadisk.core.grant import AccessGrant
from metadisk.devnet.network import LocalNetwork, Tenant
from metadisk.runtime.tls import CA_FILE_ENV
from tests.relay import relay

on_module_loop = pytest.mark.asyncio(loop_scope="module")
SMALL = ClientConfig(sizing=SegmentSizing(piece_target=256 * 1024), processes=False)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tls-network")
    return root


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def network(root: Path) -> AsyncIterator[LocalNetwork]:
    net = LocalNetwork(root, farmers=5, tls=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CA_FILE_ENV, str(net.ca_file))
        async with net:
            yield net


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tenant(network: LocalNetwork) -> Tenant:
    return await network.create_tenant()


@on_module_loop
async def test_every_hop_is_https(network: LocalNetwork) -> None:
    assert network.bridge.url.startswith("https://")
    nodes = BridgeNodes(network.bridge.url)
    try:
        for farmer in network.farmers:
            assert farmer.url.startswith("https://")
            status = await nodes.status(farmer.identity.node_id)
            assert status.address == farmer.url and status.online
    finally:
        await nodes.aclose()


@on_module_loop
async def test_a_relay_before_the_bridge_sees_only_tls(
    network: LocalNetwork, tenant: Tenant
) -> None:
    """Logins, API keys, session tokens and order limits cross the relay; none is readable."""
    data = os.urandom(3 * 1024 * 1024 + 17)
    async with relay("127.0.0.1", network.bridge.port) as wire:
        url = f"https://127.0.0.1:{wire.port}"
        accounts = BridgeAccounts(url)
        try:
            session = await accounts.login(tenant.email, tenant.password)
        finally:
            await accounts.aclose()
        grant = AccessGrant.parse(tenant.grant)
        relayed = dataclasses.replace(grant, bridge_url=url).serialize()
        project = await AsyncProject.open(relayed, config=SMALL)
        try:
            await project.create_bucket("tls")
            await project.upload("tls", "secret.bin", data)
            back = b"".join([chunk async for chunk in project.stream("tls", "secret.bin")])
        finally:
            await project.aclose()
    assert back == data
    seen = wire.seen
    assert wire.connections >= 2 and seen[:1] == b"\x16"
    for secret in (
        tenant.password,
        tenant.api_key,
        session.token,
        "Bearer",
        "Authorization",
        "secret.bin",
        "order_limit",
    ):
        assert secret.encode() not in seen, secret


@on_module_loop
async def test_plain_http_to_the_tls_bridge_fails(network: LocalNetwork) -> None:
    plain = network.bridge.url.replace("https://", "http://")
    nodes = BridgeNodes(plain)
    try:
        with pytest.raises(Exception) as failed:
            await nodes.status(network.farmers[0].identity.node_id)
    finally:
        await nodes.aclose()
    assert getattr(failed.value, "code", "") in ("connection-failed", "bad-response")
