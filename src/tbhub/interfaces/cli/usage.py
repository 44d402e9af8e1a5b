"""``tbhub usage``: bytes, runs and events per endpoint and dataset, growth, and monthly cost."""

from __future__ import annotations

import csv
import json
import sys
import time
from typing import Annotated

from rich.table import Table

from tbhub.app.inventory import scan_endpoints
from tbhub.app.services import Services
from tbhub.app.usage import usage_report
from tbhub.core.units import format_size
from tbhub.core.usage import DatasetUsage
from tbhub.interfaces.cli.options import (
    ConfigOpt,
    CsvOpt,
    JsonOpt,
    LogdirOpt,
    PathArg,
    config_from,
    endpoint_option,
    note_state,
    one_format,
    output_console,
)
from tbhub.interfaces.cli.render import name_text
from tbhub.interfaces.records import cost_text, usage_record

__all__ = ["usage_command"]


def _growth(value: int | None) -> str:
    if value is None:
        return "n/a"
    return ("+" if value >= 0 else "-") + format_size(abs(value))


def usage_command(
    path: PathArg = None,
    config: ConfigOpt = None,
    logdir: LogdirOpt = None,
    endpoint: Annotated[list[str] | None, endpoint_option("Only this endpoint (repeatable).")] = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
) -> None:
    """Storage per endpoint and dataset: bytes, runs, events, growth over 7 and 30 days, monthly cost.

    Growth comes from the daily snapshots in the state database (tbhub serve records one a day, and so
    does this command when the database exists); without one it shows n/a and creates nothing.

    Examples:
      tbhub usage --config tbhub.toml
      tbhub usage --config tbhub.toml -e lora --csv > usage.csv
      tbhub usage /data/tb --json
    """
    one_format(as_json, as_csv)
    cfg = config_from(config, logdir, path)
    with Services(cfg, create_state=False) as services:
        existed = note_state(services, "no growth history; nothing recorded")
        inventories = scan_endpoints(services, endpoint)
        runs = [r for inv in inventories for r in inv.runs]
        rows = usage_report(services.state, runs, time.time(), record=existed)
    price, currency = cfg.cost.storage_per_gb_month, cfg.cost.currency
    records = [usage_record(u, price, currency) for u in rows]
    if as_json:
        json.dump(records, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    if as_csv:
        fields = list(records[0]) if records else list(usage_record(DatasetUsage("", "", 0, 0, 0), 0, "").keys())
        writer = csv.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        return
    table = Table("endpoint/dataset", "size", "runs", "events", f"{currency}/month", "7 days", "30 days")
    for u in rows:
        table.add_row(
            name_text(f"{u.endpoint}/{u.dataset or '·'}"),
            format_size(u.size_bytes),
            str(u.runs),
            f"{u.events:,}",
            cost_text(u.monthly_cost(price)),
            _growth(u.growth_7d),
            _growth(u.growth_30d),
        )
    total = sum(u.size_bytes for u in rows)
    table.add_section()
    table.add_row(
        "total",
        format_size(total),
        str(sum(u.runs for u in rows)),
        f"{sum(u.events for u in rows):,}",
        cost_text(total / 1e9 * price),
        "",
        "",
        style="bold",
    )
    output_console().print(table)
