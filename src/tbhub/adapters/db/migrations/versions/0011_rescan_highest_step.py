"""Every event file is scanned once more from its start: ``last_step`` is now the highest step logged.

Scans stored before this revision hold the step of each file's *last record* as ``last_step`` (0 for a
tensorboardX run whose last record is an ``add_text`` at step 0, issue 18), and an unchanged file is
never read again. Setting the stored inode to 0 makes the next scan treat each file as replaced and
read it from byte 0 (header-only: about a second per ten million records); the index generations
move on so no process keeps the old index in memory.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE event_files SET inode = 0")
    op.execute("UPDATE index_generations SET generation = generation + 1")


def downgrade() -> None:
    pass  # the rescanned values are right for the older code too
