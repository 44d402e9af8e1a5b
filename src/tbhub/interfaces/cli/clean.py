"""``tbhub clean``: pick runs from the table, confirm, archive (optionally) and delete them safely.

The flow itself (pins, active runs, limits, the lease, the digest of what was confirmed) is the one
the hub's clean takes: ``tbhub.app.cleanup``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from tbhub.app.cleanup import (
    CleanupAsk,
    CleanupReport,
    RunOutcome,
    archive_destination,
    check_archive_destination,
    clean_digest,
    finish_leftovers,
    plan_cleanup,
    run_cleanup,
)
from tbhub.app.inventory import scan_endpoints
from tbhub.app.services import Services, actor
from tbhub.config import Config
from tbhub.core.cleanup import CleanupPlan, RunFilter
from tbhub.core.models import RunSummary, run_path
from tbhub.core.names import shown
from tbhub.core.selection import SelectionError, parse_selection
from tbhub.core.units import format_age, format_size, parse_duration, parse_size
from tbhub.errors import UsageError
from tbhub.interfaces.cli.options import (
    ConfigOpt,
    DatasetOpt,
    DryRunOpt,
    JsonOpt,
    LogdirOpt,
    PathArg,
    YesOpt,
    config_from,
    endpoint_option,
    output_console,
    parsed,
    print_json,
)
from tbhub.interfaces.cli.progress import scan_progress
from tbhub.interfaces.cli.render import name_text, runs_table
from tbhub.interfaces.cli.runs import SortKey, sort_runs

__all__ = ["clean_command"]

PROMPT = "Select runs (e.g. 0 2 5, 0-5, all, old; Enter cancels): "


def _ask_selection(console: Console, runs: list[RunSummary], is_old: Any) -> list[int] | None:
    while True:
        try:
            text = console.input(PROMPT, markup=False)
        except EOFError:
            return None
        try:
            return parse_selection(text, len(runs), is_old)
        except SelectionError as error:
            console.print(Text(str(error), style="red"))


def _confirm(console: Console, plan: CleanupPlan, archive_to: Path | str | None) -> bool:
    verb = "Archive and delete" if archive_to else "Delete"
    try:
        answer = console.input(f"{verb} {len(plan.runs)} runs ({format_size(plan.total_bytes)})? [y/N] ", markup=False)
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def _describe_plan(console: Console, plan: CleanupPlan, config: Config, archive_to: Path | str | None,
                   now_ns: int) -> None:
    roots = ", ".join(f"{name} ({config.endpoints[name].logdir})" for name in plan.endpoints)
    console.print(
        f"[bold]{len(plan.runs)} runs[/], {format_size(plan.total_bytes)}, from {roots or 'nowhere'}"
        + (f"; archived to {archive_to} first" if archive_to else ""),
        soft_wrap=True,
    )
    if plan.runs:
        console.print(_plan_list(plan.runs, now_ns))
    for run, why in plan.skipped:
        console.print(f"  [yellow]skipped[/] {_name(run_path(run.endpoint, run.dataset, run.run))}: {_name(why)}",
                      soft_wrap=True)
    if plan.skipped:
        console.print("  (--force includes active runs, --include-pinned pinned ones)")


def _plan_list(runs: tuple[RunSummary, ...], now_ns: int) -> Table:
    """The runs a plan removes, one line each: endpoint/dataset/run, size, age (what the question means)."""
    grid = Table(box=None, show_header=False, padding=(0, 0, 0, 2))
    grid.add_column("run", overflow="fold")
    grid.add_column("size", justify="right")
    grid.add_column("age", justify="right")
    for run in runs:
        where = run_path(run.endpoint, run.dataset, run.run)
        grid.add_row(name_text(where), format_size(run.size_bytes), format_age(run.age_seconds(now_ns)))
    return grid


def _name(text: str) -> str:
    """A name (or a message quoting one) inside console markup: escaped, and no markup of its own."""
    return escape(shown(text))


def _report(console: Console, report: CleanupReport) -> None:
    for o in report.failed:
        console.print(f"  [red]failed[/] {_name(f'{o.run.endpoint}/{o.run.relpath}')}: {_name(o.error or '')}",
                      soft_wrap=True)
    console.print(
        f"deleted {len(report.deleted)}, failed {len(report.failed)}, freed {format_size(report.bytes_freed)}"
    )


def clean_command(
    path: PathArg = None,
    config: ConfigOpt = None,
    logdir: LogdirOpt = None,
    endpoint: Annotated[
        list[str] | None, endpoint_option("Only this endpoint (repeatable; default all).", "--trainer")
    ] = None,
    select: Annotated[
        str | None, typer.Option("--select", metavar="RUNS",
                                 help="Selection without asking: '0 2 5', '0-5', 'all', 'old'.")
    ] = None,
    older_than: Annotated[
        str | None, typer.Option("--older-than", metavar="AGE", help="Only runs older than this (30d).")
    ] = None,
    dataset: DatasetOpt = None,
    match: Annotated[
        str | None, typer.Option("--match", metavar="GLOB", help="Only runs whose dataset/run matches this glob.")
    ] = None,
    old_days: Annotated[
        float | None, typer.Option("--old-days", metavar="DAYS", help="Age in days that 'old' means (default 7).")
    ] = None,
    active_minutes: Annotated[
        float, typer.Option("--active-minutes", metavar="MINUTES", help="Runs written this recently are skipped.")
    ] = 10,
    force: Annotated[bool, typer.Option("--force", help="Also delete active runs.")] = False,
    include_pinned: Annotated[
        bool, typer.Option("--include-pinned", help="Also delete pinned runs (they are skipped otherwise).")
    ] = False,
    archive_to: Annotated[
        str | None,
        typer.Option("--archive-to", metavar="PLACE",
                     help="Archive each run here (a folder or s3://bucket/prefix) before deleting it."),
    ] = None,
    remove_links: Annotated[
        bool, typer.Option("--remove-links", help="For symlinked runs, remove only the link.")
    ] = False,
    max_delete: Annotated[
        int | None, typer.Option("--max-delete", metavar="N", help="Refuse plans with more runs than this.")
    ] = None,
    max_bytes: Annotated[
        str | None, typer.Option("--max-bytes", metavar="SIZE", help="Refuse plans larger than this (50GB).")
    ] = None,
    wait: Annotated[
        float, typer.Option("--wait", metavar="SECONDS",
                            help="Wait this long for another cleanup or retention run to finish (default: don't).")
    ] = 0.0,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete runs you pick from the table, after a summary and a confirmation; archive them first if asked.

    Pinned runs, and runs written in the last --active-minutes, are skipped; the endpoint's retention
    limits (max_delete, max_bytes) cap the plan; one cleanup or retention application runs at a time.
    Every run is named (endpoint/dataset/run, size, age) before the question and in --dry-run.

    Examples:
      tbhub clean --config tbhub.toml
      tbhub clean --config tbhub.toml -e lora --older-than 30d --select all --dry-run
      tbhub clean --config tbhub.toml -e lora --select old --archive-to /archive/tb --yes
    """
    cfg = config_from(config, logdir, path)
    dest = archive_destination(archive_to)
    place = str(dest) if dest is not None else None
    min_age = parsed(older_than, parse_duration, "--older-than")
    limit_bytes = parsed(max_bytes, parse_size, "--max-bytes")
    old_s = (old_days if old_days is not None else cfg.display.old_days) * 86400
    out = output_console()
    err = Console(stderr=True)
    interactive = sys.stdin.isatty()
    if select is None and not interactive and not dry_run:
        raise UsageError("no terminal to ask on: pass --select (and --yes to delete without asking)")
    ask = CleanupAsk(active_minutes, force=force, include_pinned=include_pinned, max_delete=max_delete,
                     max_bytes=limit_bytes)
    with Services(cfg) as services:
        check_archive_destination(services, dest)
        if not dry_run:
            for leftover in finish_leftovers(services, endpoint, place, who=actor(), wait_s=wait):
                err.print(f"finished an interrupted cleanup: removed {_name(leftover)}", soft_wrap=True)
        runs, now_ns = _listed(services, endpoint, RunFilter(min_age, dataset, match), err, as_json)
        if not as_json:
            out.print(runs_table(runs, now_ns=now_ns, fresh_days=cfg.display.fresh_days, old_days=old_s / 86400,
                                 active_minutes=active_minutes))

        def is_old(i: int) -> bool:
            return runs[i].age_seconds(now_ns) >= old_s

        if select is not None:
            try:
                chosen = parse_selection(select, len(runs), is_old)
            except SelectionError as error:
                raise UsageError(f"--select: {error}") from None
        elif interactive and not as_json:
            chosen = _ask_selection(out, runs, is_old)
        else:
            chosen = list(range(len(runs)))  # --dry-run without --select: show what "all" would do
        if not chosen:
            _finish(out, as_json, CleanupReport(dry_run=dry_run), "nothing selected; nothing deleted")
            return
        picked = [runs[i] for i in chosen]
        plan = plan_cleanup(services, picked, ask, now_ns=now_ns)
        if not as_json:
            _describe_plan(out, plan, cfg, dest, now_ns)
        if dry_run:
            report = CleanupReport(tuple(RunOutcome(r, "would delete") for r in plan.runs), plan.skipped, dry_run=True)
            _finish(out, as_json, report, "dry run: nothing was touched")
            return
        if not plan.runs:
            _finish(out, as_json, CleanupReport(skipped=plan.skipped), "nothing to delete")
            return
        if not yes:
            if not interactive:
                raise UsageError("refusing to delete without a terminal to confirm on: add --yes")
            if not _confirm(out, plan, dest):
                _finish(out, as_json, CleanupReport(skipped=plan.skipped), "cancelled; nothing deleted")
                return

        def plan_now() -> CleanupPlan:
            """The same runs from a fresh scan, under the lease: what is deleted is what was confirmed."""
            wanted = {(r.endpoint, r.relpath) for r in picked}
            fresh = [r for inv in scan_endpoints(services, sorted({r.endpoint for r in picked}))
                     for r in inv.runs if (r.endpoint, r.relpath) in wanted]
            return plan_cleanup(services, fresh, ask, now_ns=time.time_ns())

        _, report = run_cleanup(
            services, plan_now, who=actor(), archive_to=place, confirmed=clean_digest(plan, place),
            remove_links=remove_links, wait_s=wait, finish_in=endpoint,
            on_finished=lambda leftover: err.print(f"finished an interrupted cleanup: removed {_name(leftover)}",
                                                   soft_wrap=True),
            on_run=None if as_json else lambda run, o: _progress_line(out, run, o),
        )
    if as_json:
        print_json(report.to_json())
    else:
        _report(out, report)
    if report.failed:
        raise typer.Exit(1)


def _listed(services: Services, endpoint: list[str] | None, keep: RunFilter, err: Console,
            as_json: bool) -> tuple[list[RunSummary], int]:
    """The runs to choose from, oldest first, after a fresh scan."""
    with scan_progress(err, enabled=err.is_terminal and not as_json) as progress:
        inventories = scan_endpoints(services, endpoint, progress=progress)
    now_ns = time.time_ns()
    runs = keep.apply((r for inv in inventories for r in inv.runs), now_ns)
    return sort_runs(runs, SortKey.age), now_ns


def _progress_line(console: Console, run: RunSummary, outcome: RunOutcome) -> None:
    mark = "[green]deleted[/]" if outcome.outcome == "deleted" else "[red]failed[/]"
    where = f" (archive {_name(outcome.archive)})" if outcome.archive else ""
    console.print(f"  {mark} {_name(f'{run.endpoint}/{run.relpath}')}{where}", soft_wrap=True)


def _finish(console: Console, as_json: bool, report: CleanupReport, message: str) -> None:
    if as_json:
        print_json(report.to_json())
    else:
        console.print(message)
