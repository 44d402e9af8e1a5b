"""What the ``/usage`` page (and ``GET /api/usage``) shows: storage from the index, compute from the
stored scalar states, no scan; with a target, the cost to it (its first hits read from the event files:
``tbhub.app.targets``)."""

from __future__ import annotations

import fnmatch
import time
from typing import Any

from tbhub.app.hub import Hub
from tbhub.app.targets import TargetSearch
from tbhub.app.usage import compute_usage
from tbhub.core.usage import ComputeUsage
from tbhub.interfaces.cost_records import usage_rows

__all__ = ["usage_data"]


def usage_data(hub: Hub, dataset: str, search: TargetSearch | None) -> tuple[list[dict[str, Any]], list[ComputeUsage]]:
    """The usage rows (storage and compute, and to ``search``'s target) of the datasets matching
    ``dataset`` (all when blank); the rows ``/api/usage`` answers."""
    cost = hub.config.cost
    glob = dataset.strip() or None
    compute = compute_usage(hub.services, time.time(), dataset_glob=glob, target=search, scan=False)
    storage = [u for u in hub.usage() if glob is None or fnmatch.fnmatchcase(u.dataset, glob)]
    goal = None if search is None else str(search.target)
    return usage_rows(storage, compute, cost.storage_per_gb_month, cost.currency, goal), compute
