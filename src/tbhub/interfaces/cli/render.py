"""Turn core models into rich renderables and JSON-ready dicts. No I/O besides the console given."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from tbhub.core.models import RunSummary
from tbhub.core.units import format_age, format_size

__all__ = ["AGE_STYLES", "RUN_FIELDS", "age_style", "run_record", "runs_table"]

#: The fields of a run in ``--json`` and ``--csv`` output, in order.
RUN_FIELDS = (
    "endpoint", "dataset", "run", "path", "size_bytes", "event_files", "event_count", "first_step",
    "last_step", "first_wall_time", "last_wall_time", "last_modified", "age_seconds", "truncated", "corrupt",
)

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
        "size_bytes": run.size_bytes,
        "event_files": run.event_files,
        "event_count": run.event_count,
        "first_step": run.first_step,
        "last_step": run.last_step,
        "first_wall_time": run.first_wall_time,
        "last_wall_time": run.last_wall_time,
        "last_modified": iso_utc(run.last_modified_ns),
        "age_seconds": round(run.age_seconds(now_ns), 3),
        "truncated": run.truncated,
        "corrupt": [
            {"file": relpath, "offset": c.offset, "reason": c.reason} for relpath, c in run.corrupt
        ],
    }


def _flags(run: RunSummary, active: bool) -> Text:
    text = Text()
    if run.corrupt:
        _relpath, corrupt = run.corrupt[0]
        text.append(f"corrupt @{corrupt.offset}", style="bold red")
    elif active:
        text.append("active", style="bold cyan")
    elif run.truncated:
        text.append("writing", style="cyan")
    return text


STATUS_STYLES = {"running": "cyan", "stalled": "yellow", "finished": "green", "diverged": "bold red"}


def _status_cell(status: str | None) -> Text:
    return Text(status or "", style=STATUS_STYLES.get(status or "", ""))


def runs_table(
    runs: Sequence[RunSummary],
    *,
    now_ns: int,
    fresh_days: float,
    old_days: float,
    title: str | None = None,
    active_minutes: float | None = None,
    statuses: dict[tuple[str, str], str] | None = None,
) -> Table:
    """The runs table of ``tbhub runs`` and ``tbhub clean``: one row a run, index first, totals last."""
    table = Table(title=title, show_footer=False, header_style="bold", expand=False)
    table.add_column("#", justify="right", style="dim")
    table.add_column("endpoint")
    table.add_column("dataset")
    table.add_column("run", overflow="fold")
    table.add_column("size", justify="right")
    table.add_column("events", justify="right")
    table.add_column("last step", justify="right")
    table.add_column("last modified")
    table.add_column("age", justify="right")
    table.add_column("state")
    if statuses is not None:
        table.add_column("status")
    for i, run in enumerate(runs):
        age = run.age_seconds(now_ns)
        table.add_row(
            str(i),
            run.endpoint,
            run.dataset or "·",
            run.run,
            format_size(run.size_bytes),
            f"{run.event_count:,}",
            "" if run.last_step is None else f"{run.last_step:,}",
            iso_utc(run.last_modified_ns).replace("T", " ").removesuffix("Z"),
            format_age(age),
            _flags(run, active_minutes is not None and age < active_minutes * 60),
            *([_status_cell(statuses.get((run.endpoint, run.relpath)))] if statuses is not None else []),
            style=age_style(age, fresh_days, old_days),
        )
    if runs:
        table.add_section()
        table.add_row(
            "",
            "total",
            "",
            f"{len(runs)} runs",
            format_size(sum(r.size_bytes for r in runs)),
            f"{sum(r.event_count for r in runs):,}",
            "",
            "",
            "",
            "",
            *([""] if statuses is not None else []),
            style="bold",
        )
    return table
