"""Turn core models into rich renderables and JSON-ready dicts. No I/O besides the console given."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from tbhub.core.models import RunSummary
from tbhub.core.names import shown
from tbhub.core.units import format_age, format_size
from tbhub.interfaces.records import age_style, iso_utc

__all__ = ["local_time", "name_text", "runs_table"]


def local_time(t: float | None) -> str:
    """A moment in the local time zone, to the minute; ``never`` for none."""
    return dt.datetime.fromtimestamp(t).astimezone().strftime("%Y-%m-%d %H:%M") if t else "never"


def name_text(name: str) -> Text:
    """A name from the file system as a table cell: escaped (``shown``) and never read as rich markup,
    so neither ``\x1b[31m`` nor ``[red]`` in a run name can style the terminal."""
    return Text(shown(name))


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
    progress: dict[tuple[str, str], str] | None = None,
) -> Table:
    """The runs table of ``tbhub runs`` and ``tbhub clean``: one row a run, index first, totals last.
    ``statuses`` and ``progress`` (by endpoint and relpath) add a column each; the state column
    (corrupt, active, writing) is there when some run has one."""
    flags = [_flags(run, active_minutes is not None and run.age_seconds(now_ns) < active_minutes * 60) for run in runs]
    flagged = any(flags)
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
    if flagged:
        table.add_column("state")
    if statuses is not None:
        table.add_column("status")
    if progress is not None:
        table.add_column("progress")
    for i, run in enumerate(runs):
        age = run.age_seconds(now_ns)
        table.add_row(
            str(i),
            run.endpoint,
            name_text(run.dataset) if run.dataset else "·",
            name_text(run.run),
            format_size(run.size_bytes),
            f"{run.event_count:,}",
            "" if run.last_step is None else f"{run.last_step:,}",
            iso_utc(run.last_modified_ns).replace("T", " ").removesuffix("Z"),
            format_age(age),
            *([flags[i]] if flagged else []),
            *([_status_cell(statuses.get((run.endpoint, run.relpath)))] if statuses is not None else []),
            *([progress.get((run.endpoint, run.relpath), "")] if progress is not None else []),
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
            *([""] if flagged else []),
            *([""] if statuses is not None else []),
            *([""] if progress is not None else []),
            style="bold",
        )
    return table
