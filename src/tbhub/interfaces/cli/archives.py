"""``tbhub restore``, ``tbhub archives list`` and ``tbhub history``: what clean archived and deleted."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tbhub.app.restore import archives_at, restore_run
from tbhub.app.services import Services
from tbhub.core.names import shown
from tbhub.core.units import format_size
from tbhub.interfaces.cli.formatting import CommandGroup
from tbhub.interfaces.cli.options import (
    ConfigOpt,
    JsonOpt,
    LogdirOpt,
    config_from,
    note_state,
    output_console,
    print_json,
)
from tbhub.interfaces.cli.render import name_text

__all__ = ["archives_app", "history_command", "restore_command"]


def restore_command(
    archive: Annotated[
        str, typer.Argument(metavar="ARCHIVE",
                            help="An archive written by clean --archive-to (a file or an s3:// URL).")
    ],
    config: ConfigOpt = None,
    logdir: LogdirOpt = None,
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", "-e", metavar="NAME", help="Restore into this endpoint's log root.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Put an archived run back, byte-identical with its mtimes; never overwrites an existing run.

    Examples:
      tbhub restore /archive/tb/lora/alpaca/r32--20260105T093000Z.tar.zst --config tbhub.toml
      tbhub restore s3://team-archive/tb/lora/alpaca/r32--20260105T093000Z.tar.zst --config tbhub.toml -e lora
    """
    with Services(config_from(config, logdir, None)) as services:
        done = restore_run(services, archive, endpoint)
    if as_json:
        print_json({"archive": done.archive, "endpoint": done.endpoint, "path": done.path}, indent=None)
    else:
        Console().print(f"restored {escape(shown(f'{done.dataset}/{done.run}'))} into {done.endpoint}: "
                        f"{escape(shown(done.path))}", soft_wrap=True)


archives_app = CommandGroup(help="""Archives written by clean --archive-to.

Examples:
  tbhub archives list /archive/tb
""")


@archives_app.command("list")
def archives_list(
    dest: Annotated[
        str, typer.Argument(metavar="PLACE", help="The archive folder or s3:// URL (what --archive-to named).")
    ],
    config: ConfigOpt = None,
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", "-e", metavar="NAME",
                                 help="Reach an s3:// PLACE with this endpoint's [s3] settings.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the archives in PLACE: which run, when, how large.

    Examples:
      tbhub archives list /archive/tb
      tbhub archives list s3://team-archive/tb --config tbhub.toml -e lora --json
    """
    infos = archives_at(Services(config_from(config, None, None)), dest, endpoint)
    if as_json:
        print_json([
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
        ])
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
    limit: Annotated[int, typer.Option("--limit", metavar="N", help="How many entries, newest first.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """What manage commands deleted: when, who, what, how much, and where the archive went.

    Examples:
      tbhub history --config tbhub.toml
      tbhub history --config tbhub.toml --limit 20 --json
    """
    with Services(config_from(config, None, None)) as services:
        state = services.existing_state() if note_state(services, "nothing was deleted") else None
        records = state.deletions(limit=limit) if state is not None else []
    if as_json:
        print_json([{f: getattr(r, f) for f in r.__slots__} for r in records])
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
