"""``tbhub retention plan|apply`` and ``tbhub pin|unpin|pins``."""

from __future__ import annotations

import datetime as dt
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tbhub.app.retention import RetentionOutcome, apply_retention, plan_retention_now
from tbhub.app.services import Services
from tbhub.config import Config
from tbhub.core.names import shown
from tbhub.core.retention import RetentionDecision, RetentionPlan
from tbhub.core.units import format_age, format_size
from tbhub.errors import UsageError
from tbhub.interfaces.cli.formatting import CommandGroup
from tbhub.interfaces.cli.options import (
    ConfigOpt,
    DryRunOpt,
    JsonOpt,
    LogdirOpt,
    YesOpt,
    config_from,
    endpoint_option,
    output_console,
    print_json,
)
from tbhub.interfaces.cli.render import name_text

__all__ = ["retention_app"]

retention_app = CommandGroup(help="""Retention policies ([retention.ENDPOINT] in the config): plan and apply them.

Examples:
  tbhub retention plan --config tbhub.toml
  tbhub retention apply --config tbhub.toml --yes
""")
PolicyEndpointsOpt = Annotated[
    list[str] | None, endpoint_option("Only this endpoint (repeatable; default: all with a policy).")
]


def _decisions_table(title: str, decisions: tuple[RetentionDecision, ...], now_ns: int) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("endpoint", "dataset", "run", "size", "age", "rule", "why"):
        table.add_column(column, justify="right" if column in ("size", "age") else "left")
    for d in decisions:
        table.add_row(
            d.run.endpoint,
            name_text(d.run.dataset) if d.run.dataset else "·",
            name_text(d.run.run),
            format_size(d.run.size_bytes),
            format_age(d.run.age_seconds(now_ns)),
            name_text(d.rule),
            name_text(d.reason),
        )
    return table


def _show_plan(console: Console, plan: RetentionPlan, config: Config) -> None:
    now_ns = dt.datetime.now(dt.UTC).timestamp() * 1e9
    if not config.retention_policies():
        console.print("no retention policies configured ([retention.ENDPOINT] in the config)")
        return
    console.print(_decisions_table("would be removed", plan.delete, int(now_ns)))
    console.print(_decisions_table("kept", plan.keep, int(now_ns)))
    console.print(f"{len(plan.delete)} runs, {format_size(plan.bytes_freed)} would be freed", soft_wrap=True)
    for refusal in plan.refused:
        console.print(f"[bold red]refused:[/] {refusal}; nothing would be removed", soft_wrap=True)


@retention_app.command("plan")
def plan_command(
    config: ConfigOpt = None, logdir: LogdirOpt = None, endpoint: PolicyEndpointsOpt = None, as_json: JsonOpt = False
) -> None:
    """What the policies would remove now, which rule sends each run, what each keeps, and the space freed.

    Examples:
      tbhub retention plan --config tbhub.toml
      tbhub retention plan --config tbhub.toml -e lora --json
    """
    cfg = config_from(config, logdir, None)
    with Services(cfg) as services:
        outcome = apply_retention(services, names=endpoint, dry_run=True)
    if as_json:
        print_json(outcome.to_json())
        return
    _show_plan(output_console(), outcome.plan, cfg)


@retention_app.command("apply")
def apply_command(
    config: ConfigOpt = None,
    logdir: LogdirOpt = None,
    endpoint: PolicyEndpointsOpt = None,
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Carry out the policies (archive first where configured), one process at a time.

    Examples:
      tbhub retention apply --config tbhub.toml
      tbhub retention apply --config tbhub.toml -e lora --dry-run
      tbhub retention apply --config tbhub.toml --yes
    """
    cfg = config_from(config, logdir, None)
    console = output_console()
    with Services(cfg) as services:
        if not yes and not dry_run:
            if not sys.stdin.isatty():
                raise UsageError("refusing to apply retention without a terminal to confirm on: add --yes")
            preview = plan_retention_now(services, endpoint)
            _show_plan(console, preview, cfg)
            if preview.refused or not preview.delete:
                return
            answer = console.input(
                f"Remove {len(preview.delete)} runs ({format_size(preview.bytes_freed)})? [y/N] ", markup=False
            )
            if answer.strip().lower() not in ("y", "yes"):
                console.print("cancelled; nothing removed")
                return
        outcome = apply_retention(services, names=endpoint, dry_run=dry_run)
    _print_outcome(console, outcome, cfg, as_json)
    if outcome.busy or outcome.plan.refused or outcome.report.failed:
        raise typer.Exit(1)


def _print_outcome(console: Console, outcome: RetentionOutcome, cfg: Config, as_json: bool) -> None:
    if as_json:
        print_json(outcome.to_json())
        return
    if outcome.busy:
        console.print("another process is applying the retention policies now; nothing done")
        return
    if outcome.dry_run:
        _show_plan(console, outcome.plan, cfg)
        return
    for refusal in outcome.plan.refused:
        console.print(f"[bold red]refused:[/] {refusal}; nothing removed", soft_wrap=True)
    report = outcome.report
    for o in report.failed:
        console.print(Text.assemble(("  failed", "red"), f" {shown(f'{o.run.endpoint}/{o.run.relpath}')}: "
                                    f"{shown(o.error or '')}"), soft_wrap=True)
    console.print(
        f"removed {len(report.deleted)}, failed {len(report.failed)}, freed {format_size(report.bytes_freed)}"
    )
