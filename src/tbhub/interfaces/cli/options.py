"""Options every command shares: how to name endpoints, and output switches."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

from tbhub.config import Config, load_config, setting
from tbhub.errors import UsageError

if TYPE_CHECKING:  # serve imports this module, and must not pay for the state database's libraries
    from tbhub.app.services import Services

T = TypeVar("T")

__all__ = [
    "ConfigOpt",
    "CsvOpt",
    "DatasetOpt",
    "DryRunOpt",
    "EndpointsOpt",
    "JsonOpt",
    "LogdirOpt",
    "PathArg",
    "YesOpt",
    "checked_by",
    "config_from",
    "endpoint_option",
    "note_state",
    "one_format",
    "output_console",
    "parsed",
    "print_json",
    "services_from",
]

ConfigOpt = Annotated[
    str | None,
    typer.Option("--config", "-c", metavar="FILE", help="Config file (default: $TBHUB_CONFIG, else ./tbhub.toml).",
                 show_default=False),
]
LogdirOpt = Annotated[
    list[str] | None,
    typer.Option("--logdir", metavar="NAME=PATH",
                 help="An endpoint as NAME=PATH (repeatable); replaces the config's endpoints.", show_default=False),
]
PathArg = Annotated[
    str | None,
    typer.Argument(metavar="PATH", help="A log root to use as the only endpoint, named after its folder.",
                   show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")]
CsvOpt = Annotated[bool, typer.Option("--csv", help="Print CSV instead of a table.")]
DatasetOpt = Annotated[
    str | None, typer.Option("--dataset", metavar="GLOB", help="Only datasets matching this glob.")
]
# A destructive command's two switches (STYLE: show the plan, ask unless --yes).
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Show the plan; touch nothing.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


def endpoint_option(help: str, *aliases: str) -> Any:
    """``--endpoint/-e NAME`` (the README's name for it) with this command's ``help``; ``aliases`` (such as
    ``--trainer``) keep working but are not shown (``formatting.HIDDEN_ALIASES``)."""
    return typer.Option("--endpoint", "-e", *aliases, metavar="NAME", help=help, show_default=False)


#: ``--endpoint/-e`` of a read-only report over every endpoint's runs.
EndpointsOpt = Annotated[list[str] | None, endpoint_option("Only this endpoint (repeatable).")]


def one_format(as_json: bool, as_csv: bool) -> None:
    """``--json`` and ``--csv`` exclude each other."""
    if as_json and as_csv:
        raise UsageError("choose one of --json and --csv")


def parsed(value: str | None, parse: Callable[[str], T], flag: str) -> T | None:
    """``parse(value)`` for an option's text (``None`` when not given); a bad value is one line naming the flag."""
    if value is None:
        return None
    try:
        return parse(value)
    except ValueError as error:
        raise UsageError(f"{flag}: {error}") from None


def config_from(config: str | None, logdir: list[str] | None, path: str | None) -> Config:
    return load_config(config, logdir or (), path)


def checked_by(key: str) -> Callable[[typer.Context, typer.CallbackParam, Any], Any]:
    """A typer callback that runs the settings table's check of ``key`` on a flag standing in for it, so
    the flag and the config file refuse the same values with the same words (one line, exit 2)."""
    check = setting(key).check
    if check is None:
        raise KeyError(f"setting {key} has no check")

    def callback(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
        if value is None or ctx.resilient_parsing:
            return value
        try:
            return check(value)
        except ValueError as error:
            flag = param.opts[0] if param.opts else str(param.name)
            raise UsageError(f"{flag}: {error}") from None

    return callback


def note_state(services: Services, missing: str = "nothing recorded") -> bool:
    """Say on stderr which state database a read-only command read, or that there is none yet (then
    the command shows what it has without one: ``missing``). Returns whether it exists."""
    where = services.describe_state()
    exists = services.state_exists()
    text = f"state database: {where}" if exists else f"no state database at {where} yet: {missing}"
    Console(stderr=True, highlight=False, soft_wrap=True).print(text, markup=False, style="dim")
    return exists


def services_from(config: str | None, *, create_state: bool = True) -> Services:
    """The services of a command that names its endpoints only by ``--config``; a command that only
    lists passes ``create_state=False`` so that a missing state database is not created for it."""
    from tbhub.app.services import Services  # here, not above: serve must not pay for the database's libraries

    return Services(config_from(config, None, None), create_state=create_state)


def output_console() -> Console:
    """The console for a command's output: a file or pipe gets wide lines, not 80 squeezed columns."""
    if sys.stdout.isatty():
        return Console(highlight=False)
    return Console(width=160, highlight=False)


def print_json(data: Any, *, indent: int | None = 2) -> None:
    """A command's ``--json`` answer on stdout, one document ending in a newline."""
    json.dump(data, sys.stdout, indent=indent)
    sys.stdout.write("\n")
