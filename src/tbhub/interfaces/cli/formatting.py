"""How every ``tbhub`` command shows its help and its usage errors.

typer (0.29) renders a parameter's Python type as its metavar (``path <str>``, ``--logdir
<list[str]>``), braces required arguments in the usage line (``{ARCHIVE}``), cuts the command list's
summaries with "..." and rewraps an example into prose. The command classes here render help the
way people read it:

- usage ``tbhub restore [OPTIONS] ARCHIVE``; every argument and option shows a human metavar (``PATH``,
  ``NAME=PATH``, ``FILE``), the one given with ``metavar=`` or else the parameter's name in capitals;
- the command list shows each command's whole first paragraph;
- an ``Examples:`` paragraph of the docstring is printed verbatim, as its own section after the
  options (``examples_of`` reads it back for the tests and the CLI reference);
- an alias in ``HIDDEN_ALIASES`` (``--trainer``) still works but is not shown.

``error_line`` turns click's usage errors (unknown option, missing argument, a value typer or pydantic
refused) into one line. The private ``typer._click`` imports live here only: typer is pinned.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from typing import Any

import typer
from typer._click import Context, HelpFormatter, Parameter
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

__all__ = [
    "HIDDEN_ALIASES",
    "ClickException",
    "CommandGroup",
    "NoArgsIsHelpError",
    "TbhubCommand",
    "TbhubGroup",
    "error_line",
    "examples_of",
    "summary_of",
]

#: Option names that keep working but are not shown: older spellings of a flag.
HIDDEN_ALIASES = frozenset({"--trainer"})
EXAMPLES = "Examples:"


def _split_help(text: str | None) -> tuple[str, list[str]]:
    """The help text without its ``Examples:`` paragraph, and that paragraph's lines (dedented)."""
    if not text:
        return "", []
    lines = inspect.cleandoc(text).partition("\f")[0].splitlines()
    try:
        start = lines.index(EXAMPLES)
    except ValueError:
        return "\n".join(lines), []
    end = start + 1
    while end < len(lines) and lines[end].strip():
        end += 1
    examples = [line.strip() for line in lines[start + 1:end]]
    body = "\n".join(lines[:start] + lines[end + 1:]).strip()
    return body, examples


def examples_of(command: Any) -> list[str]:
    """The example command lines in ``command``'s help (a click command)."""
    return _split_help(getattr(command, "help", None))[1]


def summary_of(command: Any) -> str:
    """``command``'s first paragraph on one line: what the command list shows."""
    body = _split_help(getattr(command, "help", None))[0]
    return " ".join(body.split("\n\n")[0].split())


def _metavar(param: Parameter) -> str:
    """The metavar ``param`` shows: its own, else its name in capitals (``...`` when repeatable)."""
    if param.metavar:
        return param.metavar
    name = (param.name or "value").upper()
    return name + ("..." if param.nargs != 1 and isinstance(param, TyperArgument) else "")


def _records(command: TyperCommand | TyperGroup, ctx: Context) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    args: list[tuple[str, str]] = []
    opts: list[tuple[str, str]] = []
    for param in command.get_params(ctx):
        if isinstance(param, TyperArgument):
            args.append((_metavar(param), param.help or ""))
        elif isinstance(param, TyperOption) and not param.hidden:
            shown = copy.copy(param)
            shown.opts = [o for o in param.opts if o not in HIDDEN_ALIASES]
            if not (param.is_flag or param.count):
                shown.metavar = _metavar(param)
            record = shown.get_help_record(ctx)
            if record is not None:
                opts.append(record)
    return args, opts


def _write_options(command: TyperCommand | TyperGroup, ctx: Context, formatter: HelpFormatter) -> None:
    args, opts = _records(command, ctx)
    if args:
        with formatter.section("Arguments"):
            formatter.write_dl(args)
    if opts:
        with formatter.section("Options"):
            formatter.write_dl(opts)


def _write_text(command: TyperCommand | TyperGroup, formatter: HelpFormatter) -> None:
    body = _split_help(command.help)[0]
    if body:
        formatter.write_paragraph()
        with formatter.indentation():
            formatter.write_text(body)


def _write_examples(command: TyperCommand | TyperGroup, formatter: HelpFormatter) -> None:
    examples = examples_of(command)
    if examples:
        with formatter.section("Examples"):
            for line in examples:  # verbatim: a command line must not be rewrapped
                formatter.write(f"{'':>{formatter.current_indent}}{line}\n")


def _usage_pieces(command: TyperCommand | TyperGroup, ctx: Context) -> list[str]:
    pieces = [command.options_metavar] if command.options_metavar else []
    for param in command.get_params(ctx):
        if isinstance(param, TyperArgument):
            name = _metavar(param)
            pieces.append(name if param.required else f"[{name}]")
    return pieces


class TbhubCommand(TyperCommand):
    """A command whose help shows human metavars and an Examples section."""

    def collect_usage_pieces(self, ctx: Context) -> list[str]:
        return _usage_pieces(self, ctx)

    def format_help_text(self, ctx: Context, formatter: HelpFormatter) -> None:
        _write_text(self, formatter)

    def format_options(self, ctx: Context, formatter: HelpFormatter) -> None:
        _write_options(self, ctx, formatter)

    def format_epilog(self, ctx: Context, formatter: HelpFormatter) -> None:
        _write_examples(self, formatter)
        super().format_epilog(ctx, formatter)

    def get_short_help_str(self, limit: int = 45) -> str:
        return summary_of(self)


class TbhubGroup(TyperGroup):
    """A group of commands: the same help, and the command list with each whole summary."""

    def collect_usage_pieces(self, ctx: Context) -> list[str]:
        return [*_usage_pieces(self, ctx), self.subcommand_metavar]

    def format_help_text(self, ctx: Context, formatter: HelpFormatter) -> None:
        _write_text(self, formatter)

    def format_options(self, ctx: Context, formatter: HelpFormatter) -> None:
        _write_options(self, ctx, formatter)
        self.format_commands(ctx, formatter)

    def format_commands(self, ctx: Context, formatter: HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, summary_of(command)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def format_epilog(self, ctx: Context, formatter: HelpFormatter) -> None:
        _write_examples(self, formatter)
        super().format_epilog(ctx, formatter)

    def get_short_help_str(self, limit: int = 45) -> str:
        return summary_of(self)


class CommandGroup(typer.Typer):
    """``typer.Typer`` for tbhub: plain-text help, the classes above for the group and its commands."""

    def __init__(self, *, help: str, **kwargs: Any) -> None:
        kwargs.setdefault("no_args_is_help", True)
        super().__init__(cls=TbhubGroup, help=help, add_completion=kwargs.pop("add_completion", False),
                         rich_markup_mode=None, pretty_exceptions_enable=False, **kwargs)

    def command(self, name: str | None = None, **kwargs: Any) -> Callable[[Any], Any]:
        kwargs.setdefault("cls", TbhubCommand)
        return super().command(name, **kwargs)


def error_line(error: ClickException) -> str:
    """A usage error on one line, pointing at the command's help."""
    message = " ".join(error.format_message().replace("Value error, ", "").split()).rstrip(".")
    if isinstance(error, UsageError) and error.ctx is not None:
        message += f" (see {error.ctx.command_path} --help)"
    return message
