"""Pinned runs in the state database: clean and retention never delete a pinned run."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError

from tbhub.adapters.db.names import to_db
from tbhub.adapters.db.records import from_row
from tbhub.adapters.db.tables import pins

__all__ = ["Pin", "PinStore"]


@dataclass(frozen=True, slots=True)
class Pin:
    endpoint: str
    relpath: str
    pinned_by: str
    pinned_at: float


class PinStore:
    """Pins on the state database's engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def pin(self, endpoint: str, relpath: str, by: str) -> bool:
        """Pin a run; ``False`` when it was pinned already."""
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    insert(pins).values(endpoint=endpoint, relpath=to_db(relpath), pinned_by=by, pinned_at=time.time())
                )
        except IntegrityError:
            return False
        return True

    def unpin(self, endpoint: str, relpath: str) -> bool:
        """Unpin a run; ``False`` when it was not pinned."""
        with self.engine.begin() as connection:
            result = connection.execute(
                delete(pins).where(pins.c.endpoint == endpoint, pins.c.relpath == to_db(relpath))
            )
            return bool(result.rowcount)

    def pins(self) -> list[Pin]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(pins).order_by(pins.c.endpoint, pins.c.relpath))
            return [from_row(Pin, r, names=("relpath",)) for r in rows]
