"""Network health driven in-process: the worker's audit and uptime chores against real farmer
processes, on a real database (SQLite file, or PostgreSQL).

Pieces are stored on the farmers through the data plane with PUT limits the bridge signs, and
recorded in the bridge's tables as a committed segment would record them, so each audit is the
real exchange: a signed AUDIT limit out, a signed proof back, judged against the receipt.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import insert, select, update

from metadisk.bridge.config import (
    BridgeConfig,
    DatabaseConfig,
    HealthConfig,
    NodesConfig,
)
from metadisk.bridge.db import tables as t
from metadisk.bridge.peer import Bridge
from metadisk.core.audit import prove_fault
from metadisk.core.merkle import LEAF_SIZE, digest_piece
from metadisk.core.messages import Action, AuditResponse, PieceReceipt
from metadisk.devnet.farmer import FarmerProcess
from metadisk.wire.dataplane import PieceClient
from tests.bridge.inprocess import farmers_of, paused_bridge

PIECE_SIZE = 3 * LEAF_SIZE + 17


@pytest.fixture
async def bridge(fresh_database: str, tmp_path: Path) -> AsyncIterator[Bridge]:
    config = BridgeConfig(
        data_dir=tmp_path / "bridge",
        database=DatabaseConfig(fresh_database),
        nodes=NodesConfig(single_host=True, private_addresses=True, difficulty=0),
        health=HealthConfig(
            audit_timeout=1.0,
            reverify_after=0,
            max_reverifications=2,
            vetting_audits=2,
            check_timeout=1.0,
        ),
    )
    async with paused_bridge(config) as peer:
        yield peer


@pytest.fixture
async def farmers(bridge: Bridge, tmp_path: Path) -> AsyncIterator[list[FarmerProcess]]:
    async with farmers_of(bridge, tmp_path, 2) as started:
        yield started


async def store_piece(
    bridge: Bridge, farmer: FarmerProcess, number: int = 0
) -> tuple[bytes, bytes]:
    """Put a random piece on `farmer` and record it as a committed segment's piece would be;
    (root piece id, piece id)."""
    data = os.urandom(PIECE_SIZE)
    root, piece_id = os.urandom(32), os.urandom(32)
    now = int(time.time())
    limit = bridge.api.signer.sign(farmer.identity.node_id, piece_id, Action.PUT, PIECE_SIZE, now)
    pieces = PieceClient()
    try:
        receipt = await pieces.put(farmer.url, limit, digest_piece(data).piece_hash, data)
    finally:
        await pieces.aclose()

    def record(conn: object) -> None:
        conn.execute(  # type: ignore[attr-defined]
            insert(t.piece_sets).values(
                root_piece_id=root, refs=1, created_at=now, k=4, m=6, o=8, n=10,
                piece_size=PIECE_SIZE,
            )
        )  # fmt: skip
        conn.execute(  # type: ignore[attr-defined]
            insert(t.pieces).values(
                root_piece_id=root, piece_number=number, node_id=farmer.identity.node_id.raw,
                piece_id=piece_id, size=PIECE_SIZE, piece_hash=receipt.piece_hash,
                stored_at=now, receipt=receipt.encode(),
            )
        )  # fmt: skip

    bridge.db.write(record)
    return root, piece_id


def piece_path(bridge: Bridge, farmer: FarmerProcess, piece_id: bytes) -> Path:
    name = piece_id.hex()
    bridge_dir = bridge.identity.node_id.hex()
    return farmer.config.data_dir / "pieces" / bridge_dir / name[:2] / name


def node_row(bridge: Bridge, farmer: FarmerProcess) -> object:
    query = select(t.nodes).where(t.nodes.c.node_id == farmer.identity.node_id.raw)
    return bridge.db.read(lambda conn: conn.execute(query).one())


def make_due(bridge: Bridge) -> None:
    """Every node's audit and check are due now (as if their intervals passed)."""
    bridge.db.write(
        lambda conn: conn.execute(update(t.nodes).values(next_audit_at=0, next_check_at=0))
    )


async def audit(bridge: Bridge) -> dict[str, int]:
    make_due(bridge)
    return dict(await bridge.worker.audit_chore.trigger_and_wait())


async def test_honest_farmers_pass_and_get_vetted(
    bridge: Bridge, farmers: list[FarmerProcess]
) -> None:
    for farmer in farmers:
        await store_piece(bridge, farmer)
    assert await audit(bridge) == {"pass": 2}
    assert node_row(bridge, farmers[0]).vetted_at is None  # type: ignore[attr-defined]
    assert await audit(bridge) == {"pass": 2}
    for farmer in farmers:
        row = node_row(bridge, farmer)
        assert row.vetted_at is not None and row.audits_passed == 2  # type: ignore[attr-defined]
        assert row.disqualified_at is None  # type: ignore[attr-defined]
    # Scheduled again after the node audit interval, not at the next cycle.
    assert dict(await bridge.worker.audit_chore.trigger_and_wait()) == {}


async def test_a_corrupted_piece_is_a_provable_fault_and_disqualifies(
    bridge: Bridge, farmers: list[FarmerProcess]
) -> None:
    bad, good = farmers
    _, piece_id = await store_piece(bridge, bad)
    await store_piece(bridge, good)
    path = piece_path(bridge, bad, piece_id)
    raw = bytearray(path.read_bytes())
    for offset in range(0, PIECE_SIZE, LEAF_SIZE):  # every leaf: whichever the audit picks
        raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))

    assert await audit(bridge) == {"fault": 1, "pass": 1}
    row = node_row(bridge, bad)
    assert row.disqualified_at is not None  # type: ignore[attr-defined]  # a new node: at once
    [evidence] = bridge.worker.health_store.evidence(bad.identity.node_id.raw)
    assert evidence.outcome == "fault" and evidence.response is not None
    assert evidence.receipt is not None
    # Checkable without the bridge: two statements the farmer signed contradict each other.
    reason = prove_fault(
        PieceReceipt.decode(evidence.receipt),
        AuditResponse.decode(evidence.response),
        bad.identity.public_key,
    )
    assert reason is not None
    # Disqualified: never audited again, and never selected.
    assert await audit(bridge) == {"pass": 1}
    chosen = bridge.api.overlay.select(2, 1, 1, int(time.time()))
    assert [c.node_id for c in chosen] == [good.identity.node_id.raw]


async def test_a_piece_swapped_for_another_is_caught(
    bridge: Bridge, farmers: list[FarmerProcess]
) -> None:
    farmer = farmers[0]
    _, audited = await store_piece(bridge, farmer)
    _, other = await store_piece(bridge, farmer, number=1)
    # The farmer keeps another piece of the same size under this one's name: its proofs are
    # consistent, for the wrong bytes.
    piece_path(bridge, farmer, audited).write_bytes(piece_path(bridge, farmer, other).read_bytes())
    bridge.db.write(
        lambda conn: conn.execute(t.pieces.delete().where(t.pieces.c.piece_id == other))
    )
    outcomes = await audit(bridge)
    assert outcomes.get("fault") == 1
    [evidence] = bridge.worker.health_store.evidence(farmer.identity.node_id.raw)
    assert "does not verify" in evidence.reason


async def test_a_deleted_piece_fails(bridge: Bridge, farmers: list[FarmerProcess]) -> None:
    farmer = farmers[0]
    _, piece_id = await store_piece(bridge, farmer)
    piece_path(bridge, farmer, piece_id).unlink()
    assert (await audit(bridge)).get("fail") == 1
    [evidence] = bridge.worker.health_store.evidence(farmer.identity.node_id.raw)
    assert evidence.outcome == "fail" and evidence.response is None
    assert evidence.reason.startswith("not-found")


async def test_silence_is_contained_then_fails_but_offline_is_not_an_audit_failure(
    bridge: Bridge, farmers: list[FarmerProcess]
) -> None:
    hung, dead = farmers
    await store_piece(bridge, hung)
    await store_piece(bridge, dead)
    os.kill(hung.pid, signal.SIGSTOP)
    await dead.kill()
    try:
        assert await audit(bridge) == {"contained": 1, "offline": 1}
        row = node_row(bridge, hung)
        assert row.audit_beta == 0  # type: ignore[attr-defined]  # not failed yet
        # Contained nodes get no new pieces; the dead one is checked now and found offline.
        assert dict(await bridge.worker.uptime_chore.trigger_and_wait()) == {
            "offline": 2  # a stopped process does not answer its pings either
        }
        assert node_row(bridge, dead).offline_since is not None  # type: ignore[attr-defined]
        with pytest.raises(Exception, match="eligible"):
            bridge.api.overlay.select(1, 1, 1, int(time.time()))
    finally:
        os.kill(hung.pid, signal.SIGCONT)
    # Offline nodes are not audited; the same piece is asked of the contained one again.
    bridge.db.write(
        lambda conn: conn.execute(update(t.nodes).values(next_audit_at=0, offline_since=None))
    )
    os.kill(hung.pid, signal.SIGSTOP)
    try:
        outcomes = dict(await bridge.worker.audit_chore.trigger_and_wait())
    finally:
        os.kill(hung.pid, signal.SIGCONT)
    assert outcomes == {"fail": 1, "offline": 1}  # the second silence counts
    assert node_row(bridge, hung).audit_beta > 0  # type: ignore[attr-defined]
    assert node_row(bridge, dead).audit_beta == 0  # type: ignore[attr-defined]
    assert node_row(bridge, dead).disqualified_at is None  # type: ignore[attr-defined]


async def test_uptime_windows_and_scores(bridge: Bridge, farmers: list[FarmerProcess]) -> None:
    up, down = farmers
    make_due(bridge)
    assert dict(await bridge.worker.uptime_chore.trigger_and_wait()) == {"online": 2}
    await down.kill()
    make_due(bridge)
    assert dict(await bridge.worker.uptime_chore.trigger_and_wait()) == {
        "online": 1,
        "offline": 1,
    }
    now = int(time.time())
    rows = {row.node_id: row for row in bridge.worker.health_store.standings(now, now - 3600)}
    assert rows[up.identity.node_id.raw].offline_since is None
    assert rows[down.identity.node_id.raw].offline_since is not None
    assert rows[down.identity.node_id.raw].scores.online.score < 1.0
    assert rows[up.identity.node_id.raw].scores.online.score == 1.0
    # The failed check comes round again sooner than the interval (a lost ping costs little).
    assert node_row(bridge, down).next_check_at < node_row(bridge, up).next_check_at  # type: ignore[attr-defined]
    await down.start()
    make_due(bridge)
    assert dict(await bridge.worker.uptime_chore.trigger_and_wait()) == {"online": 2}
    assert node_row(bridge, down).offline_since is None  # type: ignore[attr-defined]


async def test_reported_pieces_are_audited_first(
    bridge: Bridge, farmers: list[FarmerProcess]
) -> None:
    farmer = farmers[0]
    for number in range(5):
        await store_piece(bridge, farmer, number)
    reported_root, reported = await store_piece(bridge, farmer, 7)
    now = int(time.time())
    node = farmer.identity.node_id.raw
    assert bridge.worker.health_store.queue_audits([(reported_root, 7, node, "bad")], now) == 1
    assert bridge.worker.health_store.queue_audits([(reported_root, 7, node, "bad")], now) == 0
    target = bridge.worker.health_store.audit_target(node, bytes(32))
    assert target is not None and (target.piece_id, target.source) == (reported, "queue")
    assert await audit(bridge) == {"pass": 1, "skipped": 1}  # the other farmer holds nothing
    target = bridge.worker.health_store.audit_target(node, bytes(32))
    assert target is not None and target.source == "random"  # the report was settled


def test_claims_are_exclusive(bridge: Bridge, farmers: list[FarmerProcess]) -> None:
    store = bridge.worker.health_store
    now = int(time.time())
    make_due(bridge)
    first = store.claim_audits(now, 60, 10)
    assert len(first) == 2
    assert store.claim_audits(now, 60, 10) == []  # another worker finds nothing due
    assert len(store.claim_audits(now + 61, 60, 10)) == 2  # the lease ran out
    assert len(store.claim_checks(now, 60, 10)) == 2
    assert store.claim_checks(now, 60, 10) == []


def test_health_config_checks_its_ranges() -> None:
    with pytest.raises(ValueError):
        HealthConfig(new_node_share=1.5)
    with pytest.raises(ValueError):
        HealthConfig(max_reverifications=0)
    with pytest.raises(ValueError):
        HealthConfig(disqualify_below=2)
    for name in ("audit_timeout", "node_check_interval", "audit_interval"):
        with pytest.raises(ValueError, match=name):
            HealthConfig(**{name: 0})
    assert replace(HealthConfig(), forget=0.5).reputation.forget == 0.5
