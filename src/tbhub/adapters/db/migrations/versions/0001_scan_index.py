"""The scanner's index and scan history.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
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
        "event_files",
        sa.Column("endpoint", sa.String(128), nullable=False),
        sa.Column("relpath", sa.Text, nullable=False),
        sa.Column("inode", sa.BigInteger, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("mtime_ns", sa.BigInteger, nullable=False),
        sa.Column("records", sa.BigInteger, nullable=False),
        sa.Column("scanned_offset", sa.BigInteger, nullable=False),
        sa.Column("first_step", sa.BigInteger),
        sa.Column("last_step", sa.BigInteger),
        sa.Column("first_wall_time", sa.Float),
        sa.Column("last_wall_time", sa.Float),
        sa.Column("truncated", sa.Boolean, nullable=False),
        sa.Column("corrupt_offset", sa.BigInteger),
        sa.Column("corrupt_reason", sa.Text),
        sa.Column("verified", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("endpoint", "relpath", name="pk_event_files"),
    )
    op.create_table(
        "scan_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("endpoint", sa.String(128), nullable=False),
        sa.Column("finished_at", sa.Float, nullable=False),
        sa.Column("duration_s", sa.Float, nullable=False),
        sa.Column("files", sa.Integer, nullable=False),
        sa.Column("files_read", sa.Integer, nullable=False),
        sa.Column("bytes_read", sa.BigInteger, nullable=False),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_scan_runs_endpoint", "scan_runs", ["endpoint"])


def downgrade() -> None:
    op.drop_index("ix_scan_runs_endpoint", "scan_runs")
    op.drop_table("scan_runs")
    op.drop_table("event_files")
