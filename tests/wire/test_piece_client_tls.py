"""The data plane over TLS pinned to node ids: a farmer proves its node id in the handshake,
whoever else answers at its address is refused before a byte of the request goes out, and the
wire carries nothing but TLS."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from metadisk.core.bloom import BloomFilter
from metadisk.core.encoding import b64encode
from metadisk.core.identity import Identity
from metadisk.core.merkle import LEAF_SIZE, digest_piece
from metadisk.core.messages import Action, OrderLimit, RetainRequest
from metadisk.devnet.farmer import FarmerProcess, farmer_process
from metadisk.farmer.config import TrustedBridge
from metadisk.wire.dataplane import PieceClient, PieceTransferError
from tests.relay import relay

on_module_loop = pytest.mark.asyncio(loop_scope="module")
BRIDGE = Identity.generate()


async def _farmer(tmp: pytest.TempPathFactory, name: str) -> AsyncIterator[FarmerProcess]:
    trusted = TrustedBridge(BRIDGE.node_id, BRIDGE.public_key, "http://127.0.0.1:9")
    async with farmer_process(
        tmp.mktemp(name) / "data", [trusted], allocated=64 << 20, tls=True
    ) as process:
        yield process


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def farmer(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FarmerProcess]:
    async for process in _farmer(tmp_path_factory, "a"):
        yield process


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def other(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FarmerProcess]:
    async for process in _farmer(tmp_path_factory, "b"):
        yield process


@pytest_asyncio.fixture(loop_scope="module")
async def pieces() -> AsyncIterator[PieceClient]:
    client = PieceClient()
    yield client
    await client.aclose()


def limit(node: FarmerProcess, piece_id: bytes, action: Action, size: int = 4 << 20) -> OrderLimit:
    now = int(time.time())
    return OrderLimit(
        os.urandom(16), BRIDGE.node_id, node.identity.node_id, piece_id, action, size,
        now, now + 600,
    ).signed_by(BRIDGE)  # fmt: skip


@on_module_loop
async def test_every_route_works_over_tls(farmer: FarmerProcess, pieces: PieceClient) -> None:
    assert farmer.url.startswith("https://")
    piece, piece_id = os.urandom(40 * LEAF_SIZE + 5), os.urandom(32)  # over two sent chunks
    digest = digest_piece(piece).piece_hash
    receipt = await pieces.put(farmer.url, limit(farmer, piece_id, Action.PUT), digest, piece)
    receipt.verify_signature(farmer.identity.public_key)
    into = memoryview(bytearray(len(piece)))
    await pieces.get(farmer.url, limit(farmer, piece_id, Action.GET), into)
    assert bytes(into) == piece
    part = memoryview(bytearray(LEAF_SIZE + 100))  # a range across a leaf, a MiB chunk apart
    get = limit(farmer, piece_id, Action.GET)
    await pieces.get(farmer.url, get, part, offset=LEAF_SIZE - 50, ranged=True)
    assert bytes(part) == piece[LEAF_SIZE - 50 : 2 * LEAF_SIZE + 50]
    audited = await pieces.audit(farmer.url, limit(farmer, piece_id, Action.AUDIT, 0), 1)
    assert audited.leaf == piece[LEAF_SIZE : 2 * LEAF_SIZE]
    card = await pieces.node_info(farmer.url, farmer.identity.node_id)
    assert card.node_id == farmer.identity.node_id
    assert await pieces.delete(farmer.url, limit(farmer, piece_id, Action.DELETE, 0))


@on_module_loop
async def test_a_farmer_with_a_wrong_certificate_is_refused(
    farmer: FarmerProcess, other: FarmerProcess, pieces: PieceClient
) -> None:
    """`other` answers at an address the client takes for `farmer`'s (a stale or forged
    address, or a man in the middle with a key of its own): nothing is sent to it."""
    piece, piece_id = os.urandom(1000), os.urandom(32)
    digest = digest_piece(piece).piece_hash
    now = int(time.time())
    keep = BloomFilter.sized(1, 0.1, seed=os.urandom(32)).encode()
    retain = RetainRequest(BRIDGE.node_id, farmer.identity.node_id, now, now, keep)
    calls = [
        pieces.put(other.url, limit(farmer, piece_id, Action.PUT), digest, piece),
        pieces.get(other.url, limit(farmer, piece_id, Action.GET), memoryview(bytearray(10))),
        pieces.audit(other.url, limit(farmer, piece_id, Action.AUDIT, 0), 0),
        pieces.delete(other.url, limit(farmer, piece_id, Action.DELETE, 0)),
        pieces.node_info(other.url, farmer.identity.node_id),
        pieces.retain(other.url, retain.signed_by(BRIDGE)),
    ]
    for call in calls:
        with pytest.raises(PieceTransferError) as refused:
            await call
        assert refused.value.code == "wrong-node-identity"
        assert farmer.identity.node_id.hex()[:16] in str(refused.value)
    # The impostor never got the piece: its owner would answer not-found, not a receipt.
    with pytest.raises(PieceTransferError) as missing:
        await pieces.get(other.url, limit(other, piece_id, Action.GET), memoryview(bytearray(1)))
    assert missing.value.code == "not-found"


@on_module_loop
async def test_a_tls_farmer_is_never_reached_without_a_node_id(
    farmer: FarmerProcess, pieces: PieceClient
) -> None:
    with pytest.raises(ValueError, match="node id"):
        await pieces.node_info(farmer.url)


@on_module_loop
async def test_a_relay_on_the_wire_sees_only_tls(farmer: FarmerProcess) -> None:
    port = int(farmer.url.rsplit(":", 1)[1])
    piece, piece_id = os.urandom(3 * LEAF_SIZE), os.urandom(32)
    digest = digest_piece(piece).piece_hash
    put_limit = limit(farmer, piece_id, Action.PUT)
    async with relay("127.0.0.1", port) as wire:
        client = PieceClient()
        try:
            url = f"https://127.0.0.1:{wire.port}"
            await client.put(url, put_limit, digest, piece)
            into = memoryview(bytearray(len(piece)))
            await client.get(url, limit(farmer, piece_id, Action.GET), into)
            assert bytes(into) == piece
        finally:
            await client.aclose()
    seen = wire.seen
    assert wire.connections == 1  # the pinned connection was pooled for the second call
    assert wire.upstream[:1] == b"\x16" and wire.downstream[:1] == b"\x16"  # TLS handshakes
    for secret in (piece[:64], piece[-64:], b64encode(put_limit.encode())[:40].encode(), b"PUT "):
        assert secret not in seen
