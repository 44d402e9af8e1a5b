"""``tbhub compare``: one row per run with the figures of chosen tags, the best run, efficiency."""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Sequence
from typing import Annotated, Any, TextIO

import typer
from rich.table import Table

from tbhub.core.compare import CompareRow, SortSpec, best_index, parse_sort, parse_target, sort_rows
from tbhub.core.scalars import TagSummary
from tbhub.core.units import format_age
from tbhub.errors import UsageError
from tbhub.hub import compare_runs, state_store
from tbhub.interfaces.cli.options import ConfigOpt, JsonOpt, LogdirOpt, PathArg, config_from, output_console

__all__ = ["compare_command", "compare_record", "write_compare_csv"]


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
        "dataset": run.dataset,
        "run": run.run,
        "relpath": run.relpath,
        "best": best,
        "first_step": run.first_step,
        "last_step": run.last_step,
        "duration_s": None if row.duration_s is None else round(row.duration_s, 3),
        "steps_per_s": None if row.steps_per_s is None else round(row.steps_per_s, 4),
        "target_step": row.target.step if row.target else None,
        "target_seconds": None if row.target is None or row.target.seconds is None else round(row.target.seconds, 3),
        "tags": {t: tag_record(row.tags[t]) for t in tags if t in row.tags},
    }


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
    endpoint: Annotated[list[str] | None, typer.Option("--endpoint", "-e", help="Only this endpoint.")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="Only datasets matching this glob.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="A scalar tag to compare (repeatable).")] = None,
    sort: Annotated[str | None, typer.Option("--sort", help="TAG:min, TAG:max or TAG:last; best first.")] = None,
    target: Annotated[
        str | None, typer.Option("--target", help='When a run first reached e.g. "eval/loss<0.5".')
    ] = None,
    as_json: JsonOpt = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV.")] = False,
) -> None:
    """Compare runs: last, min, max and recent mean of tags, the best run, duration, steps/s, time to target."""
    if as_json and as_csv:
        raise UsageError("choose one of --json and --csv")
    tags = list(tag or [])
    if not tags:
        raise UsageError("name at least one --tag to compare (e.g. --tag eval/loss)")
    try:
        spec: SortSpec | None = parse_sort(sort) if sort else None
        goal = parse_target(target) if target else None
    except ValueError as error:
        raise UsageError(str(error)) from None
    if spec is not None and spec.tag not in tags:
        tags.append(spec.tag)
    cfg = config_from(config, logdir, path)
    state = state_store(cfg)
    try:
        rows = compare_runs(cfg, state, names=endpoint, dataset_glob=dataset, tags=tags, target=goal)
    finally:
        state.dispose()
    rows = sort_rows(rows, spec)
    best = best_index(rows, spec)
    records = [compare_record(r, tags, i == best) for i, r in enumerate(rows)]
    if as_json:
        json.dump(records, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    if as_csv:
        write_compare_csv(sys.stdout, records, tags)
        return
    table = Table(
        title=f"{len(rows)} runs" + (f", best by {spec.tag}:{spec.how}" if spec else ""), title_justify="left"
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
        cells = [row.run.endpoint, row.run.dataset or "·", row.run.run]
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
