"""``tbhub trends``: efficiency over time per endpoint and dataset (steps/s, samples/s, GPU-hours and
cost per run, time and cost to a target, the best value of a metric), each point with its runs."""

from __future__ import annotations

import datetime as dt
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from tbhub.app.services import Services
from tbhub.app.targets import TargetSearch
from tbhub.app.trends import trends_report
from tbhub.core.compare import parse_target
from tbhub.core.cost import PRICE_NOT_SET
from tbhub.core.trends import parse_metric
from tbhub.interfaces.cli.options import (
    ConfigOpt,
    CsvOpt,
    DatasetOpt,
    EndpointsOpt,
    JsonOpt,
    LogdirOpt,
    PathArg,
    config_from,
    one_format,
    output_console,
    parsed,
    print_json,
)
from tbhub.interfaces.cli.render import name_text
from tbhub.interfaces.cost_records import compute_text, trend_record, write_trends_csv

__all__ = ["trends_command"]


def _num(value: float | None, digits: str = ".3g") -> str:
    return "" if value is None else format(value, digits)


def _runs_cell(point: dict[str, Any]) -> str:
    """How many runs a point has, and how many of them are still training."""
    count, training = len(point["runs"]), point["training"]
    return f"{count} ({training} training)" if training else str(count)


def trends_command(
    path: PathArg = None,
    config: ConfigOpt = None,
    logdir: LogdirOpt = None,
    endpoint: EndpointsOpt = None,
    dataset: DatasetOpt = None,
    metric: Annotated[
        str | None,
        typer.Option("--metric", metavar="TAG[:min|max]",
                     help="The best value of this tag per point (lowest by default; :max for accuracy)."),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option("--target", metavar="GOAL",
                     help='Busy time and cost until a GOAL like "eval/loss<0.5" first held.'),
    ] = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
) -> None:
    """Efficiency trends per endpoint and dataset, by ISO week (UTC), or by run when a dataset has few.

    Each point: steps per second of busy time, samples per second (where the trainer logged
    train/train_samples_per_second), GPU-hours and cost per run, busy hours and cost to reach --target,
    and the best --metric; medians over the point's runs (the metric: their best), with the runs listed.
    GPU-hours and cost per run count the runs that stopped: a run still training has not spent its cost yet.

    Examples:
      tbhub trends --config tbhub.toml
      tbhub trends --config tbhub.toml --dataset 'claims-*' --metric eval/loss --target "eval/loss<0.5"
      tbhub trends --config tbhub.toml --metric eval/accuracy:max --json
    """
    one_format(as_json, as_csv)
    spec = parsed(metric, parse_metric, "--metric")
    goal = parsed(target, parse_target, "--target")
    cfg = config_from(config, logdir, path)
    with Services(cfg) as services:
        search = None if goal is None else TargetSearch(goal)
        trends = trends_report(services, names=endpoint, dataset_glob=dataset, metric=spec, target=search)
    currency = cfg.cost.currency
    records = [trend_record(t, metric=None if spec is None else str(spec), target=None if goal is None else str(goal),
                            currency=currency) for t in trends]
    if as_json:
        print_json(records)
        return
    if as_csv:
        write_trends_csv(sys.stdout, records)
        return
    console = output_console()
    if not records:
        console.print("No runs with events yet: a trend needs runs that logged something.", markup=False)
        return
    priced = cfg.cost.gpu_hour is not None or any(
        e.gpu_hour is not None or any(d.gpu_hour is not None for d in e.datasets.values())
        for e in cfg.cost.endpoints.values())
    for t in records:
        columns = ["week" if t["by"] == "week" else "run", "runs", "steps/s", "samples/s", "GPU-h/run",
                   f"{currency}/run"]
        if goal is not None:
            columns += [f"hours to {goal}", f"{currency} to target"]
        if spec is not None:
            columns.append(f"best {spec}")
        table = Table(*columns, title=f"{t['endpoint']}/{t['dataset'] or '·'}", title_justify="left")
        for p in t["points"]:
            training = p["training"] == len(p["runs"])  # its spend so far is not a run's cost yet
            cost = compute_text(p["cost"], priced=p["cost"] is not None or priced)
            cells: list[Any] = [name_text(p["label"]), _runs_cell(p), _num(p["steps_per_s"]),
                                _num(p["samples_per_s"]), "training" if training else _num(p["gpu_hours"]),
                                "training" if training else cost]
            if goal is not None:
                cells += [_num(p["target_hours"]), compute_text(p["target_cost"])]
            if spec is not None:
                cells.append(_num(p["metric"], ".4g"))
            table.add_row(*cells)
        console.print(table)
    if not priced:
        console.print(f"cost: {PRICE_NOT_SET}", markup=False)
    first = min((p["at"] for t in records for p in t["points"]), default=None)
    if first is not None:
        since = dt.datetime.fromtimestamp(first, tz=dt.UTC).strftime("%Y-%m-%d")
        console.print(f"{sum(len(t['points']) for t in records)} points since {since} (UTC)", markup=False, style="dim")
