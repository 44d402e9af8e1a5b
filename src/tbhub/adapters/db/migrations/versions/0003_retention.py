"""Pins, leases (one leader for background jobs), retention applications, usage snapshots.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pins",
        sa.Column("endpoint", sa.String(128), nullable=False),
        sa.Column("relpath", sa.Text, nullable=False),
        sa.Column("pinned_by", sa.String(256), nullable=False),
        sa.Column("pinned_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("endpoint", "relpath", name="pk_pins"),
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("holder", sa.String(256), nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_table(
        "retention_applications",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("deleted", sa.Integer, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False),
        sa.Column("bytes_freed", sa.BigInteger, nullable=False),
        sa.Column("refused", sa.Text),
        sa.Column("details", sa.Text, nullable=False),
    )
    op.create_table(
        "usage_snapshots",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("endpoint", sa.String(128), nullable=False),
        sa.Column("dataset", sa.Text, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("runs", sa.Integer, nullable=False),
        sa.Column("events", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_usage_snapshots_at", "usage_snapshots", ["at"])


def downgrade() -> None:
    op.drop_index("ix_usage_snapshots_at", "usage_snapshots")
    op.drop_table("usage_snapshots")
    op.drop_table("retention_applications")
    op.drop_table("leases")
    op.drop_table("pins")
