"""Repair driven in-process: the worker's checker and repairer against real farmer processes, on
a real database (SQLite file, or PostgreSQL).

Piece sets are coded with a small scheme (k=2, m=3, o=5, n=6), stored on the farmers with PUT
limits the bridge signs and recorded as a committed segment records them; nodes are lost by
disqualifying them (an operator's action) or by stopping their process and letting the uptime
checker find it. The repairer's own work is never stubbed: it downloads, checks, rebuilds and
uploads through the data plane.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, select, update

from metadisk.bridge.config import (
    BridgeConfig,
    DatabaseConfig,
    NodesConfig,
    RepairConfig,
)
from metadisk.bridge.db import tables as t
from metadisk.bridge.peer import Bridge
from metadisk.bridge.repair.db import NewPiece
from metadisk.core.erasure import RedundancyScheme
from metadisk.core.identity import NodeId
from metadisk.core.merkle import LEAF_SIZE, digest_piece
from metadisk.core.messages import Action, derive_piece_id
from metadisk.devnet.farmer import FarmerProcess
from metadisk.wire.api.nodes import NetworkHealth
from metadisk.wire.dataplane import PieceClient
from tests.bridge.inprocess import farmers_of, paused_bridge

SCHEME = RedundancyScheme(2, 3, 5, 6)
PIECE_SIZE = 2 * LEAF_SIZE + 64  # two leaves and a bit: a multiple of the codec's 64-byte column


@pytest.fixture
async def bridge(fresh_database: str, tmp_path: Path) -> AsyncIterator[Bridge]:
    config = BridgeConfig(
        data_dir=tmp_path / "bridge",
        database=DatabaseConfig(fresh_database),
        nodes=NodesConfig(single_host=True, private_addresses=True, difficulty=0),
        repair=RepairConfig(upload_spares=0),
    )
    async with paused_bridge(config) as peer:
        yield peer


@pytest.fixture
async def farmers(bridge: Bridge, tmp_path: Path) -> AsyncIterator[list[FarmerProcess]]:
    async with farmers_of(bridge, tmp_path, 8) as started:
        yield started


async def store_set(bridge: Bridge, holders: list[FarmerProcess]) -> tuple[bytes, bytes]:
    """Code a random segment, put piece i on holders[i] and record the set as a commit does;
    (root piece id, the segment's bytes)."""
    segment = os.urandom(PIECE_SIZE * SCHEME.k)
    pieces = SCHEME.codec().encode(segment)
    root, now = os.urandom(32), int(time.time())
    rows = []
    client = PieceClient()
    try:
        for number, farmer in enumerate(holders):
            node = farmer.identity.node_id
            piece_id = derive_piece_id(root, node, number)
            limit = bridge.api.signer.sign(node, piece_id, Action.PUT, PIECE_SIZE, now)
            digest = digest_piece(pieces[number])
            receipt = await client.put(farmer.url, limit, digest.piece_hash, pieces[number])
            rows.append(
                {
                    "root_piece_id": root, "piece_number": number, "node_id": node.raw,
                    "piece_id": piece_id, "size": PIECE_SIZE, "piece_hash": digest.piece_hash,
                    "stored_at": now, "receipt": receipt.encode(),
                }
            )  # fmt: skip
    finally:
        await client.aclose()

    def record(conn: object) -> None:
        conn.execute(  # type: ignore[attr-defined]
            insert(t.piece_sets).values(
                root_piece_id=root, refs=1, created_at=now, k=SCHEME.k, m=SCHEME.m,
                o=SCHEME.o, n=SCHEME.n, piece_size=PIECE_SIZE,
            )
        )  # fmt: skip
        conn.execute(insert(t.pieces), rows)  # type: ignore[attr-defined]

    bridge.db.write(record)
    return root, segment


async def run_command(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


def pieces_of(bridge: Bridge, root: bytes) -> dict[int, tuple[bytes, bytes]]:
    """piece number -> (node id, piece id)."""
    p = t.pieces.c
    query = select(p.piece_number, p.node_id, p.piece_id).where(p.root_piece_id == root)
    rows = bridge.db.read(lambda conn: conn.execute(query).all())
    return {r.piece_number: (r.node_id, r.piece_id) for r in rows}


def queued_deletes(bridge: Bridge) -> set[tuple[bytes, bytes]]:
    d = t.piece_deletes.c
    rows = bridge.db.read(lambda conn: conn.execute(select(d.node_id, d.piece_id)).all())
    return {(r.node_id, r.piece_id) for r in rows}


def by_node(farmers: list[FarmerProcess]) -> dict[bytes, FarmerProcess]:
    return {f.identity.node_id.raw: f for f in farmers}


async def fetch_all(
    bridge: Bridge, farmers: list[FarmerProcess], root: bytes, skip: set[bytes]
) -> dict[int, bytes]:
    """Every recorded piece of a set, as its farmer serves it, but for nodes in `skip`."""
    client = PieceClient()
    nodes = by_node(farmers)
    found = {}
    try:
        for number, (node, piece_id) in pieces_of(bridge, root).items():
            if node in skip:
                continue
            limit = bridge.api.signer.sign(
                NodeId(node), piece_id, Action.GET, PIECE_SIZE, int(time.time())
            )
            buffer = bytearray(PIECE_SIZE)
            await client.get(nodes[node].url, limit, memoryview(buffer))
            found[number] = bytes(buffer)
    finally:
        await client.aclose()
    return found


async def test_a_set_at_the_threshold_is_rebuilt_and_one_above_it_waits(
    bridge: Bridge, farmers: list[FarmerProcess]
) -> None:
    weak, weak_segment = await store_set(bridge, farmers[0:5])
    fine, _ = await store_set(bridge, farmers[1:6])
    fine_pieces = pieces_of(bridge, fine)
    # farmer 0 is disqualified by the operator; farmer 1 dies and the uptime checker finds it
    assert bridge.worker.overlay.disqualify(farmers[0].identity.node_id, int(time.time()))
    await farmers[1].kill()
    await bridge.worker.uptime_chore.trigger_and_wait()

    report = await bridge.worker.checker_chore.trigger_and_wait()
    assert (report.piece_sets, report.injured, report.lost) == (2, 1, 0)
    summary = bridge.worker.repair_store.summary()
    assert summary.queued == {3: 1}  # `weak` kept 3 healthy pieces, at m; `fine` 4, above it

    assert await bridge.worker.repair_chore.trigger_and_wait() == 1
    after = pieces_of(bridge, weak)
    lost = {farmers[0].identity.node_id.raw, farmers[1].identity.node_id.raw}
    healthy = {n: v for n, v in after.items() if v[0] not in lost}
    assert len(healthy) >= SCHEME.o
    # New pieces went to nodes that held none of the set, one each.
    holders = [node for node, _ in after.values()]
    assert len(holders) == len(set(holders))
    # What the repairer uploaded is the very code of the original ciphertext: any k decode it.
    served = await fetch_all(bridge, farmers, weak, lost)
    assert served.keys() == healthy.keys()
    expected = SCHEME.codec().encode(weak_segment)
    for number, data in served.items():
        assert data == expected[number]
    # The replaced pieces on the lost nodes are queued for deletion; the queue entry is gone.
    assert bridge.worker.repair_store.summary().queued == {}
    assert bridge.worker.repair_store.summary().repaired == 1
    assert pieces_of(bridge, fine) == fine_pieces  # untouched
    report = await bridge.worker.checker_chore.trigger_and_wait()
    assert (report.injured, report.lost) == (0, 0)


async def test_a_corrupt_source_piece_is_skipped(
    bridge: Bridge, farmers: list[FarmerProcess]
) -> None:
    root, segment = await store_set(bridge, farmers[0:5])
    for farmer in farmers[0:2]:
        assert bridge.worker.overlay.disqualify(farmer.identity.node_id, int(time.time()))
    # the healthy holder the repairer tries first has its piece damaged on disk
    _, piece_id = pieces_of(bridge, root)[2]
    name = piece_id.hex()
    path = farmers[2].config.data_dir / "pieces" / bridge.identity.node_id.hex() / name[:2] / name
    raw = bytearray(path.read_bytes())
    raw[10] ^= 0xFF
    path.write_bytes(bytes(raw))

    await bridge.worker.checker_chore.trigger_and_wait()
    assert await bridge.worker.repair_chore.trigger_and_wait() == 1
    gone = {f.identity.node_id.raw for f in farmers[0:2]}
    served = await fetch_all(bridge, farmers, root, gone)
    pieces = SCHEME.codec().encode(segment)
    good = [n for n, data in served.items() if data == pieces[n]]
    assert len(good) >= SCHEME.o
    assert 2 not in served or served[2] == pieces[2]  # the damaged piece was replaced
    q = t.audit_queue.c
    audits = bridge.db.read(lambda conn: conn.execute(select(q.node_id, q.reason)).all())
    assert [(r.node_id, r.reason) for r in audits] == [(farmers[2].identity.node_id.raw, "repair")]


async def test_lost_sets_are_reported_and_not_attempted(
    bridge: Bridge, farmers: list[FarmerProcess]
) -> None:
    root, _ = await store_set(bridge, farmers[0:5])
    for farmer in farmers[0:4]:
        assert bridge.worker.overlay.disqualify(farmer.identity.node_id, int(time.time()))
    report = await bridge.worker.checker_chore.trigger_and_wait()
    assert (report.piece_sets, report.injured, report.lost) == (1, 0, 1)
    summary = bridge.worker.repair_store.summary()
    assert (summary.lost, summary.queued) == (1, {1: 1})
    assert await bridge.worker.repair_chore.trigger_and_wait() == 0
    assert len(pieces_of(bridge, root)) == 5  # nothing touched
    metric = bridge.worker.registry.get_sample_value(
        "metadisk_bridge_piece_sets", {"state": "lost"}
    )
    assert metric == 1
    # What an operator runs: the same figures, from the database.
    command = [sys.executable, "-m", "metadisk.cli.bridge", "health"]
    where = ["--data-dir", str(bridge.config.data_dir), "--database", bridge.config.database.url]
    shown = await run_command(*command, *where, "--json")
    health = NetworkHealth.model_validate_json(shown)
    assert (health.piece_sets, health.lost, health.injured) == (1, 1, 0)
    assert [(q.healthy, q.sets) for q in health.queue] == [(1, 1)]
    text = await run_command(*command, *where)
    assert "lost         1  (below k healthy pieces)" in text


async def test_a_set_deleted_during_repair_gets_its_new_pieces_deleted(bridge: Bridge) -> None:
    store = bridge.worker.repair_store
    root, now = os.urandom(32), int(time.time())
    bridge.db.write(
        lambda conn: conn.execute(
            insert(t.piece_sets).values(
                root_piece_id=root, refs=1, created_at=now, k=2, m=3, o=5, n=6, piece_size=10
            )
        )
    )
    new = NewPiece(os.urandom(16), 0, b"n" * 32, b"p" * 32, 10, b"h" * 32, now, b"r", None)
    bridge.db.write(lambda conn: conn.execute(delete(t.piece_sets)))
    result = store.commit_repair(root, [new], [], now, now - 3600)
    assert (result.kept, result.discarded) == (0, 1)
    assert (b"n" * 32, b"p" * 32) in queued_deletes(bridge)


async def test_a_piece_moved_underneath_a_repair_is_not_overwritten(bridge: Bridge) -> None:
    store = bridge.worker.repair_store
    root, now = os.urandom(32), int(time.time())

    def setup(conn: object) -> None:
        conn.execute(  # type: ignore[attr-defined]
            insert(t.piece_sets).values(
                root_piece_id=root, refs=1, created_at=now, k=2, m=3, o=5, n=6, piece_size=10
            )
        )
        conn.execute(  # type: ignore[attr-defined]
            insert(t.pieces).values(
                root_piece_id=root, piece_number=0, node_id=b"x" * 32, piece_id=b"q" * 32,
                size=10, piece_hash=b"h" * 32, stored_at=now,
            )
        )  # fmt: skip

    bridge.db.write(setup)
    # The repair found number 0 on node "o"; an exit has moved it to "x" since.
    new = NewPiece(os.urandom(16), 0, b"n" * 32, b"p" * 32, 10, b"h" * 32, now, b"r", b"o" * 32)
    result = store.commit_repair(root, [new], [], now, now - 3600)
    assert (result.kept, result.discarded) == (0, 1)
    assert pieces_of(bridge, root) == {0: (b"x" * 32, b"q" * 32)}
    assert (b"n" * 32, b"p" * 32) in queued_deletes(bridge)
    # A number nobody holds is taken; the one that names the node the repair saw is replaced.
    fresh = NewPiece(os.urandom(16), 1, b"m" * 32, b"s" * 32, 10, b"h" * 32, now, b"r", None)
    swap = NewPiece(os.urandom(16), 0, b"k" * 32, b"t" * 32, 10, b"h" * 32, now, b"r", b"x" * 32)
    result = store.commit_repair(root, [fresh, swap], [], now, now - 3600)
    assert (result.kept, result.discarded) == (2, 0)
    assert pieces_of(bridge, root) == {0: (b"k" * 32, b"t" * 32), 1: (b"m" * 32, b"s" * 32)}
    assert (b"x" * 32, b"q" * 32) in queued_deletes(bridge)  # what was replaced goes


async def test_exits_that_stopped_moving_fail_and_their_sets_are_repaired(
    bridge: Bridge, farmers: list[FarmerProcess]
) -> None:
    root, segment = await store_set(bridge, farmers[0:5])
    stalled = [f.identity.node_id.raw for f in farmers[0:2]]
    long_ago = int(time.time()) - int(bridge.config.repair.exit_timeout) - 10
    n = t.nodes.c
    bridge.db.write(
        lambda conn: conn.execute(
            update(t.nodes)
            .where(n.node_id.in_(stalled))
            .values(exit_started_at=long_ago, exit_progress_at=long_ago)
        )
    )
    report = await bridge.worker.checker_chore.trigger_and_wait()
    assert report.injured == 1  # exiting pieces are not healthy: 3 left, at m
    rows = bridge.db.read(
        lambda conn: conn.execute(select(n.exit_result).where(n.node_id.in_(stalled))).all()
    )
    assert [r.exit_result for r in rows] == ["failed", "failed"]
    assert await bridge.worker.repair_chore.trigger_and_wait() == 1
    holders = {node for node, _ in pieces_of(bridge, root).values()}
    served = await fetch_all(bridge, farmers, root, set(stalled))
    expected = SCHEME.codec().encode(segment)
    assert sum(served[i] == expected[i] for i in served) >= SCHEME.o
    assert len(holders) == len(pieces_of(bridge, root))
