"""Garbage collection on the bridge's side, on a real database (SQLite file, or PostgreSQL): the
filter a node is sent names everything it must keep, and its time is taken before the read."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import insert, update

from metadisk.bridge.config import BridgeConfig, DatabaseConfig, RepairConfig
from metadisk.bridge.db import tables as t
from metadisk.bridge.peer import Bridge
from metadisk.core.bloom import BloomFilter
from tests.bridge.inprocess import paused_bridge

NOW = 1_800_000_000


@pytest.fixture
async def bridge(fresh_database: str, tmp_path: Path) -> AsyncIterator[Bridge]:
    config = BridgeConfig(
        data_dir=tmp_path / "bridge",
        database=DatabaseConfig(fresh_database),
        repair=RepairConfig(gc_clock_skew=300, node_gc_interval=3600),
    )
    async with paused_bridge(config, clock=lambda: NOW) as peer:
        yield peer


def ids(count: int) -> list[bytes]:
    return [os.urandom(32) for _ in range(count)]


async def test_the_filter_keeps_recorded_ordered_and_transferring_pieces(bridge: Bridge) -> None:
    node, other = os.urandom(32), os.urandom(32)
    recorded, ordered, replaced, moving, elsewhere = ids(50), ids(5), ids(3), ids(4), ids(20)
    stream, root = os.urandom(16), os.urandom(32)

    def setup(conn: object) -> None:
        run = conn.execute  # type: ignore[attr-defined]
        run(
            insert(t.nodes).values(
                node_id=node, public_key=b"k" * 32, address="http://127.0.0.1:9", last_net="",
                allocated=1, free=1, version="t", contact_timestamp=NOW, last_contact_at=NOW,
                last_ping_ok_at=NOW, created_at=NOW,
            )
        )  # fmt: skip
        run(
            insert(t.piece_sets).values(
                root_piece_id=root, refs=1, created_at=NOW, k=1, m=1, o=1, n=1, piece_size=1
            )
        )
        rows = [(node, p) for p in recorded] + [(other, p) for p in elsewhere]
        run(
            insert(t.pieces),
            [
                {
                    "root_piece_id": root, "piece_number": i, "node_id": n, "piece_id": p,
                    "size": 1, "piece_hash": b"h" * 32, "stored_at": NOW,
                }
                for i, (n, p) in enumerate(rows)
            ],
        )  # fmt: skip
        run(insert(t.users).values(id="u", email="u@x", password_hash="-", created_at=NOW))
        run(
            insert(t.projects).values(
                id="p", owner_id="u", name="p", salt=b"s" * 32, created_at=NOW, max_buckets=1,
                max_storage=1, max_egress=1, max_segments=1,
            )
        )  # fmt: skip
        run(
            insert(t.buckets).values(
                project_id="p", name="b", profile="local", k=1, m=1, o=1, n=1, created_at=NOW
            )
        )
        run(
            insert(t.objects).values(
                stream_id=stream, project_id="p", bucket="b", key="k", status=t.PENDING,
                created_at=NOW,
            )
        )  # fmt: skip
        run(
            insert(t.segments).values(
                stream_id=stream, index=0, status=t.PENDING, root_piece_id=os.urandom(32),
                encrypted_size=1, piece_size=1, k=1, m=1, o=1, n=1, created_at=NOW,
            )
        )  # fmt: skip
        run(
            insert(t.segment_orders),
            [
                {
                    "serial": os.urandom(16), "stream_id": stream, "segment_index": 0,
                    "piece_number": i, "node_id": node, "piece_id": p, "expires_at": NOW + 60,
                    "replaced_at": NOW if p in replaced else None,
                }
                for i, p in enumerate(ordered + replaced)
            ],
        )  # fmt: skip
        run(
            insert(t.transfer_orders),
            [
                {
                    "serial": os.urandom(16), "root_piece_id": root, "piece_number": i,
                    "node_id": node, "piece_id": p, "expires_at": NOW + 60,
                }
                for i, p in enumerate(moving)
            ],
        )  # fmt: skip

    bridge.db.write(setup)
    request = bridge.worker.collector.build(node)
    request.verify_signature(bridge.identity.public_key)
    assert request.node_id.raw == node
    assert (request.issued_at, request.created_before) == (NOW, NOW - 300)
    bloom = BloomFilter.decode(request.filter)
    assert all(p in bloom for p in recorded + ordered + moving)
    # replaced orders and other nodes' pieces are not this node's to keep: with a 10% false
    # positive rate, most of 23 such ids are out
    assert sum(p in bloom for p in replaced + elsewhere) < 12

    # Due nodes are claimed once; a failure brings the next try forward, a success pushes it
    [claimed] = bridge.worker.gc_store.claim_nodes(NOW, 60, 10)
    assert claimed.node_id == node
    assert bridge.worker.gc_store.claim_nodes(NOW, 60, 10) == []
    bridge.worker.gc_store.failed(node, NOW + 5)
    assert bridge.worker.gc_store.claim_nodes(NOW + 5, 60, 10) != []
    bridge.worker.gc_store.sent(node, NOW, NOW + 3600)
    assert bridge.worker.gc_store.claim_nodes(NOW + 3599, 60, 10) == []
    # transfers long expired are forgotten (their pieces then count as garbage)
    bridge.db.write(lambda conn: conn.execute(update(t.transfer_orders).values(expires_at=NOW)))
    assert bridge.worker.gc_store.prune_transfers(NOW + 3601) == len(moving)
