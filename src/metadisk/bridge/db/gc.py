"""Garbage collection in SQL: nodes due a filter (claimed by moving their schedule forward, with
``SKIP LOCKED`` on PostgreSQL) and the ids each must keep, read in one statement."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import Connection, delete, func, select, union_all, update

from metadisk.bridge.db import tables as t
from metadisk.bridge.db.engine import Database
from metadisk.bridge.gc.db import GcNode

_n = t.nodes.c
_p = t.pieces.c
_so = t.segment_orders.c
_to = t.transfer_orders.c

BATCH = 10_000
# Transfer orders kept this long past their expiry: a PUT_REPAIR in flight cannot outlive its
# order limit, so after this its piece either was recorded or is garbage.
TRANSFER_GRACE = 3600


class GcStore:
    """Implements `metadisk.bridge.gc.db.GcDB`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def claim_nodes(self, now: int, lease: int, limit: int) -> list[GcNode]:
        def work(conn: Connection) -> list[GcNode]:
            rows = conn.execute(
                select(_n.node_id, _n.address)
                .where(
                    _n.next_gc_at <= now,
                    _n.disqualified_at.is_(None),
                    _n.exit_finished_at.is_(None),
                    _n.offline_since.is_(None),
                    _n.last_ping_ok_at.is_not(None),
                )
                .order_by(_n.next_gc_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            if rows:
                conn.execute(
                    update(t.nodes)
                    .where(_n.node_id.in_([r.node_id for r in rows]))
                    .values(next_gc_at=now + lease)
                )
            return [GcNode(r.node_id, r.address) for r in rows]

        return self._db.write(work)

    def count_kept(self, node_id: bytes) -> int:
        query = select(
            select(func.count()).where(_p.node_id == node_id).scalar_subquery()
            + select(func.count())
            .where(_so.node_id == node_id, _so.replaced_at.is_(None))
            .scalar_subquery()
            + select(func.count()).where(_to.node_id == node_id).scalar_subquery()
        )
        return int(self._db.read(lambda conn: conn.execute(query).scalar_one()))

    def scan_kept(self, node_id: bytes, consume: Callable[[Sequence[bytes]], None]) -> int:
        kept = union_all(
            select(_p.piece_id.label("piece_id")).where(_p.node_id == node_id),
            select(_so.piece_id).where(_so.node_id == node_id, _so.replaced_at.is_(None)),
            select(_to.piece_id).where(_to.node_id == node_id),
        )

        def work(conn: Connection) -> int:
            total = 0
            result = conn.execution_options(yield_per=BATCH).execute(kept)
            for batch in result.partitions():
                ids = [row[0] for row in batch]
                consume(ids)
                total += len(ids)
            return total

        return self._db.read(work)

    def sent(self, node_id: bytes, now: int, next_at: int) -> None:
        self._db.write(
            lambda conn: conn.execute(
                update(t.nodes)
                .where(_n.node_id == node_id)
                .values(last_gc_at=now, next_gc_at=next_at)
            )
        )

    def failed(self, node_id: bytes, retry_at: int) -> None:
        self._db.write(
            lambda conn: conn.execute(
                update(t.nodes).where(_n.node_id == node_id).values(next_gc_at=retry_at)
            )
        )

    def prune_transfers(self, now: int) -> int:
        def work(conn: Connection) -> int:
            done = conn.execute(
                delete(t.transfer_orders).where(_to.expires_at < now - TRANSFER_GRACE)
            )
            return int(done.rowcount or 0)

        return self._db.write(work)
