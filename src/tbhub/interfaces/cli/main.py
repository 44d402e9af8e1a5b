"""The ``tbhub`` command: one sub-command per module, user errors as one line and exit code 2."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer
from rich.console import Console

from tbhub import __version__
from tbhub.errors import TbhubError

__all__ = ["COMMANDS", "build_app", "main"]

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
    app = typer.Typer(
        name="tbhub",
        help="The self-hosted, always-on home for an ML team's TensorBoard logs.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
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


def main(argv: list[str] | None = None) -> None:
    """Entry point: user mistakes (``TbhubError``) print one line, never a traceback."""
    args = sys.argv[1:] if argv is None else argv
    # The first word that is not an option names the command; an unknown one gets the whole command's
    # error message and help.
    first = next((a for a in args if not a.startswith("-")), None)
    try:
        build_app(first if first in COMMANDS else None)(args=args, prog_name="tbhub")
    except TbhubError as error:
        Console(stderr=True, highlight=False, soft_wrap=True).print(f"[bold red]error:[/] {error.message}",
                                                                     markup=True)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted")
        sys.exit(130)
