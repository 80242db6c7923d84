"""Upload reservations: what each pending upload has been promised (bytes, segments and PUT order
limits), counted against its project's limits until it is committed, aborted or reclaimed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 04:00:00.000000
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_COLUMNS: list[tuple[str, sa.types.TypeEngine[Any]]] = [
    ("reserved_storage", sa.BigInteger()),
    ("reserved_segments", sa.Integer()),
    ("reserved_orders", sa.Integer()),
]


# Plain ALTER TABLE, not SQLite's batch mode: batch mode copies the table, and dropping the old
# `objects` with foreign keys on deletes every segment and order limit (ON DELETE CASCADE).
# SQLite adds a NOT NULL column with a constant default, and drops a column, in place.


def upgrade() -> None:
    for name, kind in _COLUMNS:
        op.add_column("objects", sa.Column(name, kind, server_default=sa.text("0"), nullable=False))
    # Uploads pending at the upgrade reserve what their segments and order limits hold now.
    op.execute(
        "UPDATE objects SET "
        "reserved_storage = (SELECT COALESCE(SUM(s.encrypted_size), 0) FROM segments s "
        "WHERE s.stream_id = objects.stream_id), "
        "reserved_segments = (SELECT COUNT(*) FROM segments s "
        "WHERE s.stream_id = objects.stream_id), "
        "reserved_orders = (SELECT COUNT(*) FROM segment_orders so "
        "WHERE so.stream_id = objects.stream_id) "
        "WHERE status = 1"
    )


def downgrade() -> None:
    for name, _ in reversed(_COLUMNS):
        op.drop_column("objects", name)
