"""One row per run for the runs explorer (sorted, filtered and paged in SQL).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_index",
        sa.Column("endpoint", sa.String(128), nullable=False),
        sa.Column("relpath", sa.Text, nullable=False),
        sa.Column("dataset", sa.Text, nullable=False),
        sa.Column("run", sa.Text, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("event_files", sa.Integer, nullable=False),
        sa.Column("event_count", sa.BigInteger, nullable=False),
        sa.Column("first_step", sa.BigInteger),
        sa.Column("last_step", sa.BigInteger),
        sa.Column("first_wall_time", sa.Float),
        sa.Column("last_wall_time", sa.Float),
        sa.Column("last_modified_ns", sa.BigInteger, nullable=False),
        sa.Column("truncated", sa.Boolean, nullable=False),
        sa.Column("corrupt", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("endpoint", "relpath", name="pk_run_index"),
    )
    op.create_index("ix_run_index_modified", "run_index", ["last_modified_ns"])
    # No rows: the explorer derives them from event_files on first use (its generation is missing).
    op.create_table(
        "run_index_generations",
        sa.Column("endpoint", sa.String(128), primary_key=True),
        sa.Column("generation", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("run_index_generations")
    op.drop_index("ix_run_index_modified", "run_index")
    op.drop_table("run_index")
