"""The JSON (and CSV) shapes of compute usage and trends, shared by the CLI and the hub.

A cost without a price is ``null`` with ``price_note`` saying so ("price not set: set [cost]
gpu_hour"), never 0. No console or web imports.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from typing import Any, TextIO
from urllib.parse import quote

from tbhub.core.cost import PRICE_NOT_SET
from tbhub.core.names import shown
from tbhub.core.trends import MEASURES, Trend, TrendPoint
from tbhub.core.usage import ComputeUsage, DatasetUsage
from tbhub.interfaces.records import cost_figure, usage_record

__all__ = [
    "COMPUTE_FIELDS",
    "TREND_CSV_FIELDS",
    "compute_record",
    "compute_text",
    "run_href",
    "trend_record",
    "usage_rows",
    "usage_totals",
    "write_rows_csv",
    "write_trends_csv",
]

#: The compute fields a ``tbhub usage`` record gains, in order.
COMPUTE_FIELDS = (
    "gpu_hours", "compute_cost", "this_month", "gpu_hours_this_month", "compute_cost_this_month",
    "last_month", "gpu_hours_last_month", "compute_cost_last_month", "run_gpu_hours_median",
    "run_gpu_hours_max", "run_compute_cost_median", "run_compute_cost_max", "target", "target_runs",
    "target_gpu_hours_median", "target_compute_cost_median", "busy_time_exact", "price_note",
)


def _hours(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _cost(value: float | None) -> float | None:
    return None if value is None else cost_figure(value)


def compute_record(c: ComputeUsage | None, target: str | None) -> dict[str, Any]:
    """The compute fields of one dataset; ``None`` (not computed: ``--storage-only``, or no scalar state
    of its runs yet): every field ``null`` but the target asked."""
    if c is None:
        return dict.fromkeys(COMPUTE_FIELDS) | {"target": target}
    return {
        "gpu_hours": _hours(c.gpu_hours),
        "compute_cost": _cost(c.cost),
        "this_month": c.this_month,
        "gpu_hours_this_month": _hours(c.gpu_hours_this_month),
        "compute_cost_this_month": _cost(c.cost_this_month),
        "last_month": c.last_month,
        "gpu_hours_last_month": _hours(c.gpu_hours_last_month),
        "compute_cost_last_month": _cost(c.cost_last_month),
        "run_gpu_hours_median": _hours(c.run_gpu_hours_median),
        "run_gpu_hours_max": _hours(c.run_gpu_hours_max),
        "run_compute_cost_median": _cost(c.run_cost_median),
        "run_compute_cost_max": _cost(c.run_cost_max),
        "target": target,
        "target_runs": c.target_runs,
        "target_gpu_hours_median": _hours(c.target_gpu_hours_median),
        "target_compute_cost_median": _cost(c.target_cost_median),
        "busy_time_exact": c.exact,
        "price_note": None if c.priced else PRICE_NOT_SET,
    }


def usage_rows(storage: Sequence[DatasetUsage], compute: Sequence[ComputeUsage], per_gb: float, currency: str,
               target: str | None = None) -> list[dict[str, Any]]:
    """One record per dataset: its storage (``usage_record``) and its compute side by side."""
    by_key = {(c.endpoint, c.dataset): c for c in compute}
    rows = []
    for u in storage:
        rows.append(usage_record(u, per_gb, currency) | compute_record(by_key.pop((u.endpoint, u.dataset), None),
                                                                        target))
    for c in by_key.values():  # compute of a dataset the storage rows do not list (not indexed yet)
        empty = DatasetUsage(c.endpoint, c.dataset, 0, c.runs, 0)
        rows.append(usage_record(empty, per_gb, currency) | compute_record(c, target))
    return rows


def usage_totals(compute: Sequence[ComputeUsage]) -> dict[str, Any]:
    """The compute totals of the usage page: GPU-hours and cost this month and last (costs ``None``
    when a dataset has no price)."""
    priced = all(c.priced for c in compute)

    def total(values: Sequence[float | None]) -> float | None:
        return sum(v or 0.0 for v in values) if priced else None

    return {
        "any": bool(compute),
        "priced": priced,
        "exact": all(c.exact for c in compute),
        "this_month": compute[0].this_month if compute else "",
        "last_month": compute[0].last_month if compute else "",
        "gpu_hours_this_month": sum(c.gpu_hours_this_month for c in compute),
        "cost_this_month": total([c.cost_this_month for c in compute]),
        "gpu_hours_last_month": sum(c.gpu_hours_last_month for c in compute),
        "cost_last_month": total([c.cost_last_month for c in compute]),
    }


def compute_text(value: float | None, *, priced: bool = True) -> str:
    """A compute cost for tables and pages: to the cent (``<0.01`` below half a cent), "not set" without
    a price, "" when there is nothing to price."""
    if value is None:
        return "not set" if not priced else ""
    if 0 < value < 0.005:
        return "<0.01"
    return f"{value:,.2f}"


def write_rows_csv(out: TextIO, records: Sequence[dict[str, Any]], fields: Sequence[str]) -> None:
    writer = csv.DictWriter(out, fieldnames=list(fields), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(records)


def shown_name(endpoint: str, dataset: str) -> str:
    return f"{endpoint}/{shown(dataset) or '·'}"


#: The columns of ``tbhub trends --csv``: one row per point.
TREND_CSV_FIELDS = ("endpoint", "dataset", "by", "label", "at", *MEASURES, "training", "runs")


def run_href(endpoint: str, relpath: str) -> str:
    """The hub's page of a run."""
    return f"/runs/{quote(endpoint, safe='')}/{quote(shown(relpath))}"


def _figure(measure: str, value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    if measure in ("cost", "target_cost"):
        return cost_figure(value)
    return float(f"{value:.6g}")


def point_record(endpoint: str, point: TrendPoint) -> dict[str, Any]:
    return {
        "label": shown(point.label),
        "at": round(point.at, 3),
        **{m: _figure(m, point.value(m)) for m in MEASURES},
        "training": point.training,
        "runs": [{"run": shown(r.run), "relpath": shown(r.relpath), "href": run_href(endpoint, r.relpath),
                  "training": r.training} for r in point.runs],
    }


def trend_record(trend: Trend, *, metric: str | None, target: str | None, currency: str) -> dict[str, Any]:
    """A dataset's trend: its points (each with the runs behind it) and what was measured."""
    return {
        "endpoint": trend.endpoint,
        "dataset": shown(trend.dataset),
        "by": trend.by,
        "metric": metric,
        "target": target,
        "currency": currency,
        "points": [point_record(trend.endpoint, p) for p in trend.points],
    }


def write_trends_csv(out: TextIO, records: Sequence[dict[str, Any]]) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(TREND_CSV_FIELDS)
    for t in records:
        for p in t["points"]:
            writer.writerow([t["endpoint"], t["dataset"], t["by"], p["label"], p["at"], *(p[m] for m in MEASURES),
                             p["training"], ";".join(r["relpath"] for r in p["runs"])])
