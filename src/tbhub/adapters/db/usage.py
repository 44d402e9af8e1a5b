"""Usage snapshots (bytes, runs and events per dataset over time) in the state database."""

from __future__ import annotations

from sqlalchemy import Engine, insert, select

from tbhub.adapters.db.records import from_row, row_values
from tbhub.adapters.db.tables import usage_snapshots
from tbhub.core.usage import Snapshot

__all__ = ["UsageStore"]


class UsageStore:
    """Usage snapshots on the state database's engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record_usage(self, rows: list[Snapshot]) -> None:
        if not rows:
            return
        with self.engine.begin() as connection:
            connection.execute(
                insert(usage_snapshots),
                [row_values(r, names=("dataset",)) for r in rows],
            )

    def usage_history(self, since: float = 0.0) -> list[Snapshot]:
        """Snapshots taken at or after ``since``, oldest first."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(usage_snapshots).where(usage_snapshots.c.at >= since).order_by(usage_snapshots.c.at)
            )
            return [from_row(Snapshot, r, names=("dataset",)) for r in rows]
