"""Options every command shares: how to name endpoints, and output switches."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console

from tbhub.config import Config, load_config

__all__ = ["ConfigOpt", "JsonOpt", "LogdirOpt", "PathArg", "config_from", "output_console"]

ConfigOpt = Annotated[
    str | None,
    typer.Option("--config", "-c", help="Config file (default: $TBHUB_CONFIG, else ./tbhub.toml).",
                 show_default=False),
]
LogdirOpt = Annotated[
    list[str] | None,
    typer.Option("--logdir", help="An endpoint as NAME=PATH (repeatable); replaces the config's endpoints.",
                 show_default=False),
]
PathArg = Annotated[
    str | None,
    typer.Argument(help="A log root to use as the only endpoint, named after its folder.", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")]


def config_from(config: str | None, logdir: list[str] | None, path: str | None) -> Config:
    return load_config(config, logdir or (), path)


def output_console() -> Console:
    """The console for a command's output: a file or pipe gets wide lines, not 80 squeezed columns."""
    if sys.stdout.isatty():
        return Console(highlight=False)
    return Console(width=160, highlight=False)
