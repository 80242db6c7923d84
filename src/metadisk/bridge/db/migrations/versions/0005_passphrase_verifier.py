"""Passphrase verifier: each project may keep an HMAC of a fixed text under its root key, so a
wrong passphrase is refused at setup instead of showing an empty project.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 05:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


# Plain ALTER TABLE, not SQLite's batch mode: batch mode copies the table, and dropping the old
# `projects` with foreign keys on would cascade into its buckets and API keys. A nullable column
# without a default is added and dropped in place on SQLite and PostgreSQL alike.


def upgrade() -> None:
    op.add_column("projects", sa.Column("passphrase_verifier", sa.LargeBinary(32), nullable=True))


def downgrade() -> None:
    op.drop_column("projects", "passphrase_verifier")
