"""``tbhub users`` and ``tbhub tokens``: who may log in, with which role, and scripts' API tokens."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import sys
from typing import Annotated

import typer
from rich.table import Table

from tbhub.app.services import Services, actor
from tbhub.core.accounts import ROLES, Role, User
from tbhub.errors import UsageError
from tbhub.interfaces.cli.options import ConfigOpt, JsonOpt, config_from, output_console

__all__ = ["tokens_app", "users_app"]

users_app = typer.Typer(help="Hub accounts: who may log in, with which role.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens for scripts (Authorization: Bearer ...).", no_args_is_help=True)

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
