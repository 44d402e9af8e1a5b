"""Who last edited a note and when; alert rule overrides set from the hub.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("notes", sa.Column("edited_by", sa.String(256)))
    op.add_column("notes", sa.Column("edited_at", sa.Float))
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("endpoint", sa.String(128), nullable=False),
        sa.Column("dataset", sa.String(256), nullable=False),
        sa.Column("rule", sa.Text, nullable=False),
        sa.Column("updated_by", sa.String(256), nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("endpoint", "dataset", name="uq_alert_rules_scope"),
    )


def downgrade() -> None:
    op.drop_table("alert_rules")
    with op.batch_alter_table("notes") as batch:
        batch.drop_column("edited_at")
        batch.drop_column("edited_by")
