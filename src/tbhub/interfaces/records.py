"""The JSON (and CSV) shapes of runs, comparisons and usage, shared by the CLI and the hub.

No console or web imports: the hub process loads this without the CLI's libraries. ``run_record`` keeps
names exactly as the file system has them (``tbhub runs --json`` is lossless: ``json.dump`` writes an
undecodable byte as a ``\\udcNN`` escape); the comparison and usage reports show them escaped
(``core.names.shown``), as the hub must.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections.abc import Sequence
from typing import Any, TextIO

from tbhub.core.compare import CompareRow
from tbhub.core.models import RunSummary
from tbhub.core.names import shown
from tbhub.core.scalars import TagSummary
from tbhub.core.status import StatusVerdict
from tbhub.core.units import format_age
from tbhub.core.usage import DatasetUsage

__all__ = [
    "AGE_STYLES",
    "RUN_FIELDS",
    "STATUS_FIELDS",
    "age_style",
    "compare_record",
    "cost_figure",
    "cost_text",
    "iso_utc",
    "progress_text",
    "run_record",
    "status_record",
    "tag_record",
    "usage_record",
    "write_compare_csv",
]


#: The fields of a run in ``--json`` and ``--csv`` output, in order.
RUN_FIELDS = (
    "endpoint", "dataset", "run", "path", "size_bytes", "event_files", "event_count", "first_step",
    "last_step", "first_wall_time", "last_wall_time", "last_modified", "age_seconds", "truncated", "corrupt",
)

#: The fields ``status_record`` adds to a run (``tbhub runs --status``, the API), in order.
STATUS_FIELDS = ("status", "status_reason", "framework", "plan", "progress", "eta", "eta_seconds", "crashed")

#: The age colours shared by the CLI and the hub: fresh, ageing, old.
AGE_STYLES = ("green", "yellow", "red")


def age_style(age_seconds: float, fresh_days: float, old_days: float) -> str:
    if age_seconds < fresh_days * 86400:
        return AGE_STYLES[0]
    if age_seconds < old_days * 86400:
        return AGE_STYLES[1]
    return AGE_STYLES[2]


def iso_utc(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def run_record(run: RunSummary, root: str, now_ns: int) -> dict[str, Any]:
    """The ``--json`` shape of a run: exactly the documented fields."""
    return {
        "endpoint": run.endpoint,
        "dataset": run.dataset,
        "run": run.run,
        "path": f"{root.rstrip('/')}/{run.relpath}",
        **run.counts(),
        "last_modified": iso_utc(run.last_modified_ns),
        "age_seconds": round(run.age_seconds(now_ns), 3),
        "truncated": run.truncated,
        "corrupt": [
            {"file": relpath, "offset": c.offset, "reason": c.reason} for relpath, c in run.corrupt
        ],
    }


def status_record(verdict: StatusVerdict, now_ns: int) -> dict[str, Any]:
    """A run's status and what its logs tell of its framework (``STATUS_FIELDS``): ``framework`` the one
    recognised (``transformers``, ``lightning``, ``keras``) or ``None``; ``plan`` like ``"20 steps"``;
    ``progress`` the fraction of the plan done (0 to 1); ``eta`` (ISO time) and ``eta_seconds`` (from
    now) while the run is running; ``crashed`` the hint on a stalled run that stopped short of its plan."""
    where = verdict.progress
    eta = where.eta if where is not None else None
    return {
        "status": verdict.status.value,
        "status_reason": verdict.reason,
        "framework": verdict.framework,
        "plan": where.plan.text() if where is not None else None,
        "progress": round(where.fraction, 4) if where is not None else None,
        "eta": iso_utc(int(eta * 1e9)) if eta is not None else None,
        "eta_seconds": round(max(0.0, eta - now_ns / 1e9), 1) if eta is not None else None,
        "crashed": verdict.crashed,
    }


def progress_text(verdict: StatusVerdict, now_ns: int) -> str:
    """One short line for tables and pages: ``45% of 20 steps, ETA 3m``, ``crashed? at 35% of 20 steps``."""
    where = verdict.progress
    if where is None:
        return "crashed?" if verdict.crashed else ""
    text = f"{where.fraction:.0%} of {where.plan.text()}"
    if verdict.crashed:
        return f"crashed? at {text}"
    if where.eta is not None:
        text += f", ETA {format_age(max(0.0, where.eta - now_ns / 1e9))}"
    return text


def _num(value: float | None) -> float | str | None:
    if value is None:
        return None
    return value if math.isfinite(value) else str(value)


def tag_record(summary: TagSummary) -> dict[str, Any]:
    return {
        "count": summary.count,
        "nan_count": summary.nan_count,
        "first_step": summary.first_step,
        "last_step": summary.last_step,
        "last": _num(summary.last_value),
        "min": _num(summary.min_value),
        "min_step": summary.min_step,
        "max": _num(summary.max_value),
        "max_step": summary.max_step,
        "mean_last": _num(summary.mean_last),
    }


def compare_record(row: CompareRow, tags: Sequence[str], best: bool) -> dict[str, Any]:
    run = row.run
    return {
        "endpoint": run.endpoint,
        "dataset": shown(run.dataset),
        "run": shown(run.run),
        "relpath": shown(run.relpath),
        "best": best,
        "first_step": run.first_step,
        "last_step": run.last_step,
        "duration_s": None if row.duration_s is None else round(row.duration_s, 3),
        "steps_per_s": None if row.steps_per_s is None else round(row.steps_per_s, 4),
        "target_step": row.target.step if row.target else None,
        "target_seconds": None if row.target is None or row.target.seconds is None else round(row.target.seconds, 3),
        "tags": {t: tag_record(row.tags[t]) for t in tags if t in row.tags},
    }


def write_compare_csv(out: TextIO, records: list[dict[str, Any]], tags: Sequence[str]) -> None:
    base = [
        "endpoint",
        "dataset",
        "run",
        "relpath",
        "best",
        "first_step",
        "last_step",
        "duration_s",
        "steps_per_s",
        "target_step",
        "target_seconds",
    ]
    fields = ["last", "min", "min_step", "max", "max_step", "mean_last", "count", "nan_count"]
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(base + [f"{t}:{f}" for t in tags for f in fields])
    for r in records:
        writer.writerow([r[k] for k in base] + [r["tags"].get(t, {}).get(f) for t in tags for f in fields])


def cost_figure(value: float) -> float:
    """A cost for JSON: to the cent, with more decimals where the cent would hide it (4 significant
    digits): 12.35, 0.5, 0.002346. A small dataset's cost is never rounded away to 0.0, and a sum of
    many small ones stays within 0.05 % of the real figure."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, max(2, 3 - math.floor(math.log10(abs(value)))))


def cost_text(value: float) -> str:
    """A cost for tables and pages: to the cent (``1,234.50``); a cost below half a cent shows as
    ``<0.01``, never as a 0.00 that reads as free."""
    if 0 < value < 0.005:
        return "<0.01"
    return f"{value:,.2f}"


def usage_record(u: DatasetUsage, per_gb: float, currency: str) -> dict[str, Any]:
    return {
        "endpoint": u.endpoint,
        "dataset": shown(u.dataset),
        "size_bytes": u.size_bytes,
        "runs": u.runs,
        "events": u.events,
        "monthly_cost": None if (monthly := u.monthly_cost(per_gb)) is None else cost_figure(monthly),
        "currency": currency,
        "growth_7d_bytes": u.growth_7d,
        "growth_30d_bytes": u.growth_30d,
    }
