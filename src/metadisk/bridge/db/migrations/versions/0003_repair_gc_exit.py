"""Repair, garbage collection and graceful exit: each piece set's shape, the repair queue and the
checker's summary, repair and exit transfers in flight, and exit and collection state on nodes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 01:00:00.000000
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_SHAPE: list[tuple[str, sa.types.TypeEngine[Any]]] = [
    ("k", sa.SmallInteger()),
    ("m", sa.SmallInteger()),
    ("o", sa.SmallInteger()),
    ("n", sa.SmallInteger()),
    ("piece_size", sa.BigInteger()),
]
_NODE_COLUMNS: list[tuple[str, sa.types.TypeEngine[Any], str | None]] = [
    ("exit_started_at", sa.BigInteger(), None),
    ("exit_progress_at", sa.BigInteger(), None),
    ("exit_finished_at", sa.BigInteger(), None),
    ("exit_result", sa.String(length=16), None),
    ("next_gc_at", sa.BigInteger(), "0"),
    ("last_gc_at", sa.BigInteger(), None),
]


def upgrade() -> None:
    with op.batch_alter_table("piece_sets", schema=None) as batch_op:
        for name, kind in _SHAPE:
            batch_op.add_column(sa.Column(name, kind, nullable=True))
    # Every set's shape from a committed segment that uses it (all of them share it).
    for name, _ in _SHAPE:
        op.execute(
            f"UPDATE piece_sets SET {name} = (SELECT s.{name} FROM segments s "  # noqa: S608
            "WHERE s.root_piece_id = piece_sets.root_piece_id LIMIT 1)"
        )
    # No segment uses these sets: nothing to keep. Their pieces go first, by name: SQLite
    # migrates with foreign keys off, so no cascade would take them.
    op.execute(
        "DELETE FROM pieces WHERE root_piece_id IN "
        "(SELECT root_piece_id FROM piece_sets WHERE k IS NULL)"
    )
    op.execute("DELETE FROM piece_sets WHERE k IS NULL")
    with op.batch_alter_table("piece_sets", schema=None) as batch_op:
        for name, kind in _SHAPE:
            batch_op.alter_column(name, existing_type=kind, nullable=False)
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        for name, kind, default in _NODE_COLUMNS:
            batch_op.add_column(
                sa.Column(
                    name,
                    kind,
                    nullable=default is None,
                    server_default=None if default is None else sa.text(default),
                )
            )
    with op.batch_alter_table("segment_orders", schema=None) as batch_op:
        batch_op.create_index("ix_segment_orders_node_id", ["node_id"], unique=False)
    op.create_table(
        "repair_queue",
        sa.Column("root_piece_id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("healthy", sa.SmallInteger(), nullable=False),
        sa.Column("queued_at", sa.BigInteger(), nullable=False),
        sa.Column("checked_at", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("root_piece_id", name=op.f("pk_repair_queue")),
    )
    with op.batch_alter_table("repair_queue", schema=None) as batch_op:
        batch_op.create_index("ix_repair_queue_due", ["healthy", "next_attempt_at"], unique=False)
    op.create_table(
        "segment_health",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("checked_at", sa.BigInteger(), nullable=False),
        sa.Column("piece_sets", sa.BigInteger(), nullable=False),
        sa.Column("injured", sa.BigInteger(), nullable=False),
        sa.Column("lost", sa.BigInteger(), nullable=False),
        sa.Column("repaired", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment_health")),
    )
    op.create_table(
        "transfer_orders",
        sa.Column("serial", sa.LargeBinary(length=16), nullable=False),
        sa.Column("root_piece_id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("piece_number", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("piece_id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("from_node_id", sa.LargeBinary(length=32), nullable=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("serial", name=op.f("pk_transfer_orders")),
    )
    with op.batch_alter_table("transfer_orders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_transfer_orders_node_id"), ["node_id"], unique=False)
        batch_op.create_index(
            "ix_transfer_orders_piece", ["root_piece_id", "piece_number"], unique=False
        )


def downgrade() -> None:
    op.drop_table("transfer_orders")
    op.drop_table("segment_health")
    op.drop_table("repair_queue")
    with op.batch_alter_table("segment_orders", schema=None) as batch_op:
        batch_op.drop_index("ix_segment_orders_node_id")
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        for name, _, _ in reversed(_NODE_COLUMNS):
            batch_op.drop_column(name)
    with op.batch_alter_table("piece_sets", schema=None) as batch_op:
        for name, _ in reversed(_SHAPE):
            batch_op.drop_column(name)
