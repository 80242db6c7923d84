"""Initial schema: accounts, projects, keys, buckets, objects, segments, pieces, nodes, deletes.

Revision ID: 0001
Revises:
Create Date: 2026-11-22 03:14:56.663048
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("node_id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("public_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("address", sa.String(length=2048), nullable=False),
        sa.Column("last_net", sa.String(length=64), nullable=False),
        sa.Column("allocated", sa.BigInteger(), nullable=False),
        sa.Column("free", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("contact_timestamp", sa.BigInteger(), nullable=False),
        sa.Column("last_contact_at", sa.BigInteger(), nullable=False),
        sa.Column("last_ping_ok_at", sa.BigInteger(), nullable=True),
        sa.Column("last_ping_error", sa.String(length=255), nullable=True),
        sa.Column("disqualified_at", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("node_id", name=op.f("pk_nodes")),
    )
    op.create_table(
        "piece_deletes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("node_id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("piece_id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_piece_deletes")),
    )
    with op.batch_alter_table("piece_deletes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_piece_deletes_next_attempt_at"), ["next_attempt_at"], unique=False
        )

    op.create_table(
        "users",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "projects",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("salt", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("max_buckets", sa.BigInteger(), nullable=False),
        sa.Column("max_storage", sa.BigInteger(), nullable=False),
        sa.Column("max_egress", sa.BigInteger(), nullable=False),
        sa.Column("max_segments", sa.BigInteger(), nullable=False),
        sa.Column("used_storage", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("used_segments", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_projects_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
    )
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_projects_owner_id"), ["owner_id"], unique=False)

    op.create_table(
        "sessions",
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_sessions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_sessions")),
    )
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sessions_user_id"), ["user_id"], unique=False)

    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.LargeBinary(length=16), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("secret", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_api_keys_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_api_keys")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_project_id"), ["project_id"], unique=False)

    op.create_table(
        "buckets",
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("profile", sa.String(length=64), nullable=False),
        sa.Column("k", sa.SmallInteger(), nullable=False),
        sa.Column("m", sa.SmallInteger(), nullable=False),
        sa.Column("o", sa.SmallInteger(), nullable=False),
        sa.Column("n", sa.SmallInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_buckets_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "name", name=op.f("pk_buckets")),
    )
    op.create_table(
        "project_egress",
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("period", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_project_egress_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "period", name=op.f("pk_project_egress")),
    )
    op.create_table(
        "objects",
        sa.Column("stream_id", sa.LargeBinary(length=16), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("bucket", sa.String(length=63), nullable=False),
        sa.Column(
            "key",
            sa.String(length=4096).with_variant(
                sa.String(length=4096, collation="C"), "postgresql"
            ),
            nullable=False,
        ),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("committed_at", sa.BigInteger(), nullable=True),
        sa.Column("deadline", sa.BigInteger(), nullable=True),
        sa.Column("encrypted_size", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("plain_size", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("segment_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("encrypted_metadata", sa.LargeBinary(), nullable=True),
        sa.Column("inline_data", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id", "bucket"],
            ["buckets.project_id", "buckets.name"],
            name=op.f("fk_objects_project_id_bucket_buckets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("stream_id", name=op.f("pk_objects")),
    )
    with op.batch_alter_table("objects", schema=None) as batch_op:
        batch_op.create_index(
            "ix_objects_pending_deadline",
            ["deadline"],
            unique=False,
            sqlite_where=sa.text("status = 1"),
            postgresql_where=sa.text("status = 1"),
        )
        batch_op.create_index(
            "ix_objects_pending_key",
            ["project_id", "bucket", "key"],
            unique=False,
            sqlite_where=sa.text("status = 1"),
            postgresql_where=sa.text("status = 1"),
        )
        batch_op.create_index(
            "uq_objects_committed_key",
            ["project_id", "bucket", "key"],
            unique=True,
            sqlite_where=sa.text("status = 3"),
            postgresql_where=sa.text("status = 3"),
        )

    op.create_table(
        "revocations",
        sa.Column("tail", sa.LargeBinary(length=32), nullable=False),
        sa.Column("key_id", sa.LargeBinary(length=16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["api_keys.key_id"],
            name=op.f("fk_revocations_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tail", name=op.f("pk_revocations")),
    )
    with op.batch_alter_table("revocations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_revocations_key_id"), ["key_id"], unique=False)

    op.create_table(
        "segments",
        sa.Column("stream_id", sa.LargeBinary(length=16), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("root_piece_id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("encrypted_size", sa.BigInteger(), nullable=False),
        sa.Column("plain_size", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("piece_size", sa.BigInteger(), nullable=False),
        sa.Column("k", sa.SmallInteger(), nullable=False),
        sa.Column("m", sa.SmallInteger(), nullable=False),
        sa.Column("o", sa.SmallInteger(), nullable=False),
        sa.Column("n", sa.SmallInteger(), nullable=False),
        sa.Column("encrypted_metadata", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["objects.stream_id"],
            name=op.f("fk_segments_stream_id_objects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("stream_id", "index", name=op.f("pk_segments")),
    )
    op.create_table(
        "piece_sets",
        sa.Column("root_piece_id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("refs", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("root_piece_id", name=op.f("pk_piece_sets")),
    )
    op.create_table(
        "pieces",
        sa.Column("root_piece_id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("piece_number", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("piece_id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("piece_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("stored_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["root_piece_id"],
            ["piece_sets.root_piece_id"],
            name=op.f("fk_pieces_root_piece_id_piece_sets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("root_piece_id", "piece_number", name=op.f("pk_pieces")),
    )
    with op.batch_alter_table("pieces", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pieces_node_id"), ["node_id"], unique=False)

    op.create_table(
        "segment_orders",
        sa.Column("serial", sa.LargeBinary(length=16), nullable=False),
        sa.Column("stream_id", sa.LargeBinary(length=16), nullable=False),
        sa.Column("segment_index", sa.Integer(), nullable=False),
        sa.Column("piece_number", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("piece_id", sa.LargeBinary(length=32), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["stream_id", "segment_index"],
            ["segments.stream_id", "segments.index"],
            name=op.f("fk_segment_orders_stream_id_segment_index_segments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("serial", name=op.f("pk_segment_orders")),
    )
    with op.batch_alter_table("segment_orders", schema=None) as batch_op:
        batch_op.create_index(
            "ix_segment_orders_segment", ["stream_id", "segment_index"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("segment_orders", schema=None) as batch_op:
        batch_op.drop_index("ix_segment_orders_segment")

    op.drop_table("segment_orders")
    with op.batch_alter_table("pieces", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pieces_node_id"))

    op.drop_table("pieces")
    op.drop_table("piece_sets")
    op.drop_table("segments")
    with op.batch_alter_table("revocations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_revocations_key_id"))

    op.drop_table("revocations")
    with op.batch_alter_table("objects", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_objects_committed_key",
            sqlite_where=sa.text("status = 3"),
            postgresql_where=sa.text("status = 3"),
        )
        batch_op.drop_index(
            "ix_objects_pending_key",
            sqlite_where=sa.text("status = 1"),
            postgresql_where=sa.text("status = 1"),
        )
        batch_op.drop_index(
            "ix_objects_pending_deadline",
            sqlite_where=sa.text("status = 1"),
            postgresql_where=sa.text("status = 1"),
        )

    op.drop_table("objects")
    op.drop_table("project_egress")
    op.drop_table("buckets")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_project_id"))

    op.drop_table("api_keys")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sessions_user_id"))

    op.drop_table("sessions")
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_projects_owner_id"))

    op.drop_table("projects")
    op.drop_table("users")
    with op.batch_alter_table("piece_deletes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_piece_deletes_next_attempt_at"))

    op.drop_table("piece_deletes")
    op.drop_table("nodes")
