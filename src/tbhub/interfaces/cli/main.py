"""The ``tbhub`` command: one sub-command per module, user errors as one line and exit code 2."""

from __future__ import annotations

import importlib
import sys
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from tbhub import __version__
from tbhub.errors import TbhubError
from tbhub.interfaces.cli.formatting import ClickException, CommandGroup, NoArgsIsHelpError, error_line

__all__ = ["COMMANDS", "HELP", "build_app", "main"]

HELP = """The self-hosted, always-on home for an ML team's TensorBoard logs.

Every command reads ./tbhub.toml (or --config FILE, or $TBHUB_CONFIG); a log root given as PATH or
--logdir NAME=PATH stands in for the config's endpoints. Shell completion: tbhub --install-completion
(or eval "$(_TBHUB_COMPLETE=source_bash tbhub)" in ~/.bashrc).

Examples:
  tbhub demo
  tbhub runs --config tbhub.toml --endpoint lora --older-than 7d
  tbhub serve --config tbhub.toml
  tbhub clean --config tbhub.toml --select old --dry-run
"""

#: Every sub-command: its name, the module defining it, and the attribute (a command function, or a
#: ``typer.Typer`` of sub-commands). ``main`` imports only the module of the command it runs: ``tbhub
#: serve`` then starts its TensorBoards without first loading every other command's libraries.
COMMANDS: dict[str, tuple[str, str]] = {
    "runs": ("runs", "runs_command"),
    "serve": ("serve", "serve_command"),
    "demo": ("demo", "demo_command"),
    "clean": ("clean", "clean_command"),
    "restore": ("archives", "restore_command"),
    "history": ("archives", "history_command"),
    "archives": ("archives", "archives_app"),
    "retention": ("retention", "retention_app"),
    "pin": ("annotations", "pin_command"),
    "unpin": ("annotations", "unpin_command"),
    "pins": ("annotations", "pins_command"),
    "usage": ("usage", "usage_command"),
    "trends": ("trends", "trends_command"),
    "compare": ("compare", "compare_command"),
    "alerts": ("alerts", "alerts_command"),
    "notify": ("alerts", "notify_app"),
    "db": ("db", "db_app"),
    "users": ("users", "users_app"),
    "tokens": ("users", "tokens_app"),
    "note": ("annotations", "note_command"),
    "tag": ("annotations", "tag_command"),
    "bookmarks": ("annotations", "bookmarks_app"),
}


def build_app(only: str | None = None) -> typer.Typer:
    """The ``tbhub`` command with every sub-command, or with ``only`` that one (same options, same help)."""
    app = CommandGroup(help=HELP, add_completion=True)
    app.callback()(_root)
    for name, (module, attr) in COMMANDS.items():
        if only is not None and name != only:
            continue
        target = getattr(importlib.import_module(f"tbhub.interfaces.cli.{module}"), attr)
        if isinstance(target, typer.Typer):
            app.add_typer(target, name=name)
        else:
            app.command(name)(target)
    return app


def __getattr__(name: str) -> Any:
    if name == "app":  # the whole command, for tools that inspect it
        return build_app()
    raise AttributeError(name)


def _version(value: bool) -> None:
    if value:
        print(f"tbhub {__version__}")
        raise typer.Exit()


def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """The self-hosted, always-on home for an ML team's TensorBoard logs."""


def _fail(message: str, code: int) -> NoReturn:
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[bold red]error:[/] {escape(message)}",
                                                                 markup=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point: every user mistake (``TbhubError``, or a usage error click finds) is one line and
    exit code 2, never a traceback or a block of usage text."""
    args = sys.argv[1:] if argv is None else argv
    # The first word that is not an option names the command; an unknown one gets the whole command's
    # error message and help.
    first = next((a for a in args if not a.startswith("-")), None)
    try:
        code = build_app(first if first in COMMANDS else None)(args=args, prog_name="tbhub", standalone_mode=False)
    except TbhubError as error:
        _fail(error.message, error.exit_code)
    except NoArgsIsHelpError as error:  # `tbhub notify`: the group's help
        error.show()
        sys.exit(error.exit_code)
    except ClickException as error:
        _fail(error_line(error), error.exit_code)
    except typer.Abort:
        _fail("aborted", 1)
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted")
        sys.exit(130)
    # Without standalone mode an Exit (typer.Exit(1), Ctrl-C's 130, --help's 0) comes back as its code.
    if isinstance(code, int) and code:
        sys.exit(code)
