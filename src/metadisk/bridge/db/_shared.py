"""Statements several stores need: releasing pieces, upserts, literal status filters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Table,
    delete,
    func,
    insert,
    literal,
    literal_column,
    update,
)
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql, sqlite

from metadisk.bridge.db import tables as t

# Literal, not bound: a partial index only serves queries whose WHERE names its condition, and
# neither SQLite nor a prepared PostgreSQL plan can see through a parameter.
IS_COMMITTED = t.objects.c.status == literal_column(str(t.COMMITTED))
IS_PENDING = t.objects.c.status == literal_column(str(t.PENDING))
SEGMENT_COMMITTED = t.segments.c.status == literal_column(str(t.COMMITTED))
SEGMENT_PENDING = t.segments.c.status == literal_column(str(t.PENDING))


def release_streams(conn: Connection, streams: Any, now: int) -> None:
    """Give up everything the streams selected by `streams` hold on farmers, before they go.

    `streams` is a list of stream ids or a SELECT of them; call this before deleting their object
    rows. Order limits of uncommitted segments are queued for deletion: their pieces may or may not
    exist (a delete of a missing piece is a cheap 404). Each committed segment drops its reference
    to its piece set; a set whose last reference goes has its pieces queued and its rows deleted,
    so that copies sharing the pieces keep them. The UPDATE of `piece_sets` row-locks the sets, so
    concurrent deletes of two copies cannot both see the other and leak the pieces.
    """
    columns = ["node_id", "piece_id", "created_at", "next_attempt_at"]
    stamp = literal(now, BigInteger)
    so = t.segment_orders.c
    conn.execute(
        insert(t.piece_deletes).from_select(
            columns,
            sa_select(so.node_id, so.piece_id, stamp, stamp).where(
                so.stream_id.in_(streams),
                so.replaced_at.is_(None),  # those went when replaced
            ),
        )
    )
    s, ps = t.segments.c, t.piece_sets.c
    held = (s.stream_id.in_(streams)) & SEGMENT_COMMITTED
    uses = (
        sa_select(func.count()).where(s.root_piece_id == ps.root_piece_id, held).scalar_subquery()
    )
    released = conn.execute(
        update(t.piece_sets)
        .where(ps.root_piece_id.in_(sa_select(s.root_piece_id).where(held)))
        .values(refs=ps.refs - uses)
        .returning(ps.root_piece_id, ps.refs)
    ).all()
    _drop_piece_sets(conn, [root for root, refs in released if refs <= 0], now)


_BATCH = 500  # indices per statement: within every engine's limit on bound parameters


def release_segments(conn: Connection, stream_id: bytes, indices: Sequence[int], now: int) -> None:
    """Drop some segments of one pending upload, as `release_streams` drops whole uploads.

    Their live order limits' pieces are queued for deletion, committed ones give up their piece
    set (the last reference queues its pieces), and their rows go with their order limits.
    """
    so, s, ps = t.segment_orders.c, t.segments.c, t.piece_sets.c
    stamp = literal(now, BigInteger)
    for start in range(0, len(indices), _BATCH):
        batch = list(indices[start : start + _BATCH])
        conn.execute(
            insert(t.piece_deletes).from_select(
                ["node_id", "piece_id", "created_at", "next_attempt_at"],
                sa_select(so.node_id, so.piece_id, stamp, stamp).where(
                    so.stream_id == stream_id,
                    so.segment_index.in_(batch),
                    so.replaced_at.is_(None),
                ),
            )
        )
        held = (s.stream_id == stream_id) & s.index.in_(batch) & SEGMENT_COMMITTED
        roots = sa_select(s.root_piece_id).where(held)
        released = conn.execute(
            update(t.piece_sets)
            .where(ps.root_piece_id.in_(roots))
            .values(refs=ps.refs - 1)  # a segment row holds one reference to its set
            .returning(ps.root_piece_id, ps.refs)
        ).all()
        _drop_piece_sets(conn, [root for root, refs in released if refs <= 0], now)
        conn.execute(
            delete(t.segment_orders).where(so.stream_id == stream_id, so.segment_index.in_(batch))
        )
        conn.execute(delete(t.segments).where(s.stream_id == stream_id, s.index.in_(batch)))


def _drop_piece_sets(conn: Connection, roots: Sequence[bytes], now: int) -> None:
    """Queue deletes for every piece of the sets `roots` and delete their rows (and pieces)."""
    if not roots:
        return
    p = t.pieces.c
    stamp = literal(now, BigInteger)
    conn.execute(
        insert(t.piece_deletes).from_select(
            ["node_id", "piece_id", "created_at", "next_attempt_at"],
            sa_select(p.node_id, p.piece_id, stamp, stamp).where(p.root_piece_id.in_(roots)),
        )
    )
    conn.execute(delete(t.piece_sets).where(t.piece_sets.c.root_piece_id.in_(roots)))


def queue_deletes(conn: Connection, targets: Sequence[tuple[bytes, bytes]], now: int) -> None:
    """Queue deletes for explicit (node id, piece id) pairs."""
    if targets:
        conn.execute(
            insert(t.piece_deletes),
            [
                {"node_id": node, "piece_id": piece, "created_at": now, "next_attempt_at": now}
                for node, piece in targets
            ],
        )


def upsert(
    conn: Connection,
    table: Table,
    values: Mapping[str, Any],
    keys: Sequence[str],
    update: Mapping[str, Any],
    where: ColumnElement[bool] | None = None,
) -> int:
    """INSERT ... ON CONFLICT (keys) DO UPDATE SET update [WHERE where]; returns rows touched."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).values(**values)
    statement = statement.on_conflict_do_update(index_elements=list(keys), set_=update, where=where)
    return conn.execute(statement).rowcount
