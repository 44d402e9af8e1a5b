"""What was deleted, and each application of the retention policies, in the state database.

Both tables only grow: the manage commands and the retention job append a row per run removed (or
failed to remove) and per application; the hub's history pages read them newest first.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, insert, select

from tbhub.adapters.db.records import from_row, row_values
from tbhub.adapters.db.tables import deletions, retention_applications
from tbhub.core.names import without_surrogates

__all__ = ["DeletionRecord", "HistoryStore", "RetentionApplication"]

_NAMES = ("dataset", "run", "relpath")


@dataclass(frozen=True, slots=True)
class DeletionRecord:
    """One run a manage command removed (``outcome`` "deleted") or failed to ("failed")."""

    at: float
    actor: str
    command: str
    endpoint: str
    dataset: str
    run: str
    relpath: str
    size_bytes: int
    event_count: int
    archive: str | None
    outcome: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class RetentionApplication:
    """One application of the retention policies; ``details`` is JSON text (the runs removed)."""

    at: float
    trigger: str  # "cli" or "schedule"
    actor: str
    deleted: int
    failed: int
    bytes_freed: int
    refused: str | None
    details: str
    id: int | None = None


class HistoryStore:
    """Deletions and retention applications on the state database's engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- deletion history -----------------------------------------------------------------------
    def record_deletion(self, record: DeletionRecord) -> None:
        with self.engine.begin() as connection:
            values = row_values(record, names=_NAMES)
            values["error"] = None if record.error is None else without_surrogates(record.error)
            connection.execute(insert(deletions).values(**values))

    def deletions(self, *, limit: int = 1000) -> list[DeletionRecord]:
        """The newest ``limit`` deletions, newest first."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(deletions).order_by(deletions.c.id.desc()).limit(limit))
            return [from_row(DeletionRecord, row, names=_NAMES) for row in rows]

    # -- retention ----------------------------------------------------------------------------------
    def record_retention(self, application: RetentionApplication) -> int:
        values = row_values(application, skip=("id",))
        with self.engine.begin() as connection:
            result = connection.execute(insert(retention_applications).values(**values))
            key = result.inserted_primary_key
            return int(key[0]) if key else 0

    def retention_history(self, *, limit: int = 50) -> list[RetentionApplication]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(retention_applications).order_by(retention_applications.c.id.desc()).limit(limit)
            )
            return [from_row(RetentionApplication, r) for r in rows]
