"""``tbhub compare``: one row per run with the figures of chosen tags, the best run, efficiency."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from tbhub.app.compare import compare_runs
from tbhub.app.services import Services
from tbhub.core.compare import SortSpec, best_index, parse_sort, parse_target, sort_rows
from tbhub.core.units import format_age
from tbhub.errors import UsageError
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
from tbhub.interfaces.records import compare_record, write_compare_csv

__all__ = ["compare_command"]


def _fmt(value: float | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return f"{value:.4g}"


def compare_command(
    path: PathArg = None,
    config: ConfigOpt = None,
    logdir: LogdirOpt = None,
    endpoint: EndpointsOpt = None,
    dataset: DatasetOpt = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", "-t", metavar="TAG", help="A scalar tag to compare (repeatable).")
    ] = None,
    sort: Annotated[
        str | None, typer.Option("--sort", metavar="TAG:HOW", help="TAG:min, TAG:max or TAG:last; best first.")
    ] = None,
    target: Annotated[
        str | None,
        typer.Option("--target", metavar="GOAL", help='When each run first reached a GOAL like "eval/loss<0.5".'),
    ] = None,
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
) -> None:
    """Compare runs: last, min, max and recent mean of tags, the best run, duration, steps/s, time to target.

    Examples:
      tbhub compare --config tbhub.toml --tag eval/loss --sort eval/loss:min
      tbhub compare --config tbhub.toml -e lora --dataset 'alpaca*' --tag eval/loss --target 'eval/loss<0.5'
      tbhub compare --config tbhub.toml --tag train/loss --tag eval/accuracy --json
    """
    one_format(as_json, as_csv)
    tags = list(tag or [])
    if not tags:
        raise UsageError("name at least one --tag to compare (e.g. --tag eval/loss)")
    spec: SortSpec | None = parsed(sort, parse_sort, "--sort")
    goal = parsed(target, parse_target, "--target")
    if spec is not None and not spec.column and spec.tag not in tags:
        tags.append(spec.tag)
    cfg = config_from(config, logdir, path)
    with Services(cfg) as services:
        rows = compare_runs(services, names=endpoint, dataset_glob=dataset, tags=tags, target=goal)
    rows = sort_rows(rows, spec)
    best = best_index(rows, spec)
    records = [compare_record(r, tags, i == best) for i, r in enumerate(rows)]
    if as_json:
        print_json(records)
        return
    if as_csv:
        write_compare_csv(sys.stdout, records, tags)
        return
    table = Table(
        title=f"{len(rows)} runs" + (f", best by {spec.tag}:{spec.how}" if spec and not spec.column else ""),
        title_justify="left",
    )
    for column in ("endpoint", "dataset", "run"):
        table.add_column(column)
    for t in tags:
        table.add_column(f"{t} last", justify="right")
        table.add_column(f"{t} min@step", justify="right")
        table.add_column(f"{t} max@step", justify="right")
    table.add_column("duration", justify="right")
    table.add_column("steps/s", justify="right")
    if goal:
        table.add_column(f"{goal} at", justify="right")
    for i, (row, record) in enumerate(zip(rows, records, strict=True)):
        cells: list[str | Text] = [
            row.run.endpoint, name_text(row.run.dataset) if row.run.dataset else "·", name_text(row.run.run)
        ]
        for t in tags:
            fig = record["tags"].get(t)
            if fig is None:
                cells += ["", "", ""]
                continue
            cells += [
                _fmt(fig["last"]),
                f"{_fmt(fig['min'])}@{fig['min_step']}" if fig["min"] is not None else "",
                f"{_fmt(fig['max'])}@{fig['max_step']}" if fig["max"] is not None else "",
            ]
        cells += [
            "" if row.duration_s is None else format_age(row.duration_s),
            "" if row.steps_per_s is None else f"{row.steps_per_s:.2f}",
        ]
        if goal:
            cells.append(
                ""
                if row.target is None
                else f"step {row.target.step}"
                + ("" if row.target.seconds is None else f" ({format_age(row.target.seconds)})")
            )
        table.add_row(*cells, style="bold green" if i == best else None)
    output_console().print(table)
