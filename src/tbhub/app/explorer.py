"""The runs explorer and the hub's summary: runs of one endpoint or of all, sorted, filtered and paged in SQL.

Both read ``run_index`` (one row per run), which ``sync_run_index`` derives from the scan index by each
endpoint's layout whenever the index moved on (its generation). The background scan calls it after
each scan (``app/inventory.refresh``), so a page normally finds it in step; a page calls it too, to
cover an index a CLI command changed in between: that costs one small query when nothing changed. No
event file is opened: the rows come from the index, as every page's data does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tbhub.app.services import Services
from tbhub.core.explorer import ExplorerRow, RunPage, RunQuery, StatusCounts
from tbhub.core.runs import index_runs
from tbhub.errors import UnknownEndpoint

__all__ = ["ExplorerRow", "HubSummary", "RunPage", "RunQuery", "StatusCounts", "explore", "hub_summary",
           "sync_run_index"]


def sync_run_index(services: Services, names: Sequence[str] | None = None) -> int:
    """Bring the run rows of ``names`` (every endpoint by default) in step with the scan index.

    Returns how many rows were written. Reads the generation before the index, so the generation
    recorded is never newer than the rows (a change in between is picked up by the next call)."""
    wanted = list(names) if names is not None else list(services.specs)
    store = services.state
    written = 0
    for name, (generation, synced) in store.run_generations(wanted).items():
        if synced == generation:
            continue
        spec = services.spec(name)
        runs = index_runs(name, services.state.load(name), layout=spec.layout)
        rows = {
            r.relpath: (
                r.dataset, r.run, r.size_bytes, r.event_files, r.event_count, r.first_step, r.last_step,
                r.first_wall_time, r.last_wall_time, r.last_modified_ns, r.truncated, bool(r.corrupt),
            )
            for r in runs
        }
        written += store.sync_runs(name, generation, rows)
    return written


def explore(services: Services, endpoint: str | None, query: RunQuery, now_ns: int) -> RunPage:
    """One page of the runs of ``endpoint`` (or of every endpoint) that ``query`` selects.

    ``query.endpoint`` narrows the all-endpoints view to one; an unknown endpoint is ``UnknownEndpoint``
    (HTTP 404)."""
    names = list(services.specs)
    for name in (endpoint, query.endpoint):
        if name and name not in services.specs:
            raise UnknownEndpoint(f"no endpoint {name!r}")
    if endpoint:
        names = [endpoint]
    if query.endpoint:
        names = [n for n in names if n == query.endpoint]
    sync_run_index(services, names)
    return services.state.query_runs(names, query, now_ns)


@dataclass(frozen=True, slots=True)
class HubSummary:
    """Per endpoint and overall: runs by status, runs written to lately (``active``), size on disk."""

    endpoints: dict[str, StatusCounts]
    active: dict[str, int]
    total: StatusCounts

    @property
    def total_active(self) -> int:
        return sum(self.active.values())


def hub_summary(services: Services, now_ns: int, active_s: float) -> HubSummary:
    """The hub's summary cards, from the run rows (a few GROUP BY queries, whatever the number of runs)."""
    names = list(services.specs)
    sync_run_index(services, names)
    counts = services.state.run_status_counts(names)
    active = services.state.active_run_counts(names, now_ns - int(active_s * 1e9))
    return HubSummary(counts, active, StatusCounts.total(counts.values()))
