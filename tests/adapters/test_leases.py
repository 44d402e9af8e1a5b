"""Leases on their own engine (``LeaseStore``), as ``StateStore`` composes them."""

from __future__ import annotations

from pathlib import Path

from tbhub.adapters.db.leases import LeaseStore
from tbhub.adapters.db.store import open_state


def test_lease_holder_names_the_live_holder_only(tmp_path: Path) -> None:
    state = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        leases = LeaseStore(state.engine)
        assert leases.lease_holder("retention") is None  # never taken
        assert leases.acquire_lease("retention", "host-a:1:x", 60.0)
        assert leases.lease_holder("retention") == "host-a:1:x"
        assert state.lease_holder("retention") == "host-a:1:x"  # the same rows through the composed handle
        assert leases.lease_holder("alerts") is None  # leases are independent
        leases.release_lease("retention", "host-a:1:x")
        assert leases.lease_holder("retention") is None  # released
        assert leases.acquire_lease("retention", "host-b:2:y", -1.0)
        assert leases.lease_holder("retention") is None  # expired at once: nobody holds it
    finally:
        state.dispose()
