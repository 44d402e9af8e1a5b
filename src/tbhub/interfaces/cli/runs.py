"""``tbhub runs``: every run of every endpoint, scanned fast, as a table, JSON or CSV."""

from __future__ import annotations

import csv
import sys
import time
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from tbhub.app.inventory import scan_endpoints
from tbhub.app.services import Services
from tbhub.app.status import current_statuses
from tbhub.core.inventory import EndpointInventory
from tbhub.core.models import RunSummary
from tbhub.core.names import shown
from tbhub.core.units import parse_duration
from tbhub.interfaces.cli.options import (
    ConfigOpt,
    CsvOpt,
    JsonOpt,
    LogdirOpt,
    PathArg,
    config_from,
    endpoint_option,
    one_format,
    output_console,
    parsed,
    print_json,
)
from tbhub.interfaces.cli.progress import scan_progress
from tbhub.interfaces.cli.render import runs_table
from tbhub.interfaces.records import RUN_FIELDS, STATUS_FIELDS, progress_text, run_record, status_record

__all__ = ["SortKey", "runs_command", "sort_runs"]


class SortKey(StrEnum):
    name = "name"
    age = "age"
    size = "size"
    events = "events"


def sort_runs(runs: list[RunSummary], key: SortKey) -> list[RunSummary]:
    """name: alphabetical; age: oldest first; size and events: largest first."""
    if key is SortKey.age:
        return sorted(runs, key=lambda r: (r.last_modified_ns, r.endpoint, r.relpath))
    if key is SortKey.size:
        return sorted(runs, key=lambda r: (-r.size_bytes, r.endpoint, r.relpath))
    if key is SortKey.events:
        return sorted(runs, key=lambda r: (-r.event_count, r.endpoint, r.relpath))
    return sorted(runs, key=lambda r: (r.endpoint, r.dataset, r.run, r.relpath))


def runs_command(
    path: PathArg = None,
    config: ConfigOpt = None,
    logdir: LogdirOpt = None,
    endpoint: Annotated[list[str] | None, endpoint_option("Only this endpoint (repeatable, or 'all').")] = None,
    older_than: Annotated[
        str | None,
        typer.Option("--older-than", metavar="AGE", help="Only runs last modified longer ago than this (7d, 12h)."),
    ] = None,
    sort: Annotated[
        SortKey, typer.Option("--sort", metavar="[name|age|size|events]", help="Order of the rows.")
    ] = SortKey.name,
    verify: Annotated[bool, typer.Option("--verify", help="Also check every payload CRC (slower).")] = False,
    status: Annotated[
        bool,
        typer.Option(
            "--status",
            help="Also decide each run's status (running, stalled, finished, diverged) and read what its "
            "framework logged: the plan, progress, ETA and a crashed hint (see docs/frameworks.md).",
        ),
    ] = False,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
) -> None:
    """List runs: size, events, steps, last modified and age, coloured by age.

    With --status also each run's status and what its framework logged: plan, progress, ETA.

    Examples:
      tbhub runs --config tbhub.toml
      tbhub runs --config tbhub.toml --endpoint lora --older-than 7d --sort size
      tbhub runs --config tbhub.toml --status --json
      tbhub runs /data/tb --csv
    """
    one_format(as_json, as_csv)
    cfg = config_from(config, logdir, path)
    min_age = parsed(older_than, parse_duration, "--older-than")
    err = Console(stderr=True)
    show_progress = not (as_json or as_csv) and err.is_terminal
    with Services(cfg) as services:
        with scan_progress(err, enabled=show_progress) as progress:
            inventories = scan_endpoints(services, endpoint, verify=verify, progress=progress)
        now_ns = time.time_ns()
        verdicts = current_statuses(services, inventories, now_ns) if status else {}
    runs = [r for inv in inventories for r in inv.runs]
    if min_age is not None:
        runs = [r for r in runs if r.age_seconds(now_ns) >= min_age]
    runs = sort_runs(runs, sort)
    roots = {inv.endpoint.name: inv.endpoint.logdir for inv in inventories}
    records = [run_record(r, roots[r.endpoint], now_ns) for r in runs]
    if status:
        for run, record in zip(runs, records, strict=True):
            record.update(status_record(verdicts[(run.endpoint, run.relpath)], now_ns))
    if as_json:
        print_json(records)
        return
    if as_csv:
        _write_csv(records)
        return
    out = output_console()
    out.print(
        runs_table(
            runs,
            now_ns=now_ns,
            fresh_days=cfg.display.fresh_days,
            old_days=cfg.display.old_days,
            statuses={key: v.status.value for key, v in verdicts.items()} if status else None,
            progress={key: progress_text(v, now_ns) for key, v in verdicts.items()} if status else None,
        )
    )
    _report_skipped(err, inventories)


def _write_csv(records: list[dict[str, Any]]) -> None:
    fields = list(RUN_FIELDS) + [f for f in STATUS_FIELDS if records and f in records[0]]
    writer = csv.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for record in records:
        # CSV is text for spreadsheets and terminals: names are escaped as in the table (--json is lossless).
        row = dict(record) | {f: shown(record[f]) for f in ("dataset", "run", "path")}
        row["corrupt"] = "; ".join(f"{shown(c['file'])}@{c['offset']}: {c['reason']}" for c in record["corrupt"])
        writer.writerow(row)


def _report_skipped(err: Console, inventories: list[EndpointInventory]) -> None:
    for inv in inventories:
        for skipped in inv.skipped:
            where = f" {inv.endpoint.name}: {shown(skipped.relpath)}: {shown(skipped.reason)}"
            err.print(Text.assemble(("skipped", "yellow"), where))
