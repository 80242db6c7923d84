"""Repair in SQL: piece sets' healthy counts, the repair queue (claimed by moving it forward,
with ``SKIP LOCKED`` on PostgreSQL), transfers in flight, and the atomic swap of rebuilt pieces."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, case, delete, func, insert, select, update

from metadisk.bridge.db import tables as t
from metadisk.bridge.db._shared import queue_deletes, upsert
from metadisk.bridge.db.engine import Database
from metadisk.bridge.repair.db import (
    CommitResult,
    HealthSummary,
    Holder,
    NewPiece,
    PlannedTransfer,
    RepairJob,
    SetHealth,
)

_n = t.nodes.c
_p = t.pieces.c
_ps = t.piece_sets.c
_rq = t.repair_queue.c
_to = t.transfer_orders.c
_sh = t.segment_health.c


def healthy_node(online_since: int) -> ColumnElement[bool]:
    """A node whose pieces count as healthy: online, and neither disqualified, suspended nor
    leaving (a missing node row makes every term NULL: not healthy)."""
    return (
        _n.disqualified_at.is_(None)
        & _n.suspended_at.is_(None)
        & _n.offline_since.is_(None)
        & (_n.last_ping_ok_at >= online_since)
        & _n.exit_started_at.is_(None)
        & _n.node_id.is_not(None)
    )


def _retrievable(online_since: int) -> ColumnElement[bool]:
    """A node a repair may download from: online and not disqualified; a suspended or exiting
    node still serves what it holds."""
    return (
        _n.disqualified_at.is_(None)
        & _n.offline_since.is_(None)
        & (_n.last_ping_ok_at >= online_since)
        & (func.coalesce(_n.exit_result, "") != "failed")
        & _n.node_id.is_not(None)
    )


class RepairStore:
    """Implements `metadisk.bridge.repair.db.RepairDB`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- the checker

    def sets_after(self, after: bytes, limit: int) -> list[bytes]:
        query = (
            select(_ps.root_piece_id)
            .where(_ps.root_piece_id > after)
            .order_by(_ps.root_piece_id)
            .limit(limit)
        )
        return self._db.read(lambda conn: list(conn.execute(query).scalars()))

    def check_sets(self, roots: Sequence[bytes], online_since: int, now: int) -> list[SetHealth]:
        healthy = func.sum(case((healthy_node(online_since), 1), else_=0))
        query = (
            select(_ps.root_piece_id, _ps.k, _ps.m, _ps.o, _ps.n, healthy.label("healthy"))
            .select_from(
                t.piece_sets.outerjoin(t.pieces, _p.root_piece_id == _ps.root_piece_id).outerjoin(
                    t.nodes, _n.node_id == _p.node_id
                )
            )
            .where(_ps.root_piece_id.in_(roots))
            .group_by(_ps.root_piece_id, _ps.k, _ps.m, _ps.o, _ps.n)
        )

        def work(conn: Connection) -> list[SetHealth]:
            # One transaction with the queue's update: on SQLite (writers one at a time) a
            # repair's swap is wholly before or after the count. No lock on PostgreSQL: share
            # locks on a thousand sets could deadlock with deletes, and a set queued again
            # just after its repair costs one claim that finds it healed.
            sets = [
                SetHealth(r.root_piece_id, r.k, r.m, r.o, r.n, int(r.healthy or 0))
                for r in conn.execute(query)
            ]
            weak = [s for s in sets if s.healthy <= s.m]
            healed = [s.root_piece_id for s in sets if s.healthy > s.m]
            _queue(conn, weak, healed, now)
            return sets

        return self._db.write(work)

    def queue_repairs(self, sets: Sequence[SetHealth], healed: Sequence[bytes], now: int) -> None:
        if sets or healed:
            self._db.write(lambda conn: _queue(conn, sets, healed, now))

    def finish_check(
        self, started_at: int, now: int, piece_sets: int, injured: int, lost: int
    ) -> None:
        def work(conn: Connection) -> None:
            conn.execute(delete(t.repair_queue).where(_rq.checked_at < started_at))
            upsert(
                conn,
                t.segment_health,
                {
                    "id": 1,
                    "checked_at": now,
                    "piece_sets": piece_sets,
                    "injured": injured,
                    "lost": lost,
                    "repaired": 0,
                },
                ["id"],
                {"checked_at": now, "piece_sets": piece_sets, "injured": injured, "lost": lost},
            )

        self._db.write(work)

    # -- the repairer

    def claim_repairs(self, now: int, lease: int, limit: int) -> list[bytes]:
        def work(conn: Connection) -> list[bytes]:
            roots = list(
                conn.execute(
                    select(_rq.root_piece_id)
                    .select_from(
                        t.repair_queue.join(t.piece_sets, _ps.root_piece_id == _rq.root_piece_id)
                    )
                    .where(_rq.next_attempt_at <= now, _rq.healthy >= _ps.k)
                    .order_by(_rq.healthy, _rq.queued_at)
                    .limit(limit)
                    .with_for_update(of=t.repair_queue, skip_locked=True)
                ).scalars()
            )
            if roots:
                conn.execute(
                    update(t.repair_queue)
                    .where(_rq.root_piece_id.in_(roots))
                    .values(next_attempt_at=now + lease)
                )
            return roots

        return self._db.write(work)

    def repair_job(self, root: bytes, online_since: int) -> RepairJob | None:
        def work(conn: Connection) -> RepairJob | None:
            shape = conn.execute(
                select(_ps.k, _ps.m, _ps.o, _ps.n, _ps.piece_size).where(_ps.root_piece_id == root)
            ).first()
            if shape is None:
                return None
            attempts = conn.execute(select(_rq.attempts).where(_rq.root_piece_id == root)).scalar()
            return RepairJob(
                root,
                shape.k,
                shape.m,
                shape.o,
                shape.n,
                shape.piece_size,
                tuple(_holders(conn, root, online_since)),
                attempts or 0,
            )

        return self._db.read(work)

    def plan_transfers(self, root: bytes, transfers: Sequence[PlannedTransfer]) -> None:
        if not transfers:
            return
        rows = [
            {
                "serial": each.serial,
                "root_piece_id": root,
                "piece_number": each.piece_number,
                "node_id": each.node_id,
                "piece_id": each.piece_id,
                "expires_at": each.expires_at,
            }
            for each in transfers
        ]
        self._db.write(lambda conn: conn.execute(insert(t.transfer_orders), rows))

    def commit_repair(
        self,
        root: bytes,
        pieces: Sequence[NewPiece],
        dropped: Sequence[bytes],
        now: int,
        online_since: int,
    ) -> CommitResult:
        def work(conn: Connection) -> CommitResult:
            serials = [p.serial for p in pieces] + list(dropped)
            if dropped:
                # A failed or cancelled upload may still have landed: ask for it back now
                # rather than leave it to garbage collection (a delete of nothing is a 404).
                landed = conn.execute(
                    select(_to.node_id, _to.piece_id).where(_to.serial.in_(list(dropped)))
                ).all()
                queue_deletes(conn, [(r.node_id, r.piece_id) for r in landed], now)
            if serials:
                conn.execute(delete(t.transfer_orders).where(_to.serial.in_(serials)))
            # Held for the transaction: a concurrent delete of the set waits, then queues the
            # new pieces with the rest; one that came first leaves no row here.
            exists = conn.execute(
                select(_ps.root_piece_id).where(_ps.root_piece_id == root).with_for_update()
            ).first()
            if exists is None:
                queue_deletes(conn, [(p.node_id, p.piece_id) for p in pieces], now)
                conn.execute(delete(t.repair_queue).where(_rq.root_piece_id == root))
                return CommitResult(0, len(pieces), 0)
            kept, discarded = 0, []
            for piece in pieces:
                if _take_row(conn, root, piece, now):
                    kept += 1
                else:
                    discarded.append((piece.node_id, piece.piece_id))
            queue_deletes(conn, discarded, now)
            healthy = len([h for h in _holders(conn, root, online_since) if h.healthy])
            if kept:
                conn.execute(delete(t.repair_queue).where(_rq.root_piece_id == root))
                conn.execute(
                    update(t.segment_health).where(_sh.id == 1).values(repaired=_sh.repaired + 1)
                )
            return CommitResult(kept, len(discarded), healthy)

        return self._db.write(work)

    def report_bad(self, root: bytes, bad: Mapping[int, bytes], now: int) -> None:
        def work(conn: Connection) -> None:
            for number, node in bad.items():
                upsert(
                    conn,
                    t.audit_queue,
                    {
                        "root_piece_id": root,
                        "piece_number": number,
                        "node_id": node,
                        "reason": "repair",
                        "created_at": now,
                    },
                    ["root_piece_id", "piece_number"],
                    {"node_id": node, "reason": "repair"},
                )

        self._db.write(work)

    def retry_later(self, root: bytes, now: int, delay: int, max_attempts: int) -> None:
        def work(conn: Connection) -> None:
            attempts = conn.execute(select(_rq.attempts).where(_rq.root_piece_id == root)).scalar()
            if attempts is None:
                return
            # Past max_attempts the set waits longer, for nodes to come and go, but stays
            # queued: the checker keeps it there while it is weak.
            wait = delay if attempts + 1 < max_attempts else max(delay, 3600)
            conn.execute(
                update(t.repair_queue)
                .where(_rq.root_piece_id == root)
                .values(attempts=attempts + 1, next_attempt_at=now + wait)
            )

        self._db.write(work)

    def summary(self) -> HealthSummary:
        def work(conn: Connection) -> HealthSummary:
            row = conn.execute(select(t.segment_health).where(_sh.id == 1)).first()
            queued = conn.execute(
                select(_rq.healthy, func.count()).group_by(_rq.healthy).order_by(_rq.healthy)
            ).all()
            counts = {int(h): int(c) for h, c in queued}
            if row is None:
                return HealthSummary(None, 0, 0, 0, 0, counts)
            return HealthSummary(
                row.checked_at, row.piece_sets, row.injured, row.lost, row.repaired, counts
            )

        return self._db.read(work)


def _holders(conn: Connection, root: bytes, online_since: int) -> list[Holder]:
    rows = conn.execute(
        select(
            _p.piece_number,
            _p.node_id,
            _p.piece_id,
            _p.size,
            _p.piece_hash,
            _n.address,
            _n.last_net,
            case((healthy_node(online_since), True), else_=False).label("healthy"),
            case((_retrievable(online_since), True), else_=False).label("retrievable"),
        )
        .select_from(t.pieces.outerjoin(t.nodes, _n.node_id == _p.node_id))
        .where(_p.root_piece_id == root)
        .order_by(_p.piece_number)
    ).all()
    return [
        Holder(
            r.piece_number,
            r.node_id,
            r.piece_id,
            r.size,
            r.piece_hash,
            r.address,
            r.last_net or "",
            bool(r.healthy),
            bool(r.retrievable),
        )
        for r in rows
    ]


def _take_row(conn: Connection, root: bytes, piece: NewPiece, now: int) -> bool:
    """Put `piece` in its piece number's row if that row is as the repair found it: naming
    `piece.replaces`, or absent when it replaces nothing. Queues a delete of what it replaces."""
    values: dict[str, Any] = {
        "node_id": piece.node_id,
        "piece_id": piece.piece_id,
        "size": piece.size,
        "piece_hash": piece.piece_hash,
        "stored_at": piece.stored_at,
        "receipt": piece.receipt,
    }
    at = (_p.root_piece_id == root) & (_p.piece_number == piece.piece_number)
    if piece.replaces is None:
        if conn.execute(select(_p.node_id).where(at)).first() is not None:
            return False
        conn.execute(
            insert(t.pieces).values(root_piece_id=root, piece_number=piece.piece_number, **values)
        )
        return True
    old = conn.execute(
        select(_p.piece_id).where(at, _p.node_id == piece.replaces).with_for_update()
    ).first()
    if old is None:
        return False  # moved by an exit, or repaired by someone else, meanwhile
    conn.execute(update(t.pieces).where(at).values(**values))
    queue_deletes(conn, [(piece.replaces, old.piece_id)], now)
    return True


def _queue(conn: Connection, sets: Sequence[SetHealth], healed: Sequence[bytes], now: int) -> None:
    for each in sets:
        upsert(
            conn,
            t.repair_queue,
            {
                "root_piece_id": each.root_piece_id,
                "healthy": each.healthy,
                "queued_at": now,
                "checked_at": now,
                "next_attempt_at": now,
            },
            ["root_piece_id"],
            {"healthy": each.healthy, "checked_at": now},
        )
    if healed:
        conn.execute(delete(t.repair_queue).where(_rq.root_piece_id.in_(healed)))
