"""Segments of a pending upload: begin, order limits and their replacements, commit.

The writes lock the upload's row first (`_lock_pending`) and do nothing if it is no longer
pending.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, delete, insert, select, update

from metadisk.bridge.db import tables as t
from metadisk.bridge.db._shared import IS_PENDING, SEGMENT_PENDING, queue_deletes
from metadisk.bridge.db.engine import Database
from metadisk.bridge.db.metainfo._shared import as_upload, reserve
from metadisk.bridge.metainfo.db import Caps, NewSegment, Outcome, SegmentState, Upload
from metadisk.bridge.orders.service import AcceptedPiece, IssuedOrder
from metadisk.core.erasure import RedundancyScheme
from metadisk.core.identity import NodeId

_o = t.objects.c
_s = t.segments.c
_so = t.segment_orders.c
_n = t.nodes.c


def begin_segment(
    db: Database,
    upload: Upload,
    segment: NewSegment,
    orders: Sequence[IssuedOrder],
    now: int,
    caps: Caps,
) -> Outcome:
    def work(conn: Connection) -> Outcome:
        if _lock_pending(conn, upload.stream_id) is None:
            return Outcome.NOT_FOUND
        where = (_s.stream_id == upload.stream_id) & (_s.index == segment.index)
        status = conn.execute(select(_s.status).where(where)).scalar()
        if status == t.COMMITTED:
            return Outcome.SEGMENT_COMMITTED
        # A segment begun again still reserves what its first begin promised: those order
        # limits stay valid on farmers until they expire, whatever this row says.
        reserved = reserve(
            conn,
            upload.project_id,
            upload.stream_id,
            caps,
            storage=segment.encrypted_size,
            segments=1 if status is None else 0,
            orders=len(orders),
        )
        if reserved is not Outcome.OK:
            return reserved
        if status is not None:
            # Begun again (the client retries): the earlier order limits' pieces must go.
            old = conn.execute(
                select(_so.node_id, _so.piece_id).where(
                    _so.stream_id == upload.stream_id,
                    _so.segment_index == segment.index,
                    _so.replaced_at.is_(None),  # queued for deletion when it was replaced
                )
            ).all()
            queue_deletes(conn, [(r.node_id, r.piece_id) for r in old], now)
            conn.execute(delete(t.segments).where(where))
        rs = segment.redundancy
        conn.execute(
            insert(t.segments).values(
                stream_id=upload.stream_id,
                index=segment.index,
                status=t.PENDING,
                root_piece_id=segment.root_piece_id,
                encrypted_size=segment.encrypted_size,
                piece_size=segment.piece_size,
                k=rs.k,
                m=rs.m,
                o=rs.o,
                n=rs.n,
                created_at=now,
            )
        )
        _insert_orders(conn, upload.stream_id, segment.index, orders)
        return Outcome.OK

    return db.write(work)


def segment_state(
    db: Database, project_id: str, stream_id: bytes, index: int
) -> SegmentState | None:
    head = (
        select(
            _o.stream_id,
            _o.project_id,
            _o.bucket,
            _o.key,
            _o.created_at,
            _o.deadline,
            _s.root_piece_id,
            _s.piece_size,
            _s.k,
            _s.m,
            _s.o,
            _s.n,
        )
        .select_from(t.objects.join(t.segments, _s.stream_id == _o.stream_id))
        .where(
            _o.stream_id == stream_id,
            _o.project_id == project_id,
            IS_PENDING,
            _s.index == index,
            SEGMENT_PENDING,
        )
    )
    order_query = (
        select(
            _so.serial,
            _so.piece_number,
            _so.node_id,
            _so.piece_id,
            _so.expires_at,
            _so.replaced_at,
            _n.public_key,
            _n.last_net,
            _n.exit_finished_at,
        )
        .select_from(t.segment_orders.outerjoin(t.nodes, _n.node_id == _so.node_id))
        .where(_so.stream_id == stream_id, _so.segment_index == index)
        .order_by(_so.piece_number)
    )

    def work(conn: Connection) -> SegmentState | None:
        row = conn.execute(head).first()
        if row is None:
            return None
        rows = conn.execute(order_query).all()
        orders = [
            IssuedOrder(
                r.serial,
                r.piece_number,
                NodeId(r.node_id),
                r.piece_id,
                row.piece_size,
                r.expires_at,
            )
            for r in rows
            if r.replaced_at is None
        ]
        # A node whose graceful exit ended emptied its disk: its receipts (of order limits it
        # took before it left) are refused as from an unknown node, whatever their age.
        keys = {
            NodeId(r.node_id): r.public_key
            for r in rows
            if r.public_key is not None and r.exit_finished_at is None
        }
        nets = {NodeId(r.node_id): r.last_net for r in rows if r.last_net is not None}
        return SegmentState(
            upload=as_upload(row),
            index=index,
            root_piece_id=row.root_piece_id,
            piece_size=row.piece_size,
            redundancy=RedundancyScheme(row.k, row.m, row.o, row.n),
            orders=orders,
            public_keys=keys,
            nets=nets,
            tried=frozenset(r.node_id for r in rows),
        )

    return db.read(work)


def replace_orders(
    db: Database,
    stream_id: bytes,
    index: int,
    old: Sequence[IssuedOrder],
    new: Sequence[IssuedOrder],
    now: int,
    caps: Caps,
) -> Outcome:
    def work(conn: Connection) -> Outcome:
        project_id = _lock_pending(conn, stream_id)
        if project_id is None:
            return Outcome.NOT_FOUND
        status = conn.execute(
            select(_s.status).where(_s.stream_id == stream_id, _s.index == index)
        ).scalar()
        if status != t.PENDING:
            return Outcome.NOT_FOUND
        # The replaced limits stay counted: a farmer may still take their pieces.
        reserved = reserve(conn, project_id, stream_id, caps, orders=len(new))
        if reserved is not Outcome.OK:
            return reserved
        serials = [order.serial for order in old]
        conn.execute(
            update(t.segment_orders).where(_so.serial.in_(serials)).values(replaced_at=now)
        )
        # The failed farmer may have kept part or all of the piece.
        queue_deletes(conn, [(order.node_id.raw, order.piece_id) for order in old], now)
        _insert_orders(conn, stream_id, index, new)
        return Outcome.OK

    return db.write(work)


def commit_segment(
    db: Database,
    stream_id: bytes,
    index: int,
    pieces: Sequence[AcceptedPiece],
    plain_size: int,
    encrypted_metadata: bytes | None,
    now: int,
) -> bool:
    def work(conn: Connection) -> bool:
        if _lock_pending(conn, stream_id) is None:
            return False
        row = conn.execute(
            update(t.segments)
            .where(_s.stream_id == stream_id, _s.index == index, SEGMENT_PENDING)
            .values(
                status=t.COMMITTED,
                plain_size=plain_size,
                encrypted_metadata=encrypted_metadata,
            )
            .returning(_s.root_piece_id, _s.k, _s.m, _s.o, _s.n, _s.piece_size)
        ).first()
        if row is None:
            return False
        root = row.root_piece_id
        conn.execute(
            insert(t.piece_sets).values(
                root_piece_id=root,
                refs=1,
                created_at=now,
                k=row.k,
                m=row.m,
                o=row.o,
                n=row.n,
                piece_size=row.piece_size,
            )
        )
        conn.execute(
            insert(t.pieces),
            [
                {
                    "root_piece_id": root,
                    "piece_number": piece.piece_number,
                    "node_id": piece.node_id.raw,
                    "piece_id": piece.piece_id,
                    "size": piece.size,
                    "piece_hash": piece.piece_hash,
                    "stored_at": piece.stored_at,
                    "receipt": piece.receipt or None,
                }
                for piece in pieces
            ],
        )
        # Order limits whose piece is not recorded: a cancelled straggler may still have
        # finished its upload, so ask its farmer to delete it.
        used = [piece.serial for piece in pieces]
        in_segment = (_so.stream_id == stream_id) & (_so.segment_index == index)
        unused = conn.execute(
            select(_so.node_id, _so.piece_id).where(
                in_segment, _so.serial.not_in(used), _so.replaced_at.is_(None)
            )
        ).all()
        queue_deletes(conn, [(r.node_id, r.piece_id) for r in unused], now)
        done = conn.execute(delete(t.segment_orders).where(in_segment)).rowcount
        # The segment's order limits are no longer pending: its pieces are now what it reserves.
        conn.execute(
            update(t.objects)
            .where(_o.stream_id == stream_id)
            .values(reserved_orders=_o.reserved_orders - done)
        )
        return True

    return db.write(work)


def _lock_pending(conn: Connection, stream_id: bytes) -> str | None:
    """Lock a pending upload's row for this transaction; its project's id, None if it is no
    longer pending."""
    project_id: str | None = conn.execute(
        select(_o.project_id).where(_o.stream_id == stream_id, IS_PENDING).with_for_update()
    ).scalar()
    return project_id


def _insert_orders(
    conn: Connection, stream_id: bytes, index: int, orders: Sequence[IssuedOrder]
) -> None:
    if orders:
        conn.execute(
            insert(t.segment_orders),
            [
                {
                    "serial": order.serial,
                    "stream_id": stream_id,
                    "segment_index": index,
                    "piece_number": order.piece_number,
                    "node_id": order.node_id.raw,
                    "piece_id": order.piece_id,
                    "expires_at": order.expires_at,
                }
                for order in orders
            ],
        )
