"""The state database as a whole: create or migrate it to the newest schema."""

from __future__ import annotations

from tbhub.adapters.db.store import open_state
from tbhub.config import Config

__all__ = ["upgrade_database"]


def upgrade_database(config: Config) -> tuple[str | None, str]:
    """Migrate the config's state database; returns its revision before (``None``: empty) and after."""
    store = open_state(config.state.url, migrate=False)
    try:
        return store.current_revision(), store.upgrade()
    finally:
        store.dispose()
