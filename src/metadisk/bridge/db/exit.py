"""Graceful exit in SQL: the exit's state on the node's row, and its transfer orders.

Writes that hand out or record transfers lock the exiting node's row first (``FOR UPDATE`` on
PostgreSQL; SQLite writers queue anyway), so two requests of one node never both see a piece
without a transfer order and both order one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Connection, and_, delete, exists, func, insert, select, update

from metadisk.bridge.db import tables as t
from metadisk.bridge.db._shared import queue_deletes
from metadisk.bridge.db.engine import Database
from metadisk.bridge.exit.db import ExitNode, Moved, NewTransfer, OpenTransfer, PieceToMove

_n = t.nodes.c
_p = t.pieces.c
_to = t.transfer_orders.c
_so = t.segment_orders.c

EXITED = "exited"
FAILED = "failed"

_EXIT_COLUMNS = (
    _n.node_id,
    _n.disqualified_at,
    _n.exit_started_at,
    _n.exit_progress_at,
    _n.exit_finished_at,
    _n.exit_result,
)


def _exit_node(row: Any) -> ExitNode:
    return ExitNode(
        node_id=row.node_id,
        disqualified=row.disqualified_at is not None,
        started_at=row.exit_started_at,
        progress_at=row.exit_progress_at,
        finished_at=row.exit_finished_at,
        result=row.exit_result,
    )


class ExitStore:
    """Implements `metadisk.bridge.exit.db.ExitDB`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def exit_node(self, node_id: bytes) -> ExitNode | None:
        query = select(*_EXIT_COLUMNS).where(_n.node_id == node_id)
        row = self._db.read(lambda conn: conn.execute(query).first())
        return None if row is None else _exit_node(row)

    def begin(self, node_id: bytes, now: int) -> None:
        statement = (
            update(t.nodes)
            .where(_n.node_id == node_id, _n.exit_started_at.is_(None))
            .values(exit_started_at=now, exit_progress_at=now)
        )
        self._db.write(lambda conn: conn.execute(statement))

    def pieces_to_move(
        self, node_id: bytes, now: int, limit: int, draw: bytes
    ) -> list[PieceToMove]:
        ordered = exists().where(
            _to.root_piece_id == _p.root_piece_id,
            _to.piece_number == _p.piece_number,
            _to.expires_at > now,
        )
        base = (
            select(_p.root_piece_id, _p.piece_number, _p.piece_id, _p.size, _p.piece_hash)
            .where(_p.node_id == node_id, ~ordered)
            .order_by(_p.piece_id)
        )

        def work(conn: Connection) -> list[PieceToMove]:
            # From a random piece id on (`ix_pieces_node_piece`), so pieces that cannot be placed
            # now do not hold up the others round after round.
            rows = list(conn.execute(base.where(_p.piece_id >= draw).limit(limit)))
            if len(rows) < limit:
                rows += conn.execute(base.where(_p.piece_id < draw).limit(limit - len(rows)))
            roots = list({r.root_piece_id for r in rows})
            if not roots:
                return []
            holders: dict[bytes, set[bytes]] = defaultdict(set)
            nets: dict[bytes, set[str]] = defaultdict(set)
            held = (
                select(_p.root_piece_id, _p.node_id, _n.last_net)
                .select_from(t.pieces.outerjoin(t.nodes, _n.node_id == _p.node_id))
                .where(_p.root_piece_id.in_(roots))
            )
            sent = (
                select(_to.root_piece_id, _to.node_id, _n.last_net)
                .select_from(t.transfer_orders.outerjoin(t.nodes, _n.node_id == _to.node_id))
                .where(_to.root_piece_id.in_(roots), _to.expires_at > now)
            )
            for query in (held, sent):
                for r in conn.execute(query):
                    holders[r.root_piece_id].add(r.node_id)
                    if r.node_id != node_id and r.last_net:
                        nets[r.root_piece_id].add(r.last_net)
            return [
                PieceToMove(
                    r.root_piece_id,
                    r.piece_number,
                    r.piece_id,
                    r.size,
                    r.piece_hash,
                    frozenset(holders[r.root_piece_id]),
                    frozenset(nets[r.root_piece_id]),
                )
                for r in rows
            ]

        return self._db.read(work)

    def add_transfers(
        self, node_id: bytes, transfers: Sequence[NewTransfer], now: int
    ) -> set[bytes]:
        def work(conn: Connection) -> set[bytes]:
            node = _lock_node(conn, node_id)
            if node is None or node.exit_finished_at is not None:
                return set()
            recorded: set[bytes] = set()
            for transfer in transfers:
                piece = (_p.root_piece_id == transfer.root_piece_id) & (
                    _p.piece_number == transfer.piece_number
                )
                still_here = conn.execute(select(_p.node_id).where(piece)).scalar()
                if still_here != node_id:
                    continue  # moved, lost or deleted since it was read
                same = (_to.root_piece_id == transfer.root_piece_id) & (
                    _to.piece_number == transfer.piece_number
                )
                orders = conn.execute(
                    select(
                        _to.serial, _to.node_id, _to.piece_id, _to.expires_at, _to.from_node_id
                    ).where(same)
                ).all()
                if any(o.expires_at > now for o in orders):
                    continue
                # Expired orders of this exit: their piece may have landed and never been
                # reported (the farmer crashed), so ask the node to delete it.
                stale = [o for o in orders if o.from_node_id == node_id]
                _drop_orders(conn, stale, now)
                conn.execute(
                    insert(t.transfer_orders).values(
                        serial=transfer.serial,
                        root_piece_id=transfer.root_piece_id,
                        piece_number=transfer.piece_number,
                        node_id=transfer.node_id,
                        piece_id=transfer.piece_id,
                        from_node_id=node_id,
                        expires_at=transfer.expires_at,
                    )
                )
                recorded.add(transfer.serial)
            return recorded

        return self._db.write(work)

    def open_transfers(self, serials: Collection[bytes]) -> list[OpenTransfer]:
        if not serials:
            return []
        query = (
            select(
                _to.serial,
                _to.root_piece_id,
                _to.piece_number,
                _to.node_id,
                _to.piece_id,
                _to.from_node_id,
                _n.public_key,
                _p.node_id.label("holder"),
                _p.piece_id.label("holder_piece_id"),
                _p.piece_hash,
                _p.size,
            )
            .select_from(
                t.transfer_orders.outerjoin(t.nodes, _n.node_id == _to.node_id).outerjoin(
                    t.pieces,
                    and_(
                        _p.root_piece_id == _to.root_piece_id,
                        _p.piece_number == _to.piece_number,
                    ),
                )
            )
            .where(_to.serial.in_(list(serials)))
        )
        rows = self._db.read(lambda conn: conn.execute(query).all())
        return [
            OpenTransfer(
                serial=r.serial,
                root_piece_id=r.root_piece_id,
                piece_number=r.piece_number,
                node_id=r.node_id,
                piece_id=r.piece_id,
                from_node_id=r.from_node_id,
                public_key=r.public_key,
                holder=r.holder,
                holder_piece_id=r.holder_piece_id,
                piece_hash=r.piece_hash,
                size=r.size,
            )
            for r in rows
        ]

    def record_moves(
        self, node_id: bytes, moved: Sequence[Moved], dropped: Collection[bytes], now: int
    ) -> int:
        def work(conn: Connection) -> int:
            _lock_node(conn, node_id)
            count = 0
            moot: list[tuple[bytes, bytes]] = []
            for move in moved:
                still = conn.execute(
                    delete(t.transfer_orders)
                    .where(_to.serial == move.serial, _to.from_node_id == node_id)
                    .returning(_to.serial)
                ).first()
                if still is None:
                    continue  # recorded by a request that raced this one
                changed = conn.execute(
                    update(t.pieces)
                    .where(
                        _p.root_piece_id == move.root_piece_id,
                        _p.piece_number == move.piece_number,
                        _p.node_id == node_id,
                    )
                    .values(
                        node_id=move.node_id,
                        piece_id=move.piece_id,
                        receipt=move.receipt,
                        stored_at=move.stored_at,
                    )
                ).rowcount
                if changed:
                    count += 1
                else:
                    # A repair or a delete got to the piece first: the copy is not needed. The
                    # exiting node's own copy needs no delete: it empties itself once exited.
                    moot.append((move.node_id, move.piece_id))
            queue_deletes(conn, moot, now)
            if dropped:
                stale = conn.execute(
                    select(_to.serial, _to.node_id, _to.piece_id).where(
                        _to.serial.in_(list(dropped)), _to.from_node_id == node_id
                    )
                ).all()
                _drop_orders(conn, stale, now)
            if count:
                _progress(conn, node_id, now)
            return count

        return self._db.write(work)

    def recorded(self, pieces: Collection[tuple[bytes, bytes]]) -> set[tuple[bytes, bytes]]:
        if not pieces:
            return set()
        pairs = list(pieces)

        def work(conn: Connection) -> set[tuple[bytes, bytes]]:
            found = set()
            for node, piece in pairs:  # a few at most: receipts sent again after a lost answer
                query = select(_p.node_id).where(_p.node_id == node, _p.piece_id == piece)
                if conn.execute(query.limit(1)).first() is not None:
                    found.add((node, piece))
            return found

        return self._db.read(work)

    def cancel_unreported(self, node_id: bytes, now: int) -> int:
        def work(conn: Connection) -> int:
            _lock_node(conn, node_id)
            orders = conn.execute(
                select(_to.serial, _to.node_id, _to.piece_id).where(_to.from_node_id == node_id)
            ).all()
            _drop_orders(conn, orders, now)
            return len(orders)

        return self._db.write(work)

    def drop_lost(self, node_id: bytes, piece_ids: Collection[bytes], now: int) -> int:
        def work(conn: Connection) -> int:
            _lock_node(conn, node_id)
            rows = _numbers(conn, node_id, piece_ids)
            for r in rows:
                _cancel(conn, node_id, r.root_piece_id, r.piece_number, now)
                conn.execute(
                    delete(t.pieces).where(
                        _p.root_piece_id == r.root_piece_id,
                        _p.piece_number == r.piece_number,
                        _p.node_id == node_id,
                    )
                )
            if rows:
                _progress(conn, node_id, now)  # it answers for its pieces: it cooperates
            return len(rows)

        return self._db.write(work)

    def cancel_transfers(self, node_id: bytes, piece_ids: Collection[bytes], now: int) -> int:
        def work(conn: Connection) -> int:
            _lock_node(conn, node_id)
            rows = _numbers(conn, node_id, piece_ids)
            return sum(_cancel(conn, node_id, r.root_piece_id, r.piece_number, now) for r in rows)

        return self._db.write(work)

    def finish_if_done(self, node_id: bytes, now: int) -> tuple[ExitNode, int]:
        holds = exists().where(_p.node_id == node_id)
        # An upload that ordered a piece here before the exit began may still commit it; wait
        # while its order limit is valid (afterwards the farmer refuses the limit anyway).
        pending = exists().where(
            _so.node_id == node_id, _so.replaced_at.is_(None), _so.expires_at > now
        )
        statement = (
            update(t.nodes)
            .where(
                _n.node_id == node_id,
                _n.exit_started_at.is_not(None),
                _n.exit_finished_at.is_(None),
                ~holds,
                ~pending,
            )
            .values(exit_finished_at=now, exit_result=EXITED)
        )

        def work(conn: Connection) -> tuple[ExitNode, int]:
            conn.execute(statement)
            row = conn.execute(select(*_EXIT_COLUMNS).where(_n.node_id == node_id)).one()
            return _exit_node(row), _remaining(conn, node_id)

        return self._db.write(work)

    def remaining(self, node_id: bytes) -> int:
        return self._db.read(lambda conn: _remaining(conn, node_id))

    def fail(self, node_ids: Collection[bytes], now: int) -> None:
        if node_ids:
            self._db.write(lambda conn: _fail(conn, _n.node_id.in_(list(node_ids)), now))

    def fail_stalled(self, now: int, timeout: float) -> list[bytes]:
        cutoff = now - int(timeout)
        return self._db.write(lambda conn: _fail(conn, _n.exit_progress_at < cutoff, now))

    def exit_states(self) -> dict[bytes, ExitNode]:
        query = select(*_EXIT_COLUMNS).where(_n.exit_started_at.is_not(None))
        rows = self._db.read(lambda conn: conn.execute(query).all())
        return {r.node_id: _exit_node(r) for r in rows}


def _lock_node(conn: Connection, node_id: bytes) -> Any:
    return conn.execute(
        select(_n.exit_finished_at).where(_n.node_id == node_id).with_for_update()
    ).first()


def _remaining(conn: Connection, node_id: bytes) -> int:
    return int(conn.execute(select(func.count()).where(_p.node_id == node_id)).scalar_one())


def _progress(conn: Connection, node_id: bytes, now: int) -> None:
    conn.execute(update(t.nodes).where(_n.node_id == node_id).values(exit_progress_at=now))


def _drop_orders(conn: Connection, orders: Sequence[Any], now: int) -> None:
    """Delete transfer orders (rows with serial, node_id, piece_id), queueing their pieces."""
    if orders:
        conn.execute(delete(t.transfer_orders).where(_to.serial.in_([o.serial for o in orders])))
        queue_deletes(conn, [(o.node_id, o.piece_id) for o in orders], now)


def _cancel(conn: Connection, node_id: bytes, root: bytes, number: int, now: int) -> int:
    orders = conn.execute(
        select(_to.serial, _to.node_id, _to.piece_id).where(
            _to.root_piece_id == root, _to.piece_number == number, _to.from_node_id == node_id
        )
    ).all()
    _drop_orders(conn, orders, now)
    return len(orders)


def _fail(conn: Connection, which: Any, now: int) -> list[bytes]:
    failed = [
        r.node_id
        for r in conn.execute(
            update(t.nodes)
            .where(which, _n.exit_started_at.is_not(None), _n.exit_finished_at.is_(None))
            .values(exit_finished_at=now, exit_result=FAILED)
            .returning(_n.node_id)
        )
    ]
    if failed:
        # Its transfers are moot now: whatever landed on the new nodes goes again.
        orders = conn.execute(
            select(_to.serial, _to.node_id, _to.piece_id).where(_to.from_node_id.in_(failed))
        ).all()
        _drop_orders(conn, orders, now)
    return failed


def _numbers(conn: Connection, node_id: bytes, piece_ids: Collection[bytes]) -> list[Any]:
    """(root piece id, piece number) of each of `piece_ids` the node holds."""
    query = select(_p.root_piece_id, _p.piece_number).where(
        _p.node_id == node_id, _p.piece_id.in_(list(piece_ids))
    )
    return list(conn.execute(query).all())
