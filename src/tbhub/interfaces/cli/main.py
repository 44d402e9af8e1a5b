"""The ``tbhub`` command: one sub-command per module, user errors as one line and exit code 2."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from tbhub import __version__
from tbhub.errors import TbhubError
from tbhub.interfaces.cli.alerts import alerts_command, notify_app
from tbhub.interfaces.cli.clean import archives_app, clean_command, history_command, restore_command
from tbhub.interfaces.cli.compare import compare_command
from tbhub.interfaces.cli.db import db_app
from tbhub.interfaces.cli.demo import demo_command
from tbhub.interfaces.cli.retention import pin_command, pins_command, retention_app, unpin_command
from tbhub.interfaces.cli.runs import runs_command
from tbhub.interfaces.cli.serve import serve_command
from tbhub.interfaces.cli.usage import usage_command
from tbhub.interfaces.cli.users import bookmarks_app, note_command, tag_command, tokens_app, users_app

__all__ = ["app", "main"]

app = typer.Typer(
    name="tbhub",
    help="The self-hosted, always-on home for an ML team's TensorBoard logs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.command("runs")(runs_command)
app.command("serve")(serve_command)
app.command("demo")(demo_command)
app.command("clean")(clean_command)
app.command("restore")(restore_command)
app.command("history")(history_command)
app.add_typer(archives_app, name="archives")
app.add_typer(retention_app, name="retention")
app.command("pin")(pin_command)
app.command("unpin")(unpin_command)
app.command("pins")(pins_command)
app.command("usage")(usage_command)
app.command("compare")(compare_command)
app.command("alerts")(alerts_command)
app.add_typer(notify_app, name="notify")
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.command("note")(note_command)
app.command("tag")(tag_command)
app.add_typer(bookmarks_app, name="bookmarks")


def _version(value: bool) -> None:
    if value:
        print(f"tbhub {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """The self-hosted, always-on home for an ML team's TensorBoard logs."""


def main(argv: list[str] | None = None) -> None:
    """Entry point: user mistakes (``TbhubError``) print one line, never a traceback."""
    try:
        app(args=argv, prog_name="tbhub")
    except TbhubError as error:
        Console(stderr=True, highlight=False, soft_wrap=True).print(f"[bold red]error:[/] {error.message}",
                                                                     markup=True)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted")
        sys.exit(130)
