"""Group event files into runs by the endpoint's layout.

A layout names the folders between the log root and a run:

* ``{dataset}/{run}`` (the default): a run is the folder two levels below the log root, inside its
  dataset folder;
* ``{run}``: a run is a folder directly below the log root, and there are no datasets (``dataset``
  is ``""``, which tables show as ``·`` and JSON as ``""``).

A run owns every event file beneath its folder (``train/`` and ``eval/`` sub-folders included). An
event file outside the layout (directly in the root, or in a dataset folder) becomes a run of its own
whose path is the file itself, so deleting it can never take other runs with it. Folders without event
files are not runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tbhub.core.models import DEFAULT_LAYOUT, EventFileScan, RunSummary

__all__ = ["LAYOUTS", "check_layout", "group_runs", "index_runs", "run_key"]

#: The layouts tbhub understands, each as the folder names from the log root down to a run.
LAYOUTS: dict[str, tuple[str, ...]] = {
    DEFAULT_LAYOUT: ("dataset", "run"),
    "{run}": ("run",),
}


def check_layout(layout: str) -> str:
    """``layout`` if tbhub understands it, else ``ValueError`` naming the ones it does."""
    if layout not in LAYOUTS:
        known = " or ".join(repr(name) for name in LAYOUTS)
        raise ValueError(f"unknown layout {layout!r}: use {known}")
    return layout


def run_key(relpath: str, layout: str) -> tuple[str, str, str]:
    """(dataset, run, run relpath) of the run an event file at ``relpath`` belongs to under ``layout``."""
    levels = LAYOUTS[check_layout(layout)]
    parts = relpath.split("/")
    if len(parts) > len(levels):
        folder = dict(zip(levels, parts, strict=False))
        return folder.get("dataset", ""), folder["run"], "/".join(parts[: len(levels)])
    # Shallower than the layout: the file is a run of its own, in whatever folder holds it.
    return "/".join(parts[:-1]), parts[-1], relpath


def group_runs(endpoint: str, scans: Iterable[EventFileScan], *, layout: str) -> list[RunSummary]:
    """Runs sorted by (dataset, run); each run's files sorted by relpath."""
    grouped: dict[tuple[str, str, str], list[EventFileScan]] = {}
    for scan in scans:
        grouped.setdefault(run_key(scan.relpath, layout), []).append(scan)
    runs = [
        RunSummary(endpoint, dataset, run, relpath, tuple(sorted(files, key=lambda f: f.relpath)))
        for (dataset, run, relpath), files in grouped.items()
    ]
    runs.sort(key=lambda r: (r.dataset, r.run, r.relpath))
    return runs


#: endpoint -> (the index mapping grouped last, its layout, its runs). The state store hands out the same
#: mapping until any process changes the index (its generation), so scans and pages group each index once.
_GROUPED: dict[str, tuple[Mapping[str, EventFileScan], str, list[RunSummary]]] = {}


def index_runs(endpoint: str, index: Mapping[str, EventFileScan], *, layout: str) -> list[RunSummary]:
    """``group_runs`` of an index mapping (relpath -> scan), grouped once per mapping: a new list of the
    same runs while ``index`` is the very mapping grouped last for ``endpoint`` with ``layout``."""
    cached = _GROUPED.get(endpoint)
    if cached is None or cached[0] is not index or cached[1] != layout:
        cached = _GROUPED[endpoint] = (index, layout, group_runs(endpoint, index.values(), layout=layout))
    return list(cached[2])
