"""Run states, alerts, delivery attempts, channel states, and the scalar reader's index.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scalar_files",
        sa.Column("endpoint", sa.String(128), nullable=False),
        sa.Column("relpath", sa.Text, nullable=False),
        sa.Column("inode", sa.BigInteger, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("mtime_ns", sa.BigInteger, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("endpoint", "relpath", name="pk_scalar_files"),
    )
    op.create_table(
        "run_states",
        sa.Column("endpoint", sa.String(128), nullable=False),
        sa.Column("relpath", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("endpoint", "relpath", name="pk_run_states"),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.Text, nullable=False, unique=True),
        sa.Column("endpoint", sa.String(128), nullable=False),
        sa.Column("dataset", sa.Text, nullable=False),
        sa.Column("run", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("url", sa.Text),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.Integer, sa.ForeignKey("alerts.id"), nullable=False),
        sa.Column("channel", sa.String(128), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("next_at", sa.Float),
    )
    op.create_index("ix_deliveries_alert_channel", "deliveries", ["alert_id", "channel"])
    op.create_table(
        "channels",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("channels")
    op.drop_index("ix_deliveries_alert_channel", "deliveries")
    op.drop_table("deliveries")
    op.drop_table("alerts")
    op.drop_table("run_states")
    op.drop_table("scalar_files")
