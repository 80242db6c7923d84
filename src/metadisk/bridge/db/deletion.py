"""The queue of piece deletes in SQL, claimed with leases (and SKIP LOCKED on PostgreSQL)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, delete, func, select, update

from metadisk.bridge.db import tables as t
from metadisk.bridge.db.engine import Database
from metadisk.bridge.deletion.db import PieceDelete

_d = t.piece_deletes.c
MAX_BACKOFF = 3600


class DeletionStore:
    """Implements `metadisk.bridge.deletion.db.DeletionDB`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def claim(self, now: int, lease: int, limit: int) -> list[PieceDelete]:
        def work(conn: Connection) -> list[PieceDelete]:
            rows = conn.execute(
                select(_d.id, _d.node_id, _d.piece_id, _d.attempts, t.nodes.c.address)
                .select_from(t.piece_deletes.outerjoin(t.nodes, t.nodes.c.node_id == _d.node_id))
                .where(_d.next_attempt_at <= now)
                .order_by(_d.next_attempt_at, _d.id)
                .limit(limit)
                .with_for_update(of=t.piece_deletes, skip_locked=True)
            ).all()
            if rows:
                conn.execute(
                    update(t.piece_deletes)
                    .where(_d.id.in_([r.id for r in rows]))
                    .values(next_attempt_at=now + lease)
                )
            return [PieceDelete(r.id, r.node_id, r.piece_id, r.address, r.attempts) for r in rows]

        return self._db.write(work)

    def done(self, ids: Sequence[int]) -> None:
        self._db.write(lambda conn: conn.execute(delete(t.piece_deletes).where(_d.id.in_(ids))))

    def retry_later(self, ids: Sequence[int], now: int, max_attempts: int) -> int:
        def work(conn: Connection) -> int:
            rows = conn.execute(select(_d.id, _d.attempts).where(_d.id.in_(ids))).all()
            drop = [r.id for r in rows if r.attempts + 1 >= max_attempts]
            if drop:
                conn.execute(delete(t.piece_deletes).where(_d.id.in_(drop)))
            for r in rows:
                if r.id not in drop:
                    conn.execute(
                        update(t.piece_deletes)
                        .where(_d.id == r.id)
                        .values(
                            attempts=r.attempts + 1,
                            next_attempt_at=now + min(MAX_BACKOFF, 10 * 2**r.attempts),
                        )
                    )
            return len(drop)

        return self._db.write(work)

    def pending(self) -> int:
        query = select(func.count()).select_from(t.piece_deletes)
        return int(self._db.read(lambda conn: conn.execute(query).scalar_one()))
