"""Network health: reputations, schedules and performance on nodes; receipts kept with pieces;
audit containment, queue and evidence; uptime windows; replaced order limits kept.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 22:40:00.000000
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ROWID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_NODE_COLUMNS: list[tuple[str, sa.types.TypeEngine[Any], str | None]] = [
    ("next_check_at", sa.BigInteger(), "0"),
    ("offline_since", sa.BigInteger(), None),
    ("next_audit_at", sa.BigInteger(), "0"),
    ("audit_alpha", sa.Float(), "1"),
    ("audit_beta", sa.Float(), "0"),
    ("unknown_alpha", sa.Float(), "1"),
    ("unknown_beta", sa.Float(), "0"),
    ("online_alpha", sa.Float(), "1"),
    ("online_beta", sa.Float(), "0"),
    ("audits", sa.Integer(), "0"),
    ("audits_passed", sa.Integer(), "0"),
    ("vetted_at", sa.BigInteger(), None),
    ("suspended_at", sa.BigInteger(), None),
    ("perf_success", sa.Float(), "1"),
    ("perf_latency_ms", sa.Float(), "0"),
]


def upgrade() -> None:
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
        batch_op.add_column(sa.Column("replaced_at", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("pieces", schema=None) as batch_op:
        batch_op.add_column(sa.Column("receipt", sa.LargeBinary(), nullable=True))
        batch_op.drop_index("ix_pieces_node_id")
        batch_op.create_index("ix_pieces_node_piece", ["node_id", "piece_id"], unique=False)

    op.create_table(
        "audit_containment",
        sa.Column("node_id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("root_piece_id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("piece_number", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("node_id", name=op.f("pk_audit_containment")),
    )
    op.create_table(
        "audit_queue",
        sa.Column("root_piece_id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("piece_number", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("root_piece_id", "piece_number", name=op.f("pk_audit_queue")),
    )
    with op.batch_alter_table("audit_queue", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_queue_node_id"), ["node_id"], unique=False)
    op.create_table(
        "audit_evidence",
        sa.Column("id", _ROWID, autoincrement=True, nullable=False),
        sa.Column("node_id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("piece_id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=False),
        sa.Column("order_limit", sa.LargeBinary(), nullable=False),
        sa.Column("receipt", sa.LargeBinary(), nullable=True),
        sa.Column("response", sa.LargeBinary(), nullable=True),
        sa.Column("leaf", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_evidence")),
    )
    with op.batch_alter_table("audit_evidence", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_evidence_node_id"), ["node_id"], unique=False)
    op.create_table(
        "uptime_windows",
        sa.Column("id", _ROWID, autoincrement=True, nullable=False),
        sa.Column("node_id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("online", sa.SmallInteger(), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=False),
        sa.Column("ended_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_uptime_windows")),
    )
    with op.batch_alter_table("uptime_windows", schema=None) as batch_op:
        batch_op.create_index("ix_uptime_windows_node", ["node_id", "ended_at"], unique=False)


def downgrade() -> None:
    op.drop_table("uptime_windows")
    op.drop_table("audit_evidence")
    op.drop_table("audit_queue")
    op.drop_table("audit_containment")
    with op.batch_alter_table("pieces", schema=None) as batch_op:
        batch_op.drop_index("ix_pieces_node_piece")
        batch_op.create_index("ix_pieces_node_id", ["node_id"], unique=False)
        batch_op.drop_column("receipt")
    with op.batch_alter_table("segment_orders", schema=None) as batch_op:
        batch_op.drop_column("replaced_at")
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        for name, _, _ in reversed(_NODE_COLUMNS):
            batch_op.drop_column(name)
