"""``tbhub users`` and ``tbhub tokens``: who may log in, with which role, and scripts' API tokens."""

from __future__ import annotations

import getpass
import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from tbhub.app.services import actor
from tbhub.core.accounts import ROLES, Role, User
from tbhub.errors import UsageError
from tbhub.interfaces.cli.formatting import CommandGroup
from tbhub.interfaces.cli.options import (
    ConfigOpt,
    JsonOpt,
    endpoint_option,
    note_state,
    output_console,
    services_from,
)
from tbhub.interfaces.cli.render import local_time

__all__ = ["tokens_app", "users_app"]

users_app = CommandGroup(help="""Hub accounts: who may log in, with which role.

Examples:
  tbhub users add alice --role admin --config tbhub.toml
  tbhub users list --config tbhub.toml
""")
tokens_app = CommandGroup(help="""API tokens for scripts (Authorization: Bearer ...).

Examples:
  tbhub tokens create ci-upload --role editor -e lora --config tbhub.toml
  tbhub tokens list --config tbhub.toml
""")

RoleOpt = Annotated[str, typer.Option("--role", "-r", metavar="ROLE", help=f"One of {', '.join(ROLES)}.")]
RoleArg = Annotated[str, typer.Argument(metavar="ROLE", help=f"One of {', '.join(ROLES)}.")]
UserArg = Annotated[str, typer.Argument(metavar="NAME", help="The user's login name.")]
EndpointArg = Annotated[str, typer.Argument(metavar="ENDPOINT", help="The endpoint the role applies to.")]


def _role(name: str) -> Role:
    try:
        return Role.parse(name)
    except ValueError as error:
        raise UsageError(str(error)) from None


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
    name: UserArg,
    role: RoleOpt = "viewer",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from the first line of stdin.")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Add a user; asks for the password twice (without echo) unless --password-stdin.

    Examples:
      tbhub users add alice --role admin --config tbhub.toml
      echo "$PASSWORD" | tbhub users add ci-bot --password-stdin --config tbhub.toml
    """
    wanted = _role(role)
    password = _read_password(password_stdin)
    with services_from(config) as services:
        services.accounts.add_user(name, wanted, password)
    output_console().print(f"added {name} ({wanted})")


@users_app.command("list")
def users_list(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """List users and their roles.

    Examples:
      tbhub users list --config tbhub.toml --json
    """
    users: list[Any] = []
    grants: dict[str, dict[str, str]] = {}
    with services_from(config) as services:
        if note_state(services, "no users yet"):
            accounts = services.accounts
            users = accounts.users()
            for g in accounts.grants():
                grants.setdefault(g.user, {})[g.endpoint] = str(g.role)
    if as_json:
        print(json.dumps([{"id": u.id, "name": u.name, "role": str(u.role), "endpoints": grants.get(u.name, {}),
                           "created_at": u.created_at, "disabled": u.disabled} for u in users], indent=2))
        return
    table = Table("name", "role", "per endpoint", "created")
    for u in users:
        per = ", ".join(f"{role} on {e}" for e, role in grants.get(u.name, {}).items())
        table.add_row(u.name, str(u.role), per, local_time(u.created_at))
    output_console().print(table if users else "no users yet: tbhub users add NAME --role admin")


@users_app.command("role")
def users_role(name: UserArg, role: RoleArg, config: ConfigOpt = None) -> None:
    """Change a user's role.

    Examples:
      tbhub users role alice editor --config tbhub.toml
    """
    with services_from(config) as services:
        services.accounts.set_role(name, _role(role))
    output_console().print(f"{name} is now {_role(role)}")


@users_app.command("grant")
def users_grant(
    name: UserArg,
    endpoint: EndpointArg,
    role: Annotated[str, typer.Argument(metavar="ROLE", help=f"One of {', '.join(ROLES)}; above the user's own.")],
    config: ConfigOpt = None,
) -> None:
    """Give a user a higher role on one endpoint (editor of its notes and rules, or admin of its cleanup).

    Examples:
      tbhub users grant bob lora admin --config tbhub.toml
    """
    wanted = _role(role)
    with services_from(config) as services:
        services.config.endpoint_specs([endpoint])
        services.accounts.grant(name, endpoint, wanted, actor())
    output_console().print(f"{name} is {wanted} on {endpoint}", markup=False)


@users_app.command("ungrant")
def users_ungrant(name: UserArg, endpoint: EndpointArg, config: ConfigOpt = None) -> None:
    """Take back a user's role on one endpoint: their own role applies there again.

    Examples:
      tbhub users ungrant bob lora --config tbhub.toml
    """
    with services_from(config) as services:
        if not services.accounts.revoke_grant(name, endpoint):
            raise UsageError(f"{name} has no role granted on {endpoint}")
    output_console().print(f"{name} has their own role on {endpoint} again", markup=False)


@users_app.command("password")
def users_password(
    name: UserArg,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read it from stdin.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Set a user's password (and end their sessions).

    Examples:
      tbhub users password alice --config tbhub.toml
    """
    password = _read_password(password_stdin)
    with services_from(config) as services:
        services.accounts.set_password(name, password)
    output_console().print(f"new password for {name}; their sessions ended")


@users_app.command("remove")
def users_remove(name: UserArg, config: ConfigOpt = None) -> None:
    """Remove a user (and end their sessions).

    Examples:
      tbhub users remove carol --config tbhub.toml
    """
    with services_from(config) as services:
        services.accounts.remove_user(name)
    output_console().print(f"removed {name}")


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Argument(metavar="NAME", help="What the token is for (ci-upload).")],
    role: RoleOpt = "viewer",
    endpoint: Annotated[
        list[str] | None, endpoint_option("Limit it to this endpoint (repeat for several; default: all).")
    ] = None,
    by: Annotated[
        str | None,
        typer.Option("--by", metavar="USER", help="Create it for this hub user: no role above theirs."),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Create an API token and print it once: only its hash is kept.

    Examples:
      tbhub tokens create ci-upload --role editor -e lora --config tbhub.toml
      tbhub tokens create grafana --by alice --config tbhub.toml
    """
    wanted = _role(role)
    endpoint = None if endpoint == ["all"] else endpoint
    with services_from(config) as services:
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
    """List API tokens (never their secrets).

    Examples:
      tbhub tokens list --config tbhub.toml --json
    """
    with services_from(config) as services:
        tokens = services.accounts.tokens() if note_state(services, "no tokens yet") else []
    if as_json:
        print(json.dumps([{"id": t.id, "name": t.name, "role": str(t.role),
                           "endpoints": None if t.endpoints is None else list(t.endpoints),
                           "created_by": t.created_by, "created_at": t.created_at, "last_used_at": t.last_used_at,
                           "revoked": t.revoked_at is not None} for t in tokens], indent=2))
        return
    table = Table("id", "name", "role", "endpoints", "by", "created", "last used", "state")
    for t in tokens:
        table.add_row(str(t.id), t.name, str(t.role), "all" if t.endpoints is None else ", ".join(t.endpoints),
                      t.created_by, local_time(t.created_at), local_time(t.last_used_at),
                      "revoked" if t.revoked_at else "active")
    output_console().print(table)


@tokens_app.command("revoke")
def tokens_revoke(token_id: Annotated[int, typer.Argument(metavar="ID")], config: ConfigOpt = None) -> None:
    """Revoke an API token: it stops working at once.

    Examples:
      tbhub tokens revoke 3 --config tbhub.toml
    """
    with services_from(config) as services:
        if not services.accounts.revoke_token(token_id):
            raise UsageError(f"no active token {token_id}")
    output_console().print(f"revoked token {token_id}")
