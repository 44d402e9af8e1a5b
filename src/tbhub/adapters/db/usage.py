"""Usage snapshots (bytes, runs and events per dataset over time) in the state database."""

from __future__ import annotations

from sqlalchemy import Engine, insert, select

from tbhub.adapters.db.names import from_db, to_db
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
                [{f: getattr(r, f) for f in Snapshot.__slots__} | {"dataset": to_db(r.dataset)} for r in rows],
            )

    def usage_history(self, since: float = 0.0) -> list[Snapshot]:
        """Snapshots taken at or after ``since``, oldest first."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(usage_snapshots).where(usage_snapshots.c.at >= since).order_by(usage_snapshots.c.at)
            )
            return [Snapshot(r.at, r.endpoint, from_db(r.dataset), r.size_bytes, r.runs, r.events) for r in rows]
