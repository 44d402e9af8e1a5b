"""``tbhub usage``: storage (bytes, runs, events, growth, monthly cost) and compute (GPU-hours and their
cost this month and last, per run, to a target) per endpoint and dataset."""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from tbhub.app.inventory import scan_endpoints
from tbhub.app.services import Services
from tbhub.app.targets import TargetSearch
from tbhub.app.usage import compute_usage, usage_report
from tbhub.core.compare import parse_target
from tbhub.core.cost import PRICE_NOT_SET
from tbhub.core.units import format_size
from tbhub.core.usage import STORAGE_PRICE_NOT_SET, ComputeUsage, DatasetUsage, storage_cost
from tbhub.errors import UsageError
from tbhub.interfaces.cli.options import (
    ConfigOpt,
    CsvOpt,
    EndpointsOpt,
    JsonOpt,
    LogdirOpt,
    PathArg,
    config_from,
    note_state,
    one_format,
    output_console,
    parsed,
    print_json,
)
from tbhub.interfaces.cli.render import name_text
from tbhub.interfaces.cost_records import COMPUTE_FIELDS, compute_text, usage_rows, write_rows_csv
from tbhub.interfaces.records import usage_record

TargetOpt = Annotated[
    str | None,
    typer.Option("--target", metavar="GOAL", help='Also the cost to reach a GOAL like "eval/loss<0.5" (per dataset, '
                 "median over the runs that reached it)."),
]

__all__ = ["usage_command"]


def _growth(value: int | None) -> str:
    if value is None:
        return "n/a"
    return ("+" if value >= 0 else "-") + format_size(abs(value))


def _hours(value: float | None) -> str:
    """GPU-hours: one decimal, two below 10 (a short run's 0.05 h is not a 0.0)."""
    if value is None:
        return ""
    if value == 0:
        return "0"
    return f"{value:,.1f}" if value >= 10 else f"{value:.2f}"


def usage_command(
    path: PathArg = None,
    config: ConfigOpt = None,
    logdir: LogdirOpt = None,
    endpoint: EndpointsOpt = None,
    target: TargetOpt = None,
    storage_only: Annotated[
        bool, typer.Option("--storage-only", help="Storage only: no event file is parsed for compute.")
    ] = False,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
) -> None:
    """Storage and compute per endpoint and dataset, side by side.

    Storage: bytes, runs, events, growth over 7 and 30 days, monthly cost at [cost]
    storage_per_gb_month. Growth comes from the daily snapshots in the state database (tbhub serve
    records one a day, and so does this command when the database exists); without one it shows n/a
    and creates nothing.

    Compute: GPU-hours of the runs' busy time (the gaps between their events shorter than the status
    rule's stalled_after) this month and last (UTC), per run (median, max) and, with --target, until
    the target first held; priced at [cost] gpu_hour ("not set" without a price). Compute reads the
    event-file bytes written since the last command that did (the state database keeps where each file
    was left; without one, every file is read each time: tbhub db upgrade creates it).

    Examples:
      tbhub usage --config tbhub.toml
      tbhub usage --config tbhub.toml --target "eval/loss<0.5"
      tbhub usage --config tbhub.toml -e lora --csv > usage.csv
      tbhub usage /data/tb --json
    """
    one_format(as_json, as_csv)
    goal = parsed(target, parse_target, "--target")
    if storage_only and goal is not None:
        raise UsageError("--target needs compute: leave out --storage-only")
    cfg = config_from(config, logdir, path)
    now = time.time()
    with Services(cfg, create_state=False) as services:
        existed = note_state(services, "no growth history; nothing recorded; compute reads every event file "
                             "(tbhub db upgrade keeps it incremental)")
        inventories = scan_endpoints(services, endpoint)
        runs = [r for inv in inventories for r in inv.runs]
        rows = usage_report(services.state, runs, now, record=existed)
        compute: list[ComputeUsage] = []
        if not storage_only:
            search = None if goal is None else TargetSearch(goal)
            compute = compute_usage(services, now, names=endpoint, target=search, runs=runs)
    price, currency = cfg.cost.storage_per_gb_month, cfg.cost.currency
    records = usage_rows(rows, compute, price, currency, None if goal is None else str(goal))
    if as_json:
        print_json(records)
        return
    if as_csv:
        write_rows_csv(sys.stdout, records, [*usage_record(DatasetUsage("", "", 0, 0, 0), 0, ""), *COMPUTE_FIELDS])
        return
    by_key = {(c.endpoint, c.dataset): c for c in compute}
    this = compute[0].this_month if compute else ""
    last = compute[0].last_month if compute else ""
    columns = ["endpoint/dataset", "size", "runs", "events", f"{currency}/month", "7 days", "30 days",
               f"GPU-h {this}", f"{currency} {this}", f"GPU-h {last}", f"{currency} {last}", "GPU-h/run med/max"]
    if goal is not None:
        columns += [f"GPU-h to {goal} (runs)", f"{currency} to target"]
    width = 7 if storage_only else len(columns)  # --storage-only: the storage columns alone
    table = Table(*columns[:width])
    for u in rows:
        c = by_key.get((u.endpoint, u.dataset))
        cells: list[Text | str] = [
            name_text(f"{u.endpoint}/{u.dataset or '·'}"),
            format_size(u.size_bytes),
            str(u.runs),
            f"{u.events:,}",
            compute_text(u.monthly_cost(price), priced=False),  # "not set" without a storage price
            _growth(u.growth_7d),
            _growth(u.growth_30d),
        ]
        if c is None:
            cells += [""] * 5
        else:
            cells += [_hours(c.gpu_hours_this_month), compute_text(c.cost_this_month, priced=c.priced),
                      _hours(c.gpu_hours_last_month), compute_text(c.cost_last_month, priced=c.priced),
                      f"{_hours(c.run_gpu_hours_median)} / {_hours(c.run_gpu_hours_max)}"]
        if goal is not None:
            if c is None or not c.target_runs:
                cells += ["not reached", ""]
            else:
                cells += [f"{_hours(c.target_gpu_hours_median)} ({c.target_runs})",
                          compute_text(c.target_cost_median, priced=c.priced)]
        table.add_row(*cells[:width])
    total = sum(u.size_bytes for u in rows)
    table.add_section()
    priced = all(c.priced for c in compute)
    this_cost = [c.cost_this_month for c in compute]
    last_cost = [c.cost_last_month for c in compute]
    totals = [
        "total",
        format_size(total),
        str(sum(u.runs for u in rows)),
        f"{sum(u.events for u in rows):,}",
        compute_text(storage_cost(total, price), priced=False),
        "",
        "",
        _hours(sum(c.gpu_hours_this_month for c in compute)),
        compute_text(sum(x or 0.0 for x in this_cost) if priced else None, priced=priced),
        _hours(sum(c.gpu_hours_last_month for c in compute)),
        compute_text(sum(x or 0.0 for x in last_cost) if priced else None, priced=priced),
        "",
        *([""] * (2 if goal is not None else 0)),
    ]
    table.add_row(*totals[:width], style="bold")
    console = output_console()
    console.print(table)
    if price <= 0 and rows:
        console.print(f"storage cost: {STORAGE_PRICE_NOT_SET} (sizes are shown)", highlight=False, markup=False)
    if not priced:
        console.print(f"compute cost: {PRICE_NOT_SET} (GPU-hours are shown)", highlight=False, markup=False)
