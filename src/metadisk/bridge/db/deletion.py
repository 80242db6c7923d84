"""The queue of piece deletes in SQL, claimed with leases (and SKIP LOCKED on PostgreSQL)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import Connection, delete, func, select, update

from metadisk.bridge.db import tables as t
from metadisk.bridge.db.engine import Database
from metadisk.bridge.deletion.db import PieceDelete

_d = t.piece_deletes.c
_n = t.nodes.c
MAX_BACKOFF = 3600


def backoff(attempts: int) -> int:
    """Seconds before the next attempt at a delete that has failed `attempts` times before."""
    return min(MAX_BACKOFF, 10 << min(attempts, 20))


class DeletionStore:
    """Implements `metadisk.bridge.deletion.db.DeletionDB`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def claim(self, due: int, until: int, limit: int) -> list[PieceDelete]:
        def work(conn: Connection) -> list[PieceDelete]:
            rows = conn.execute(
                select(_d.id, _d.node_id, _d.piece_id, _d.attempts, _n.address, _n.offline_since)
                .select_from(t.piece_deletes.outerjoin(t.nodes, _n.node_id == _d.node_id))
                .where(_d.next_attempt_at <= due)
                .order_by(_d.next_attempt_at, _d.id)
                .limit(limit)
                .with_for_update(of=t.piece_deletes, skip_locked=True)
            ).all()
            if rows:
                conn.execute(
                    update(t.piece_deletes)
                    .where(_d.id.in_([r.id for r in rows]))
                    .values(next_attempt_at=until)
                )
            return [
                PieceDelete(
                    r.id, r.node_id, r.piece_id, r.address, r.attempts, r.offline_since is not None
                )
                for r in rows
            ]

        return self._db.write(work)

    def done(self, ids: Sequence[int]) -> None:
        self._db.write(lambda conn: conn.execute(delete(t.piece_deletes).where(_d.id.in_(ids))))

    def retry_later(self, ids: Sequence[int], now: int, max_attempts: int) -> int:
        def work(conn: Connection) -> int:
            rows = conn.execute(select(_d.id, _d.attempts).where(_d.id.in_(ids))).all()
            drop = [r.id for r in rows if r.attempts + 1 >= max_attempts]
            if drop:
                conn.execute(delete(t.piece_deletes).where(_d.id.in_(drop)))
            # One UPDATE per attempt count, not per row: a cycle may put back a hung farmer's
            # whole share of the queue at once.
            by_attempts: dict[int, list[int]] = defaultdict(list)
            for r in rows:
                if r.attempts + 1 < max_attempts:
                    by_attempts[r.attempts].append(r.id)
            for attempts, group in by_attempts.items():
                conn.execute(
                    update(t.piece_deletes)
                    .where(_d.id.in_(group))
                    .values(attempts=attempts + 1, next_attempt_at=now + backoff(attempts))
                )
            return len(drop)

        return self._db.write(work)

    def release(self, ids: Sequence[int], at: int) -> None:
        query = update(t.piece_deletes).where(_d.id.in_(ids)).values(next_attempt_at=at)
        self._db.write(lambda conn: conn.execute(query))

    def pending(self) -> int:
        query = select(func.count()).select_from(t.piece_deletes)
        return int(self._db.read(lambda conn: conn.execute(query).scalar_one()))
