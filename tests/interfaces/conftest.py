"""Fixtures and helpers shared by the interface tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tbhub.adapters.db.store import StateStore, open_state


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateStore]:
    """A fresh SQLite state database in the test's folder."""
    store = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        yield store
    finally:
        store.dispose()
