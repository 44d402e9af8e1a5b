"""``tbhub users``, ``tbhub tokens``, ``tbhub note``, ``tbhub tag`` and ``tbhub bookmarks``."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import sys
from typing import Annotated

import typer
from rich.table import Table

from tbhub.app.services import Note, Services, actor
from tbhub.core.accounts import ROLES, Role, User
from tbhub.core.bookmarks import DASHBOARDS, Bookmark
from tbhub.errors import UsageError
from tbhub.interfaces.cli.options import ConfigOpt, JsonOpt, config_from, output_console

__all__ = ["bookmarks_app", "note_command", "tag_command", "tokens_app", "users_app"]

users_app = typer.Typer(help="Hub accounts: who may log in, with which role.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens for scripts (Authorization: Bearer ...).", no_args_is_help=True)
bookmarks_app = typer.Typer(help="Shared bookmarks: named TensorBoard views and hub pages.", no_args_is_help=True)

RoleOpt = Annotated[str, typer.Option("--role", "-r", help=f"One of {', '.join(ROLES)}.")]
RunArg = Annotated[str, typer.Argument(help="The run as ENDPOINT/DATASET/RUN.")]


def _services(config: str | None) -> Services:
    return Services(config_from(config, None, None))


def _role(name: str) -> Role:
    try:
        return Role.parse(name)
    except ValueError as error:
        raise UsageError(str(error)) from None


def _when(t: float | None) -> str:
    return dt.datetime.fromtimestamp(t).astimezone().strftime("%Y-%m-%d %H:%M") if t else "never"


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise UsageError("the passwords differ")
    if len(password) < 8:
        raise UsageError("use at least 8 characters for the password")
    return password


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="The login name.")],
    role: RoleOpt = "viewer",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from the first line of stdin.")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Add a user; asks for the password twice (without echo) unless --password-stdin."""
    wanted = _role(role)
    password = _read_password(password_stdin)
    with _services(config) as services:
        services.accounts.add_user(name, wanted, password)
    output_console().print(f"added {name} ({wanted})")


@users_app.command("list")
def users_list(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """List users and their roles."""
    with _services(config) as services:
        accounts = services.accounts
        users = accounts.users()
        grants: dict[str, dict[str, str]] = {}
        for g in accounts.grants():
            grants.setdefault(g.user, {})[g.endpoint] = str(g.role)
    if as_json:
        print(json.dumps([{"id": u.id, "name": u.name, "role": str(u.role), "endpoints": grants.get(u.name, {}),
                           "created_at": u.created_at, "disabled": u.disabled} for u in users], indent=2))
        return
    table = Table("name", "role", "per endpoint", "created")
    for u in users:
        per = ", ".join(f"{role} on {e}" for e, role in grants.get(u.name, {}).items())
        table.add_row(u.name, str(u.role), per, _when(u.created_at))
    output_console().print(table if users else "no users yet: tbhub users add NAME --role admin")


@users_app.command("role")
def users_role(name: str, role: Annotated[str, typer.Argument(help=f"One of {', '.join(ROLES)}.")],
               config: ConfigOpt = None) -> None:
    """Change a user's role."""
    with _services(config) as services:
        services.accounts.set_role(name, _role(role))
    output_console().print(f"{name} is now {_role(role)}")


@users_app.command("grant")
def users_grant(
    name: str,
    endpoint: Annotated[str, typer.Argument(help="The endpoint the role applies to.")],
    role: Annotated[str, typer.Argument(help=f"One of {', '.join(ROLES)}; above the user's own role.")],
    config: ConfigOpt = None,
) -> None:
    """Give a user a higher role on one endpoint (editor of its notes and rules, or admin of its cleanup)."""
    wanted = _role(role)
    with _services(config) as services:
        services.config.endpoint_specs([endpoint])
        services.accounts.grant(name, endpoint, wanted, actor())
    output_console().print(f"{name} is {wanted} on {endpoint}", markup=False)


@users_app.command("ungrant")
def users_ungrant(name: str, endpoint: str, config: ConfigOpt = None) -> None:
    """Take back a user's role on one endpoint: their own role applies there again."""
    with _services(config) as services:
        if not services.accounts.revoke_grant(name, endpoint):
            raise UsageError(f"{name} has no role granted on {endpoint}")
    output_console().print(f"{name} has their own role on {endpoint} again", markup=False)


@users_app.command("password")
def users_password(
    name: str,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read it from stdin.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Set a user's password (and end their sessions)."""
    password = _read_password(password_stdin)
    with _services(config) as services:
        services.accounts.set_password(name, password)
    output_console().print(f"new password for {name}; their sessions ended")


@users_app.command("remove")
def users_remove(name: str, config: ConfigOpt = None) -> None:
    """Remove a user (and end their sessions)."""
    with _services(config) as services:
        services.accounts.remove_user(name)
    output_console().print(f"removed {name}")


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Argument(help="What the token is for (ci-upload).")],
    role: RoleOpt = "viewer",
    endpoint: Annotated[
        list[str] | None,
        typer.Option("--endpoint", "-e", help="Limit it to this endpoint (repeat for several; default: all)."),
    ] = None,
    by: Annotated[
        str | None,
        typer.Option("--by", metavar="USER", help="Create it for this hub user: no role above theirs."),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Create an API token and print it once: only its hash is kept."""
    wanted = _role(role)
    endpoint = None if endpoint == ["all"] else endpoint
    with _services(config) as services:
        if endpoint:
            services.config.endpoint_specs(endpoint)
        accounts = services.accounts
        creator = None
        if by is not None:
            row = accounts.user(by)
            if row is None or row.disabled:
                raise UsageError(f"no active user named {by!r}")
            creator = User(row.name, row.role, "session", row.id)
        secret, token = accounts.create_token(name, wanted, by or actor(), endpoints=endpoint or None,
                                              creator=creator)
    print(secret)
    where = f"on {', '.join(token.endpoints)}" if token.endpoints else "on every endpoint"
    print(f"token {token.id} ({name}, {wanted} {where}): send it as 'Authorization: Bearer TOKEN'; "
          "it is not shown again", file=sys.stderr)


@tokens_app.command("list")
def tokens_list(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """List API tokens (never their secrets)."""
    with _services(config) as services:
        tokens = services.accounts.tokens()
    if as_json:
        print(json.dumps([{"id": t.id, "name": t.name, "role": str(t.role),
                           "endpoints": None if t.endpoints is None else list(t.endpoints),
                           "created_by": t.created_by, "created_at": t.created_at, "last_used_at": t.last_used_at,
                           "revoked": t.revoked_at is not None} for t in tokens], indent=2))
        return
    table = Table("id", "name", "role", "endpoints", "by", "created", "last used", "state")
    for t in tokens:
        table.add_row(str(t.id), t.name, str(t.role), "all" if t.endpoints is None else ", ".join(t.endpoints),
                      t.created_by, _when(t.created_at), _when(t.last_used_at), "revoked" if t.revoked_at else "active")
    output_console().print(table)


@tokens_app.command("revoke")
def tokens_revoke(token_id: Annotated[int, typer.Argument(metavar="ID")], config: ConfigOpt = None) -> None:
    """Revoke an API token: it stops working at once."""
    with _services(config) as services:
        if not services.accounts.revoke_token(token_id):
            raise UsageError(f"no active token {token_id}")
    output_console().print(f"revoked token {token_id}")


def _split(services: Services, run: str) -> tuple[str, str]:
    endpoint, _, relpath = run.strip("/").partition("/")
    if not relpath:
        raise UsageError(f"name a run as ENDPOINT/DATASET/RUN, not {run!r}")
    services.spec(endpoint)
    return endpoint, relpath


def note_command(
    run: RunArg,
    text: Annotated[str | None, typer.Argument(help="The note (markdown); omit to list the run's notes.")] = None,
    edit: Annotated[
        int | None, typer.Option("--edit", metavar="ID", help="Replace the text of this note of the run (ids: --json).")
    ] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a note to a run, edit one (--edit ID), or list them. Notes stay when the run is archived."""
    if edit is not None and text is None:
        raise UsageError("--edit ID needs the note's new text")
    with _services(config) as services:
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
        edited = f" · edited by {n.edited_by} {_when(n.edited_at)}" if n.edited_at else ""
        console.print(f"[bold]#{n.id} {n.author}[/] · {_when(n.at)}{edited}", highlight=False)
        console.print(n.text, markup=False, highlight=False)
    if not notes:
        console.print(f"no notes on {endpoint}/{relpath}")


def _note_record(n: Note) -> dict[str, object]:
    return {"id": n.id, "text": n.text, "author": n.author, "at": n.at, "edited_by": n.edited_by,
            "edited_at": n.edited_at}


def tag_command(
    run: RunArg,
    tags: Annotated[list[str] | None, typer.Argument(help="Tags to add; none: list the run's tags.")] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Remove these tags instead.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Tag a run (free tags, shown on the hub), remove tags, or list them."""
    with _services(config) as services:
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
    name: str,
    endpoint: Annotated[str | None, typer.Option("--endpoint", "-e", help="A TensorBoard view of this endpoint.")]
    = None,
    runs: Annotated[str, typer.Option("--runs", help="Run filter (a regex).")] = "",
    tags: Annotated[str, typer.Option("--tags", help="Tag filter (a regex).")] = "",
    dashboard: Annotated[str, typer.Option("--dashboard", help=f"One of {', '.join(DASHBOARDS)}.")] = "scalars",
    smoothing: Annotated[float | None, typer.Option("--smoothing", help="0 to 0.99.")] = None,
    page: Annotated[str | None, typer.Option("--page", help="Or a hub page: /compare?tags=loss.")] = None,
    description: Annotated[str, typer.Option("--description", "-d")] = "",
    config: ConfigOpt = None,
) -> None:
    """Save a shared bookmark: a TensorBoard view (--endpoint and filters) or a hub --page."""
    with _services(config) as services:
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
    """List shared bookmarks with the hub path each opens."""
    with _services(config) as services:
        saved = services.annotations.bookmarks()
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
def bookmarks_rm(key: Annotated[str, typer.Argument(help="Name or id.")], config: ConfigOpt = None) -> None:
    """Remove a bookmark."""
    with _services(config) as services:
        if not services.annotations.remove_bookmark(key):
            raise UsageError(f"no bookmark {key!r}")
    output_console().print(f"removed bookmark {key}", markup=False)
