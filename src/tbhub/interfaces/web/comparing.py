"""The compare page's data: the chosen runs (by id, or by endpoint and dataset), the tag picker,
the sorted table with the best run, the export and the curves' series, as JSON-ready dicts.

Runs are named ``endpoint/dataset/run`` (``app.compare.run_id``), so one comparison spans endpoints.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlencode

from tbhub.app.compare import (
    Selection,
    run_id,
    select_filtered,
    select_recent,
    select_runs,
    selection_rows,
    selection_series,
)
from tbhub.app.hub import Hub
from tbhub.app.series import SeriesCache
from tbhub.core.bookmarks import tensorboard_link
from tbhub.core.compare import COLUMNS, SortSpec, best_index, parse_sort, sort_rows
from tbhub.core.names import shown
from tbhub.core.series import SeriesPoints
from tbhub.errors import UsageError
from tbhub.interfaces.records import compare_record

__all__ = ["MAX_CURVES", "MAX_ROWS", "RECENT", "CompareQuery", "compare_view", "series_json"]

#: Runs drawn as curves at most (the table lists every chosen run).
MAX_CURVES = 20
#: Runs compared when none is chosen: the most recently written ones, of every endpoint.
RECENT = 20
#: Rows the page shows when runs are not chosen by id but by endpoint and dataset (the export has all).
MAX_ROWS = 200


class CompareQuery:
    """What the compare URL asks for: ``run`` (repeated) or ``endpoint``/``dataset``, ``tag``s, ``sort``."""

    def __init__(self, runs: Sequence[str], endpoint: str, dataset: str, tags: Sequence[str], sort: str) -> None:
        self.runs = [r.strip().strip("/") for r in runs if r.strip().strip("/")]
        self.endpoint, self.dataset, self.sort = endpoint.strip(), dataset.strip(), sort.strip()
        # "tags" (comma-separated, the old form) and repeated "tag" both work.
        self.tags = list(dict.fromkeys(t.strip() for text in tags for t in text.split(",") if t.strip()))

    def selection(self, hub: Hub) -> Selection:
        if self.runs:
            return select_runs(hub.services, self.runs)
        if self.endpoint and self.endpoint not in hub.specs:
            raise UsageError(f"no endpoint {self.endpoint!r}")
        if not self.endpoint and not self.dataset:
            return select_recent(hub.services, RECENT)
        return select_filtered(hub.services, self.endpoint or None, self.dataset or None)

    def url(self, path: str = "/compare", **changes: Any) -> str:
        """This query as a URL, with ``changes`` (``sort=...``, ``tag=[...]``, ``format=...``)."""
        params: list[tuple[str, str]] = [("run", r) for r in self.runs]
        if not self.runs:
            params += [(k, v) for k, v in (("endpoint", self.endpoint), ("dataset", self.dataset)) if v]
        params += [("tag", t) for t in changes.pop("tag", self.tags)]
        sort = changes.pop("sort", self.sort)
        if sort:
            params.append(("sort", sort))
        params += [(k, str(v)) for k, v in changes.items()]
        return path + ("?" + urlencode(params) if params else "")


def _spec(text: str) -> SortSpec | None:
    try:
        return parse_sort(text) if text else None
    except ValueError as error:
        raise UsageError(str(error)) from None


def _header(query: CompareQuery, spec: SortSpec | None, key: SortSpec) -> dict[str, Any]:
    """A sortable header: its link (the other direction when it is the current sort) and aria-sort."""
    active = spec is not None and (spec.tag, spec.how) == (key.tag, key.how)
    target = spec.toggled() if active and spec is not None else key
    state = "none" if not active or spec is None else ("descending" if spec.descending else "ascending")
    return {"href": query.url(sort=str(target)), "aria_sort": state}


def compare_view(hub: Hub, query: CompareQuery, *, max_rows: int | None = MAX_ROWS) -> dict[str, Any]:
    """Everything the page and the export show, from the index and the scalar states only. Runs chosen
    by endpoint and dataset are cut to the first ``max_rows`` in the table's order (``None``: all)."""
    selection = query.selection(hub)
    counts = selection.tag_counts()
    spec = _spec(query.sort)
    chosen = list(query.tags)
    note = None
    if not chosen:
        default = selection.default_tag()
        if default is not None:
            chosen = [default]
            have = dict(counts)[default]
            note = (f"No tag chosen: showing {default}, the most common scalar tag of these runs "
                    f"({have} of {len(selection.runs)}). Pick others below.")
    if spec is not None and not spec.column and spec.tag not in chosen:
        chosen.append(spec.tag)
    rows = sort_rows(selection_rows(selection, chosen), spec)
    best = best_index(rows, spec)
    hidden = 0
    if not query.runs and max_rows is not None and len(rows) > max_rows:
        hidden = len(rows) - max_rows
        rows = rows[:max_rows]
        best = best if best is not None and best < max_rows else None
    records = []
    for i, r in enumerate(rows):
        record = compare_record(r, chosen, i == best)
        records.append(record | {
            "id": run_id(r.run),
            "href": f"/runs/{quote(r.run.endpoint, safe='')}/{quote(shown(r.run.relpath))}",
            "first_wall_time": r.run.first_wall_time,
            "tensorboard": tensorboard_link(r.run.endpoint, r.run.relpath),
            # The tags whose last value is NaN or infinite: the run diverged (flagged, never best).
            "diverged": [t for t in chosen if r.diverged(t)],
        })
    headers = {
        "columns": {c: _header(query, spec, SortSpec(c, "column", c != "run")) for c in COLUMNS},
        "tags": {t: {how: _header(query, spec, SortSpec(t, how, how == "max")) for how in ("last", "min", "max")}
                 for t in chosen},
    }
    missing = [t for t in chosen if not any(t in r["tags"] for r in records)]
    return {
        "tags": chosen,
        "sort": str(spec) if spec else "",
        "rows": records,
        "available": [{"tag": t, "runs": n, "chosen": t in chosen} for t, n in counts],
        "unknown": selection.unknown,
        "note": note,
        "missing": missing,
        "headers": headers,
        "curves": [r["id"] for r in records[:MAX_CURVES]],
        "more_curves": max(0, len(records) - MAX_CURVES),
        "hidden_rows": hidden,
    }


def _points(points: SeriesPoints) -> dict[str, Any]:
    # JSON has no NaN: a non-finite value is null (the line breaks there); ``nonfinite`` lists its steps.
    return {
        "steps": list(points.steps),
        # Seven significant digits: what a float32 (TensorBoard's simple_value) holds; the JSON halves.
        "values": [float(f"{v:.7g}") if math.isfinite(v) else None for v in points.values],
        "nonfinite": [s for s, v in zip(points.steps, points.values, strict=True) if not math.isfinite(v)],
        "total": points.total,
    }


def series_json(hub: Hub, ids: Sequence[str], tags: Sequence[str], cache: SeriesCache) -> dict[str, Any]:
    """The curves of runs ``ids`` (at most ``MAX_CURVES``) for ``tags``: per run, per tag, steps and values."""
    if not tags:
        raise UsageError("name at least one tag (tag=eval/loss)")
    selection = select_runs(hub.services, list(ids)[:MAX_CURVES])
    series = selection_series(hub.services, selection, list(tags), cache)
    return {
        "tags": list(tags),
        "unknown": selection.unknown,
        "runs": [
            {"id": run_id(run), "series": {t: _points(p) for t, p in s.items()}}
            for run, s in zip(selection.runs, series, strict=True)
        ],
    }
