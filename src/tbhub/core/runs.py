"""Group event files into runs by the endpoint's layout.

With the layout ``{dataset}/{run}`` a run is the folder two levels below the log root and owns every
event file beneath it (``train/`` and ``eval/`` sub-folders included). An event file outside the layout
(directly in the root or in a dataset folder) becomes a run of its own whose path is the file itself,
so deleting it can never take other runs with it. Folders without event files are not runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tbhub.core.models import EventFileScan, RunSummary

__all__ = ["group_runs", "index_runs", "run_key"]


def run_key(relpath: str) -> tuple[str, str, str]:
    """(dataset, run, run relpath) of the run an event file at ``relpath`` belongs to."""
    parts = relpath.split("/")
    if len(parts) >= 3:
        return parts[0], parts[1], f"{parts[0]}/{parts[1]}"
    if len(parts) == 2:
        return parts[0], parts[1], relpath
    return "", parts[0], relpath


def group_runs(endpoint: str, scans: Iterable[EventFileScan]) -> list[RunSummary]:
    """Runs sorted by (dataset, run); each run's files sorted by relpath."""
    grouped: dict[tuple[str, str, str], list[EventFileScan]] = {}
    for scan in scans:
        grouped.setdefault(run_key(scan.relpath), []).append(scan)
    runs = [
        RunSummary(endpoint, dataset, run, relpath, tuple(sorted(files, key=lambda f: f.relpath)))
        for (dataset, run, relpath), files in grouped.items()
    ]
    runs.sort(key=lambda r: (r.dataset, r.run, r.relpath))
    return runs


#: endpoint -> (the index mapping grouped last, its runs). The state store hands out the same mapping
#: until any process changes the index (its generation), so scans and pages group each index once.
_GROUPED: dict[str, tuple[Mapping[str, EventFileScan], list[RunSummary]]] = {}


def index_runs(endpoint: str, index: Mapping[str, EventFileScan]) -> list[RunSummary]:
    """``group_runs`` of an index mapping (relpath -> scan), grouped once per mapping: a new list of the
    same runs while ``index`` is the very mapping grouped last for ``endpoint``."""
    cached = _GROUPED.get(endpoint)
    if cached is None or cached[0] is not index:
        cached = _GROUPED[endpoint] = (index, group_runs(endpoint, index.values()))
    return list(cached[1])
