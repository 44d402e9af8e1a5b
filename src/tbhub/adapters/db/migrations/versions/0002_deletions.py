"""History of deletions (clean, retention).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deletions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("command", sa.String(64), nullable=False),
        sa.Column("endpoint", sa.String(128), nullable=False),
        sa.Column("dataset", sa.Text, nullable=False),
        sa.Column("run", sa.Text, nullable=False),
        sa.Column("relpath", sa.Text, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("event_count", sa.BigInteger, nullable=False),
        sa.Column("archive", sa.Text),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_deletions_at", "deletions", ["at"])


def downgrade() -> None:
    op.drop_index("ix_deletions_at", "deletions")
    op.drop_table("deletions")
