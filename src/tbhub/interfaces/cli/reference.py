"""The CLI reference (docs/cli-reference.md), written from the commands' own ``--help``.

    python -m tbhub.interfaces.cli.reference > docs/cli-reference.md      (or: make docs)

``tests/test_docs.py`` regenerates it and compares, so the page never drifts from the code.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import typer
from typer._click import Context

from tbhub.interfaces.cli.main import build_app

__all__ = ["WIDTH", "commands", "reference"]

#: Help is rendered at a fixed width, so the page does not depend on the terminal that wrote it.
WIDTH = 88


def commands() -> Iterator[tuple[str, Any, Context]]:
    """Every command and group, depth first in the order ``tbhub --help`` lists them: name, the click
    command, and a context to render its help in."""
    root = typer.main.get_command(build_app())

    def walk(name: str, command: Any, parent: Context | None) -> Iterator[tuple[str, Any, Context]]:
        ctx = Context(command, info_name=name.rsplit(" ", 1)[-1], parent=parent, terminal_width=WIDTH,
                      max_content_width=WIDTH)
        yield name, command, ctx
        for sub in getattr(command, "commands", {}):
            yield from walk(f"{name} {sub}", command.commands[sub], ctx)

    yield from walk("tbhub", root, None)


def reference() -> str:
    """The Markdown page: one section per command with its ``--help`` as printed."""
    out = [
        "# CLI reference",
        "",
        "<!-- Generated from each command's --help by",
        "     `python -m tbhub.interfaces.cli.reference > docs/cli-reference.md`;",
        "     tests/test_docs.py fails when it is stale. Do not edit by hand. -->",
        "",
        "Every command and its options, exactly as `--help` prints them. Each command reads `./tbhub.toml`",
        "unless given `--config FILE` (or `$TBHUB_CONFIG`).",
        "",
    ]
    for name, command, ctx in commands():
        out += [f"## `{name}`", "", "```text", command.get_help(ctx).rstrip(), "```", ""]
    return "\n".join(out)


def main() -> None:
    sys.stdout.write(reference())


if __name__ == "__main__":
    main()
