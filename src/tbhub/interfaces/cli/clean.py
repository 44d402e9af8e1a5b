"""``tbhub clean``: pick runs from the table, confirm, archive (optionally) and delete them safely.

Also ``tbhub restore``, ``tbhub archives list`` and ``tbhub history``.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from tbhub.adapters.storage.archive import list_archives, restore_archive
from tbhub.adapters.storage.objectstore import ObjectLogStore
from tbhub.app.cleanup import (
    CleanupReport,
    RunOutcome,
    archive_destination,
    check_archive_destination,
    execute_plan,
    finish_interrupted,
)
from tbhub.app.hub import log_store, scan_endpoints, state_store
from tbhub.config import Config
from tbhub.core.cleanup import CleanupLimits, CleanupPlan, PlanRefused, RunFilter, build_plan
from tbhub.core.models import RunSummary
from tbhub.core.names import shown
from tbhub.core.selection import SelectionError, parse_selection
from tbhub.core.units import format_size, parse_duration, parse_size
from tbhub.errors import UsageError
from tbhub.interfaces.cli.options import ConfigOpt, JsonOpt, LogdirOpt, PathArg, config_from, output_console
from tbhub.interfaces.cli.progress import scan_progress
from tbhub.interfaces.cli.render import name_text, runs_table
from tbhub.interfaces.cli.runs import SortKey, sort_runs

__all__ = ["archives_app", "clean_command", "history_command", "restore_command"]

PROMPT = "Select runs (e.g. 0 2 5, 0-5, all, old; Enter cancels): "


def _parse_opt(value: str | None, parse: Any, flag: str) -> Any:
    if value is None:
        return None
    try:
        return parse(value)
    except ValueError as error:
        raise UsageError(f"{flag}: {error}") from None


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


def _describe_plan(console: Console, plan: CleanupPlan, config: Config, archive_to: Path | str | None) -> None:
    roots = ", ".join(f"{name} ({config.endpoints[name].logdir})" for name in plan.endpoints)
    console.print(
        f"[bold]{len(plan.runs)} runs[/], {format_size(plan.total_bytes)}, from {roots or 'nowhere'}"
        + (f"; archived to {archive_to} first" if archive_to else ""),
        soft_wrap=True,
    )
    for run, why in plan.skipped:
        console.print(f"  [yellow]skipped[/] {_name(f'{run.endpoint}/{run.dataset}/{run.run}')}: {_name(why)}",
                      soft_wrap=True)


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
        list[str] | None,
        typer.Option("--endpoint", "--trainer", "-e", help="Only this endpoint (repeatable; default all)."),
    ] = None,
    select: Annotated[
        str | None, typer.Option("--select", help="Selection without asking: '0 2 5', '0-5', 'all', 'old'.")
    ] = None,
    older_than: Annotated[str | None, typer.Option("--older-than", help="Only runs older than this (30d).")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="Only datasets matching this glob.")] = None,
    match: Annotated[str | None, typer.Option("--match", help="Only runs whose dataset/run matches this glob.")] = None,
    old_days: Annotated[
        float | None, typer.Option("--old-days", help="Age in days that 'old' means (default 7).")
    ] = None,
    active_minutes: Annotated[
        float, typer.Option("--active-minutes", help="Runs written this recently are skipped.")
    ] = 10,
    force: Annotated[bool, typer.Option("--force", help="Also delete active runs.")] = False,
    archive_to: Annotated[
        str | None,
        typer.Option("--archive-to", help="Archive each run here (a folder or s3://bucket/prefix) before deleting it."),
    ] = None,
    remove_links: Annotated[
        bool, typer.Option("--remove-links", help="For symlinked runs, remove only the link.")
    ] = False,
    max_delete: Annotated[
        int | None, typer.Option("--max-delete", help="Refuse plans with more runs than this.")
    ] = None,
    max_bytes: Annotated[str | None, typer.Option("--max-bytes", help="Refuse plans larger than this (50GB).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan; touch nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete runs you pick from the table, after a summary and a confirmation; archive them first if asked."""
    cfg = config_from(config, logdir, path)
    dest = archive_destination(archive_to)
    check_archive_destination(cfg, dest)
    min_age = _parse_opt(older_than, parse_duration, "--older-than")
    limit_bytes = _parse_opt(max_bytes, parse_size, "--max-bytes")
    old_s = (old_days if old_days is not None else cfg.display.old_days) * 86400
    out = output_console()
    err = Console(stderr=True)
    interactive = sys.stdin.isatty()
    if select is None and not interactive and not dry_run:
        raise UsageError("no terminal to ask on: pass --select (and --yes to delete without asking)")
    if not dry_run:
        for leftover in finish_interrupted(cfg, endpoint, dest):
            err.print(f"finished an interrupted cleanup: removed {leftover}", soft_wrap=True)
    with scan_progress(err, enabled=err.is_terminal and not as_json) as progress:
        inventories = scan_endpoints(cfg, endpoint, progress=progress)
    now_ns = time.time_ns()
    runs = RunFilter(min_age, dataset, match).apply((r for inv in inventories for r in inv.runs), now_ns)
    runs = sort_runs(runs, SortKey.age)
    if not as_json:
        out.print(
            runs_table(
                runs,
                now_ns=now_ns,
                fresh_days=cfg.display.fresh_days,
                old_days=old_s / 86400,
                active_minutes=active_minutes,
            )
        )

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
    try:
        plan = build_plan(
            [runs[i] for i in chosen],
            now_ns=now_ns,
            active_minutes=active_minutes,
            force=force,
            limits=CleanupLimits(max_delete, limit_bytes),
        )
    except PlanRefused as error:
        raise UsageError(f"{error}; nothing deleted") from None
    if not as_json:
        _describe_plan(out, plan, cfg, dest)
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
    state = state_store(cfg)
    try:
        report = execute_plan(
            plan,
            cfg,
            state,
            archive_to=dest,
            remove_links=remove_links,
            on_run=None if as_json else lambda run, o: _progress_line(out, run, o),
        )
    finally:
        state.dispose()
    if as_json:
        json.dump(report.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _report(out, report)
    if report.failed:
        raise typer.Exit(1)


def _progress_line(console: Console, run: RunSummary, outcome: RunOutcome) -> None:
    mark = "[green]deleted[/]" if outcome.outcome == "deleted" else "[red]failed[/]"
    where = f" (archive {_name(outcome.archive)})" if outcome.archive else ""
    console.print(f"  {mark} {_name(f'{run.endpoint}/{run.relpath}')}{where}", soft_wrap=True)


def _finish(console: Console, as_json: bool, report: CleanupReport, message: str) -> None:
    if as_json:
        json.dump(report.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        console.print(message)


def restore_command(
    archive: Annotated[str, typer.Argument(help="An archive written by clean --archive-to (a file or an s3:// URL).")],
    config: ConfigOpt = None,
    logdir: LogdirOpt = None,
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", "-e", help="Restore into this endpoint's log root.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Put an archived run back, byte-identical with its mtimes; never overwrites an existing run."""
    from tbhub.adapters.storage.archive import verify_archive

    cfg = config_from(config, logdir, None)
    source = archive_destination(archive)
    assert source is not None
    if isinstance(source, Path) and not source.is_file():
        raise UsageError(f"archive {archive} does not exist")
    options = _archive_options(cfg, endpoint) if isinstance(source, str) else None
    manifest = verify_archive(source, storage_options=options)
    name = endpoint or manifest.endpoint
    (spec,) = cfg.endpoint_specs([name])
    store = log_store(spec, cfg)
    root = store if isinstance(store, ObjectLogStore) else Path(spec.logdir)
    target = restore_archive(source, root, storage_options=options)
    if as_json:
        json.dump({"archive": str(source), "endpoint": name, "path": str(target)}, sys.stdout)
        sys.stdout.write("\n")
    else:
        Console().print(f"restored {_name(f'{manifest.dataset}/{manifest.run}')} into {name}: {_name(str(target))}",
                        soft_wrap=True)


def _archive_options(cfg: Config, endpoint: str | None) -> dict[str, Any]:
    """Storage options for an archive URL: the endpoint's when one is named, else ``[s3]``."""
    return cfg.storage_options(endpoint)


archives_app = typer.Typer(help="Archives written by clean --archive-to.", no_args_is_help=True)


@archives_app.command("list")
def archives_list(
    dest: Annotated[str, typer.Argument(help="The archive folder or s3:// URL (what --archive-to named).")],
    config: ConfigOpt = None,
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", "-e", help="Reach an s3:// DEST with this endpoint's [s3] settings.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the archives in DEST."""
    where = archive_destination(dest)
    assert where is not None
    if isinstance(where, Path):
        if not where.is_dir():
            raise UsageError(f"archive folder {dest} does not exist")
        infos = list_archives(where)
    else:
        infos = list_archives(where, storage_options=_archive_options(config_from(config, None, None), endpoint))
    if as_json:
        json.dump(
            [
                {
                    "archive": str(i.archive),
                    "endpoint": i.manifest.endpoint,
                    "dataset": i.manifest.dataset,
                    "run": i.manifest.run,
                    "created_at": i.manifest.created_at,
                    "size_bytes": i.size_bytes,
                    "files": len(i.manifest.files),
                }
                for i in infos
            ],
            sys.stdout,
            indent=2,
        )
        sys.stdout.write("\n")
        return
    table = Table("endpoint", "dataset", "run", "created", "size", "archive")
    for i in infos:
        table.add_row(
            i.manifest.endpoint,
            name_text(i.manifest.dataset),
            name_text(i.manifest.run),
            i.manifest.created_at,
            format_size(i.size_bytes),
            str(i.archive),
        )
    output_console().print(table)


def history_command(
    config: ConfigOpt = None,
    limit: Annotated[int, typer.Option("--limit", help="How many entries, newest first.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """What manage commands deleted: when, who, what, how much, and where the archive went."""
    cfg = config_from(config, None, None)
    state = state_store(cfg)
    try:
        records = state.deletions(limit=limit)
    finally:
        state.dispose()
    if as_json:
        json.dump([{f: getattr(r, f) for f in r.__slots__} for r in records], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    table = Table("when", "who", "command", "run", "size", "outcome", "archive")
    for r in records:
        when = dt.datetime.fromtimestamp(r.at, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        outcome = r.outcome if not r.error else f"{r.outcome}: {r.error}"
        table.add_row(
            when, name_text(r.actor), r.command, name_text(f"{r.endpoint}/{r.relpath}"), format_size(r.size_bytes),
            name_text(outcome), name_text(r.archive or ""),
        )
    output_console().print(table)
