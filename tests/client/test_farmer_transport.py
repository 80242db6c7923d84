"""`HttpFarmerTransport` against a real farmer process: the wire protocol and its errors."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from metadisk.client.errors import PieceError
from metadisk.client.farmer_transport import HttpFarmerTransport, LongTail, Outcomes, Suspects
from metadisk.core.identity import Identity
from metadisk.core.merkle import digest_piece
from metadisk.core.messages import Action, OrderLimit
from metadisk.devnet.farmer import FarmerProcess, farmer_process
from metadisk.farmer.config import TrustedBridge

on_module_loop = pytest.mark.asyncio(loop_scope="module")
BRIDGE = Identity.generate()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def farmer(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FarmerProcess]:
    trusted = TrustedBridge(BRIDGE.node_id, BRIDGE.public_key, "http://127.0.0.1:9")
    async with farmer_process(
        tmp_path_factory.mktemp("farmer") / "data", [trusted], allocated=64 << 20
    ) as process:
        yield process


@pytest_asyncio.fixture(loop_scope="module")
async def transport() -> AsyncIterator[HttpFarmerTransport]:
    client = HttpFarmerTransport()
    yield client
    await client.aclose()


def limit(farmer: FarmerProcess, piece_id: bytes, action: Action, *, ttl: int = 600) -> OrderLimit:
    now = int(time.time())
    return OrderLimit(
        os.urandom(16),
        BRIDGE.node_id,
        farmer.identity.node_id,
        piece_id,
        action,
        1 << 20,
        now,
        now + ttl,
    ).signed_by(BRIDGE)


@on_module_loop
async def test_put_then_get_whole_and_ranged(
    farmer: FarmerProcess, transport: HttpFarmerTransport
) -> None:
    piece = os.urandom(300_000)
    piece_id = os.urandom(32)
    digest = digest_piece(piece)
    receipt = await transport.put_piece(
        farmer.url, limit(farmer, piece_id, Action.PUT), digest.piece_hash, memoryview(piece)
    )
    receipt.verify_signature(farmer.identity.public_key)
    assert receipt.piece_hash == digest.piece_hash
    whole = bytearray(len(piece))
    await transport.get_piece(farmer.url, limit(farmer, piece_id, Action.GET), memoryview(whole))
    assert whole == piece
    part = bytearray(1000)
    await transport.get_piece(
        farmer.url, limit(farmer, piece_id, Action.GET), memoryview(part), offset=12345, ranged=True
    )
    assert part == piece[12345:13345]


@on_module_loop
async def test_farmer_errors_keep_their_codes(
    farmer: FarmerProcess, transport: HttpFarmerTransport
) -> None:
    piece = os.urandom(1000)
    with pytest.raises(PieceError) as wrong_hash:
        await transport.put_piece(
            farmer.url, limit(farmer, os.urandom(32), Action.PUT), bytes(32), memoryview(piece)
        )
    assert (wrong_hash.value.code, wrong_hash.value.status) == ("hash-mismatch", 400)
    with pytest.raises(PieceError) as missing:
        await transport.get_piece(
            farmer.url, limit(farmer, os.urandom(32), Action.GET), memoryview(bytearray(10))
        )
    assert missing.value.code == "not-found"
    with pytest.raises(PieceError) as expired:
        stale = limit(farmer, os.urandom(32), Action.PUT, ttl=-1)
        await transport.put_piece(
            farmer.url, stale, digest_piece(piece).piece_hash, memoryview(piece)
        )
    assert expired.value.code == "expired"


@on_module_loop
async def test_unreachable_farmer(transport: HttpFarmerTransport) -> None:
    nowhere = "http://127.0.0.1:9"
    fake = Identity.generate()
    order = OrderLimit(
        os.urandom(16), BRIDGE.node_id, fake.node_id, os.urandom(32), Action.GET, 10, 0, 1
    ).signed_by(BRIDGE)
    with pytest.raises(PieceError) as caught:
        await transport.get_piece(nowhere, order, memoryview(bytearray(10)))
    assert caught.value.code == "connection-failed"


def test_suspects_expire_clear_and_stay_bounded() -> None:
    now = [100.0]
    suspects = Suspects(ttl=10, most=3, clock=lambda: now[0])
    nodes = [Identity.generate().node_id for _ in range(4)]
    suspects.add(nodes[0], "timeout")
    assert nodes[0] in suspects and suspects.why(nodes[0]) == "timeout"
    now[0] += 9.9
    assert nodes[0] in suspects
    now[0] += 0.2
    assert nodes[0] not in suspects and len(suspects) == 0  # expired
    for node in nodes:
        suspects.add(node, "stalled")
    assert nodes[0] not in suspects and len(suspects) == 3  # the oldest forgotten
    suspects.clear(nodes[1])
    assert nodes[1] not in suspects


def test_outcomes_say_what_happened_and_who_to_suspect() -> None:
    suspects = Suspects()
    outcomes = Outcomes(suspects)
    hung, full, slow, good = (Identity.generate().node_id for _ in range(4))
    started = time.monotonic()
    outcomes.failure(0, hung, started, "stalled")
    outcomes.failure(1, full, started, "insufficient-storage")  # a refusal, not a hang
    outcomes.failure(2, good, started, "bad-piece")
    outcomes.slow(3, slow, started, laggard=True)
    outcomes.slow(4, good, started, laggard=False)  # only cancelled: others were first
    assert [(o.piece_number, o.outcome, o.code) for o in outcomes.items] == [
        (0, "failed", "stalled"),
        (1, "failed", "insufficient-storage"),
        (2, "bad-piece", "bad-piece"),
        (3, "slow", "slow"),
        (4, "slow", ""),
    ]
    assert hung in suspects and slow in suspects
    assert full not in suspects and good not in suspects
    outcomes.success(5, hung, started)
    assert hung not in suspects and len(outcomes.latencies) == 1


def test_long_tail_lines() -> None:
    tail = LongTail(factor=4, floor=1.0)
    assert tail.after([]) is None  # nothing finished: nothing lags yet
    assert tail.after([0.1, 0.1, 0.2]) == 1.0  # the floor
    assert tail.after([1.0, 2.0, 9.0]) == 8.0  # four times the median
    with pytest.raises(ValueError):
        LongTail(factor=0.5)
