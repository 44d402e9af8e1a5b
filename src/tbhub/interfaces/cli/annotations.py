"""``tbhub note``, ``tbhub tag``, ``tbhub pin|unpin|pins`` and ``tbhub bookmarks``: what a team says about runs."""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Annotated

import typer
from rich.table import Table

from tbhub.app.services import Note, Services, actor
from tbhub.core.bookmarks import DASHBOARDS, Bookmark
from tbhub.errors import UsageError
from tbhub.interfaces.cli.formatting import CommandGroup
from tbhub.interfaces.cli.options import (
    ConfigOpt,
    JsonOpt,
    LogdirOpt,
    config_from,
    endpoint_option,
    note_state,
    output_console,
    services_from,
)
from tbhub.interfaces.cli.render import local_time, name_text

__all__ = ["bookmarks_app", "note_command", "pin_command", "pins_command", "tag_command", "unpin_command"]

bookmarks_app = CommandGroup(help="""Shared bookmarks: named TensorBoard views and hub pages.

Examples:
  tbhub bookmarks add eval-curves --config tbhub.toml -e lora --tags '^eval/'
  tbhub bookmarks list --config tbhub.toml
""")
RunArg = Annotated[str, typer.Argument(metavar="RUN", help="The run as ENDPOINT/DATASET/RUN.")]


def _split(services: Services, run: str) -> tuple[str, str]:
    endpoint, _, relpath = run.strip("/").partition("/")
    if not relpath:
        raise UsageError(f"name a run as ENDPOINT/DATASET/RUN, not {run!r}")
    services.spec(endpoint)
    return endpoint, relpath


def note_command(
    run: RunArg,
    text: Annotated[
        str | None, typer.Argument(metavar="TEXT", help="The note (markdown); omit to list the run's notes.")
    ] = None,
    edit: Annotated[
        int | None, typer.Option("--edit", metavar="ID", help="Replace the text of this note of the run (ids: --json).")
    ] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a note to a run, edit one (--edit ID), or list them. Notes stay when the run is archived.

    Examples:
      tbhub note lora/alpaca/r32 "lr 2e-4 diverged at step 900; rerun with warmup" --config tbhub.toml
      tbhub note lora/alpaca/r32 --config tbhub.toml
      tbhub note lora/alpaca/r32 --edit 1 "rerun is r33" --config tbhub.toml
    """
    if edit is not None and text is None:
        raise UsageError("--edit ID needs the note's new text")
    with services_from(config, create_state=text is not None) as services:
        endpoint, relpath = _split(services, run)
        store = services.annotations
        if text is not None:
            if edit is not None:
                note = store.edit_note(edit, text, actor(), endpoint=endpoint, relpath=relpath)
                done = f"edited note {note.id} on {endpoint}/{relpath}"
            else:
                note = store.add_note(endpoint, relpath, text, actor())
                done = f"noted {endpoint}/{relpath} (note {note.id})"
            if as_json:
                print(json.dumps(_note_record(note), indent=2))
            else:
                output_console().print(done, markup=False)
            return
        notes = store.notes(endpoint, relpath)
    if as_json:
        print(json.dumps([_note_record(n) for n in notes], indent=2))
        return
    console = output_console()
    for n in notes:
        edited = f" · edited by {n.edited_by} {local_time(n.edited_at)}" if n.edited_at else ""
        console.print(f"[bold]#{n.id} {n.author}[/] · {local_time(n.at)}{edited}", highlight=False)
        console.print(n.text, markup=False, highlight=False)
    if not notes:
        console.print(f"no notes on {endpoint}/{relpath}")


def _note_record(n: Note) -> dict[str, object]:
    return {"id": n.id, "text": n.text, "author": n.author, "at": n.at, "edited_by": n.edited_by,
            "edited_at": n.edited_at}


def tag_command(
    run: RunArg,
    tags: Annotated[
        list[str] | None, typer.Argument(metavar="TAG...", help="Tags to add; none: list the run's tags.")
    ] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Remove these tags instead.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Tag a run (free tags, shown on the hub), remove tags, or list them.

    Examples:
      tbhub tag lora/alpaca/r32 baseline paper --config tbhub.toml
      tbhub tag lora/alpaca/r32 paper --remove --config tbhub.toml
      tbhub tag lora/alpaca/r32 --config tbhub.toml
    """
    with services_from(config, create_state=bool(tags)) as services:
        endpoint, relpath = _split(services, run)
        store = services.annotations
        for tag in tags or []:
            if remove:
                store.untag(endpoint, relpath, tag)
            else:
                store.tag(endpoint, relpath, tag, actor())
        current = store.tags(endpoint).get(relpath, [])
    output_console().print(f"{endpoint}/{relpath}: {' '.join(current) or 'no tags'}", markup=False)


@bookmarks_app.command("add")
def bookmarks_add(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The bookmark's name.")],
    endpoint: Annotated[str | None, endpoint_option("A TensorBoard view of this endpoint.")] = None,
    runs: Annotated[str, typer.Option("--runs", metavar="REGEX", help="Run filter (a regex).")] = "",
    tags: Annotated[str, typer.Option("--tags", metavar="REGEX", help="Tag filter (a regex).")] = "",
    dashboard: Annotated[
        str, typer.Option("--dashboard", metavar="NAME", help=f"One of {', '.join(DASHBOARDS)}.")
    ] = "scalars",
    smoothing: Annotated[float | None, typer.Option("--smoothing", metavar="0-0.99", help="0 to 0.99.")] = None,
    page: Annotated[
        str | None, typer.Option("--page", metavar="PATH", help="Or a hub page: /compare?tags=loss.")
    ] = None,
    description: Annotated[str, typer.Option("--description", "-d", metavar="TEXT", help="What it shows.")] = "",
    config: ConfigOpt = None,
) -> None:
    """Save a shared bookmark: a TensorBoard view (--endpoint and filters) or a hub --page.

    Examples:
      tbhub bookmarks add lora-loss --config tbhub.toml -e lora --tags 'loss' --smoothing 0.6
      tbhub bookmarks add best-lora --config tbhub.toml --page '/compare?tags=eval/loss'
    """
    with services_from(config) as services:
        if endpoint:
            services.config.endpoint_specs([endpoint])
        try:
            bookmark = Bookmark(name, actor(), description, endpoint, dashboard, runs, tags, smoothing, page)
        except ValueError as error:
            raise UsageError(str(error)) from None
        saved = services.annotations.add_bookmark(bookmark)
    output_console().print(f"saved {saved.name}: {saved.url}", markup=False)


@bookmarks_app.command("list")
def bookmarks_list(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """List shared bookmarks with the hub path each opens.

    Examples:
      tbhub bookmarks list --config tbhub.toml --json
    """
    with services_from(config) as services:
        saved = services.annotations.bookmarks() if note_state(services) else []
        base = (services.config.server.public_url or "").rstrip("/")
    if as_json:
        print(json.dumps([{"id": b.id, "name": b.name, "owner": b.owner, "description": b.description,
                           "url": base + b.url} for b in saved], indent=2))
        return
    table = Table("id", "name", "owner", "description", "url")
    for b in saved:
        table.add_row(str(b.id), b.name, b.owner, b.description, base + b.url)
    output_console().print(table)


@bookmarks_app.command("rm")
def bookmarks_rm(
    key: Annotated[str, typer.Argument(metavar="NAME|ID", help="Name or id.")], config: ConfigOpt = None
) -> None:
    """Remove a bookmark.

    Examples:
      tbhub bookmarks rm lora-loss --config tbhub.toml
    """
    with services_from(config) as services:
        if not services.annotations.remove_bookmark(key):
            raise UsageError(f"no bookmark {key!r}")
    output_console().print(f"removed bookmark {key}", markup=False)


def _existing_run(services: Services, spec: str) -> tuple[str, str]:
    """``_split``, and the run must be there."""
    endpoint, relpath = _split(services, spec)
    store = services.store(endpoint)
    if not store.exists(relpath):
        raise UsageError(f"no run {relpath!r} in endpoint {endpoint!r} ({store.url(relpath)})")
    return endpoint, relpath


def pin_command(run: RunArg, config: ConfigOpt = None, logdir: LogdirOpt = None) -> None:
    """Pin a run: retention policies and clean skip it.

    Examples:
      tbhub pin lora/alpaca/r32 --config tbhub.toml
    """
    with Services(config_from(config, logdir, None)) as services:
        endpoint, relpath = _existing_run(services, run)
        fresh = services.state.pin(endpoint, relpath, actor())
    output_console().print(f"pinned {endpoint}/{relpath}" if fresh else f"{endpoint}/{relpath} was pinned already")


def unpin_command(run: RunArg, config: ConfigOpt = None, logdir: LogdirOpt = None) -> None:
    """Unpin a run: retention policies may remove it again.

    Examples:
      tbhub unpin lora/alpaca/r32 --config tbhub.toml
    """
    with Services(config_from(config, logdir, None)) as services:
        endpoint, relpath = _split(services, run)
        if not services.state.unpin(endpoint, relpath):
            raise UsageError(f"{run} is not pinned")
    output_console().print(f"unpinned {endpoint}/{relpath}")


def pins_command(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """List pinned runs: who pinned each, and since when.

    Examples:
      tbhub pins --config tbhub.toml
      tbhub pins --config tbhub.toml --json
    """
    cfg = config_from(config, None, None)
    with Services(cfg) as services:
        state = services.existing_state() if note_state(services) else None
        pins = state.pins() if state is not None else []
    if as_json:
        json.dump(
            [
                {"endpoint": p.endpoint, "relpath": p.relpath, "pinned_by": p.pinned_by, "pinned_at": p.pinned_at}
                for p in pins
            ],
            sys.stdout,
            indent=2,
        )
        sys.stdout.write("\n")
        return
    table = Table("run", "pinned by", "since")
    for p in pins:
        table.add_row(
            name_text(f"{p.endpoint}/{p.relpath}"),
            name_text(p.pinned_by),
            dt.datetime.fromtimestamp(p.pinned_at, tz=dt.UTC).strftime("%Y-%m-%d %H:%M"),
        )
    output_console().print(table)
