"""Storage used per dataset, its growth, and the daily snapshots that growth is measured from; and the
compute (GPU-hours, cost) of the same datasets."""

from __future__ import annotations

from collections.abc import Sequence

from tbhub.adapters.db.store import StateStore
from tbhub.app.compute import compute_runs
from tbhub.app.inventory import endpoint_runs, scan_endpoints
from tbhub.app.services import Services
from tbhub.app.targets import TargetSearch
from tbhub.core.models import RunSummary
from tbhub.core.usage import (
    ComputeUsage,
    DatasetUsage,
    Snapshot,
    compute_by_dataset,
    growth,
    history_from_runs,
    usage_by_dataset,
)

__all__ = [
    "USAGE_SNAPSHOT_EVERY_S",
    "compute_usage",
    "indexed_usage",
    "seed_usage_history",
    "snapshot_usage_if_due",
    "usage_report",
]

#: The server records a usage snapshot when the newest is older than this.
USAGE_SNAPSHOT_EVERY_S = 86400.0


def usage_report(state: StateStore, runs: Sequence[RunSummary], now: float, *, record: bool) -> list[DatasetUsage]:
    """Usage per dataset of ``runs`` with its growth over 7 and 30 days; ``record`` saves a snapshot."""
    current = usage_by_dataset(runs)
    history = state.usage_history()
    if record:
        state.record_usage([Snapshot(now, u.endpoint, u.dataset, u.size_bytes, u.runs, u.events) for u in current])
    return growth(current, history, now)


def _indexed_runs(services: Services) -> list[RunSummary]:
    return [run for name in services.specs for run in endpoint_runs(services, name)]


def indexed_usage(services: Services, now: float) -> list[DatasetUsage]:
    """Usage of every endpoint as the index knows it (no scan)."""
    return usage_report(services.state, _indexed_runs(services), now, record=False)


def snapshot_usage_if_due(services: Services, now: float) -> bool:
    """Record a usage snapshot from the index when the newest is a day old (or none exists)."""
    if services.state.usage_history(since=now - USAGE_SNAPSHOT_EVERY_S):
        return False
    usage_report(services.state, _indexed_runs(services), now, record=True)
    return True


def seed_usage_history(services: Services, now: float, days: int) -> int:
    """Give a state database with no usage history the daily snapshots of the ``days`` before ``now``
    that the runs' start times imply (``core.usage.history_from_runs``): for ``tbhub demo``, whose runs
    are backdated, so that growth and the size chart have something to show at once. Scans the log
    roots (the index keeps the scan); a database that has history is left alone. Returns how many
    snapshots it recorded."""
    if services.state.usage_history():
        return 0
    runs = [run for inv in scan_endpoints(services) for run in inv.runs]
    snapshots = history_from_runs(runs, now, days)
    services.state.record_usage(snapshots)
    return len(snapshots)


def compute_usage(
    services: Services,
    now: float,
    *,
    names: Sequence[str] | None = None,
    dataset_glob: str | None = None,
    target: TargetSearch | None = None,
    scan: bool = True,
    runs: Sequence[RunSummary] | None = None,
) -> list[ComputeUsage]:
    """GPU-hours and cost per dataset, and to ``target`` (``scan``, ``runs`` and ``target`` as for
    ``compute_runs``: the CLI scans and parses, the hub reads the index and the stored states; both read
    a target's first hits from the points)."""
    found = compute_runs(services, names=names, dataset_glob=dataset_glob, target=target, scan=scan, runs=runs)
    training = {(r.run.endpoint, r.run.relpath) for r in found if r.training}
    return compute_by_dataset([r.compute for r in found], now, training)
