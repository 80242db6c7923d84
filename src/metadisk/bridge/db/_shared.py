"""Statements several stores need: queueing piece deletes, upserts, literal status filters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Connection, Table, insert, literal, literal_column
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql, sqlite

from metadisk.bridge.db import tables as t

# Literal, not bound: a partial index only serves queries whose WHERE names its condition, and
# neither SQLite nor a prepared PostgreSQL plan can see through a parameter.
IS_COMMITTED = t.objects.c.status == literal_column(str(t.COMMITTED))
IS_PENDING = t.objects.c.status == literal_column(str(t.PENDING))


def queue_pieces_of(conn: Connection, streams: Any, now: int) -> None:
    """Queue deletes for every piece recorded or ordered for the streams selected by `streams`.

    `streams` is a list of stream ids or a SELECT of them. Ordered pieces of uncommitted segments
    may or may not exist on their farmers: a delete of a missing piece is a cheap 404.
    """
    columns = ["node_id", "piece_id", "created_at", "next_attempt_at"]
    stamp = literal(now, BigInteger)
    conn.execute(
        insert(t.piece_deletes).from_select(
            columns,
            sa_select(t.pieces.c.node_id, t.pieces.c.piece_id, stamp, stamp).where(
                t.pieces.c.stream_id.in_(streams)
            ),
        )
    )
    conn.execute(
        insert(t.piece_deletes).from_select(
            columns,
            sa_select(t.segment_orders.c.node_id, t.segment_orders.c.piece_id, stamp, stamp).where(
                t.segment_orders.c.stream_id.in_(streams)
            ),
        )
    )


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
