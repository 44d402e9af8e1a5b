"""Users, browser sessions, API tokens and one-time setup links in the state database.

Every secret is stored as its SHA-256 (``token_digest``) and every password as scrypt; the clear
values exist only in the return value of the call that made them. Sessions and setup links carry
their expiry; a lookup after it finds nothing (and the row is removed). A setup link works only
while no admin exists, once: using one, or any admin coming to be, spends every outstanding link.
An API token may be limited to some endpoints (``User.endpoints``) and never has a role above its
creator's.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from tbhub.adapters.db.tables import api_tokens, endpoint_roles, sessions, setup_tokens, users
from tbhub.adapters.db.throttle import LoginThrottle
from tbhub.core.accounts import Role, User, hash_password, new_token, token_digest, verify_password
from tbhub.errors import UsageError

__all__ = ["AccountStore", "ApiToken", "EndpointGrant", "Session", "UserRow"]

USER_NAME_MAX = 128


@dataclass(frozen=True, slots=True)
class UserRow:
    id: int
    name: str
    role: Role
    created_at: float
    disabled: bool


@dataclass(frozen=True, slots=True)
class EndpointGrant:
    """``user`` has ``role`` on ``endpoint`` (and their own role everywhere else)."""

    user: str
    endpoint: str
    role: Role
    granted_by: str
    granted_at: float


@dataclass(frozen=True, slots=True)
class Session:
    user: User
    csrf: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class ApiToken:
    id: int
    name: str
    role: Role
    created_by: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None
    endpoints: tuple[str, ...] | None = None  # None: every endpoint


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > USER_NAME_MAX or any(c.isspace() or not c.isprintable() for c in name):
        raise UsageError(f"user name {name!r}: 1 to {USER_NAME_MAX} printable characters, no spaces")
    return name


class AccountStore:
    """Accounts on the state database's engine (the tables come with migration 0006)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.throttle = LoginThrottle(engine)

    # -- users ----------------------------------------------------------------------------------
    def add_user(self, name: str, role: Role, password: str) -> UserRow:
        """Create a user; ``UsageError`` when the name is taken."""
        name = _check_name(name)
        hashed = hash_password(password)
        now = time.time()
        try:
            with self.engine.begin() as connection:
                result = connection.execute(
                    insert(users).values(name=name, role=str(role), password_hash=hashed, created_at=now,
                                         disabled=False)
                )
                user_id = int(result.inserted_primary_key[0])  # type: ignore[index]
                if role is Role.ADMIN:
                    _spend_setup_links(connection, now)
        except IntegrityError:
            raise UsageError(f"a user named {name!r} exists already") from None
        return UserRow(user_id, name, role, now, False)

    def set_password(self, name: str, password: str) -> None:
        with self.engine.begin() as connection:
            result = connection.execute(update(users).where(users.c.name == name)
                                        .values(password_hash=hash_password(password)))
            if not result.rowcount:
                raise UsageError(f"no user named {name!r}")
            # A new password ends every session of the user.
            connection.execute(delete(sessions).where(sessions.c.user_id.in_(
                select(users.c.id).where(users.c.name == name).scalar_subquery())))

    def set_role(self, name: str, role: Role) -> None:
        with self.engine.begin() as connection:
            if not connection.execute(update(users).where(users.c.name == name).values(role=str(role))).rowcount:
                raise UsageError(f"no user named {name!r}")
            if role is Role.ADMIN:
                _spend_setup_links(connection, time.time())

    def remove_user(self, name: str) -> None:
        with self.engine.begin() as connection:
            ids = select(users.c.id).where(users.c.name == name).scalar_subquery()
            connection.execute(delete(sessions).where(sessions.c.user_id.in_(ids)))
            connection.execute(delete(endpoint_roles).where(endpoint_roles.c.user_id.in_(ids)))
            if not connection.execute(delete(users).where(users.c.name == name)).rowcount:
                raise UsageError(f"no user named {name!r}")

    def users(self) -> list[UserRow]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(users).order_by(users.c.name))
            return [UserRow(r.id, r.name, Role.parse(r.role), r.created_at, bool(r.disabled)) for r in rows]

    def user(self, name: str) -> UserRow | None:
        return next((u for u in self.users() if u.name == name), None)

    def has_admin(self) -> bool:
        with self.engine.connect() as connection:
            return _has_admin(connection)

    def authenticate(self, name: str, password: str) -> User | None:
        """The user when the password matches; ``None`` otherwise (unknown name or disabled alike)."""
        with self.engine.connect() as connection:
            row = connection.execute(select(users).where(users.c.name == name.strip())).first()
        if row is None or row.disabled or not row.password_hash:
            verify_password(password, _dummy_hash())  # the same time either way: names cannot be probed
            return None
        if not verify_password(password, row.password_hash):
            return None
        return User(row.name, Role.parse(row.role), "session", row.id)

    # -- roles per endpoint ---------------------------------------------------------------------
    def grant(self, name: str, endpoint: str, role: Role, by: str) -> EndpointGrant:
        """Give ``name`` the role ``role`` on ``endpoint`` (replacing an earlier grant there).

        A grant only ever raises a role: one not above the user's own role is refused, so a grant
        never suggests a restriction that the user's own role would not honour.
        """
        user = self.user(name)
        if user is None:
            raise UsageError(f"no user named {name!r}")
        if role <= user.role:
            raise UsageError(f"{name} is a {user.role} everywhere already; grant a higher role on {endpoint}")
        now = time.time()
        values = {"role": str(role), "granted_by": by, "granted_at": now}
        where = (endpoint_roles.c.user_id == user.id, endpoint_roles.c.endpoint == endpoint)
        with self.engine.begin() as connection:
            if not connection.execute(update(endpoint_roles).where(*where).values(**values)).rowcount:
                connection.execute(insert(endpoint_roles).values(user_id=user.id, endpoint=endpoint, **values))
        return EndpointGrant(name, endpoint, role, by, now)

    def revoke_grant(self, name: str, endpoint: str) -> bool:
        with self.engine.begin() as connection:
            ids = select(users.c.id).where(users.c.name == name).scalar_subquery()
            result = connection.execute(
                delete(endpoint_roles).where(endpoint_roles.c.user_id.in_(ids), endpoint_roles.c.endpoint == endpoint)
            )
            return bool(result.rowcount)

    def grants(self) -> list[EndpointGrant]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(users.c.name, endpoint_roles.c.endpoint, endpoint_roles.c.role, endpoint_roles.c.granted_by,
                       endpoint_roles.c.granted_at)
                .join(users, users.c.id == endpoint_roles.c.user_id)
                .order_by(users.c.name, endpoint_roles.c.endpoint)
            )
            return [EndpointGrant(r.name, r.endpoint, Role.parse(r.role), r.granted_by, r.granted_at) for r in rows]

    def endpoint_role(self, user_id: int, endpoint: str) -> Role | None:
        """The user's role granted on ``endpoint``, if any."""
        with self.engine.connect() as connection:
            role = connection.execute(
                select(endpoint_roles.c.role).where(endpoint_roles.c.user_id == user_id,
                                                    endpoint_roles.c.endpoint == endpoint)
            ).scalar()
        return None if role is None else Role.parse(role)

    def endpoint_roles(self, user_id: int) -> dict[str, Role]:
        """Every endpoint the user has a granted role on."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(endpoint_roles.c.endpoint, endpoint_roles.c.role).where(endpoint_roles.c.user_id == user_id)
            )
            return {endpoint: Role.parse(role) for endpoint, role in rows}

    # -- sessions -------------------------------------------------------------------------------
    def start_session(self, user: User, ttl_s: float) -> tuple[str, Session]:
        """A new session for ``user``: the cookie value (only here) and the session."""
        assert user.id is not None
        token, csrf, now = new_token(), new_token(), time.time()
        with self.engine.begin() as connection:
            connection.execute(delete(sessions).where(sessions.c.expires_at < now))
            connection.execute(insert(sessions).values(token_hash=token_digest(token), user_id=user.id, csrf=csrf,
                                                       created_at=now, expires_at=now + ttl_s))
        return token, Session(user, csrf, now + ttl_s)

    def session(self, token: str, now: float | None = None) -> Session | None:
        """The live session behind a cookie value; ``None`` when unknown, expired or its user disabled."""
        now = time.time() if now is None else now
        with self.engine.connect() as connection:
            row = connection.execute(
                select(sessions.c.csrf, sessions.c.expires_at, users.c.id, users.c.name, users.c.role,
                       users.c.disabled)
                .join(users, users.c.id == sessions.c.user_id)
                .where(sessions.c.token_hash == token_digest(token))
            ).first()
        if row is None or row.disabled:
            return None
        if row.expires_at <= now:
            self.end_session(token)
            return None
        return Session(User(row.name, Role.parse(row.role), "session", row.id), row.csrf, row.expires_at)

    def end_session(self, token: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(sessions).where(sessions.c.token_hash == token_digest(token)))

    # -- API tokens -----------------------------------------------------------------------------
    def create_token(self, name: str, role: Role, created_by: str, *, endpoints: list[str] | None = None,
                     creator: User | None = None) -> tuple[str, ApiToken]:
        """A new API token: the secret (shown once, never stored) and its record.

        ``endpoints``: the only endpoints it may act on (the caller checks they exist); ``None``: all.
        ``creator``: who asks (``None``: the shell, which owns the database). A token never gets a role
        above its creator's, nor endpoints beyond the creator's own: ``UsageError``.
        """
        name = name.strip()
        if not name or len(name) > 128:
            raise UsageError("a token needs a name of 1 to 128 characters")
        scope = None if endpoints is None else tuple(sorted(set(endpoints)))
        if scope is not None and not scope:
            raise UsageError("a token limited to endpoints needs at least one")
        if creator is not None:
            if role > creator.role:
                raise UsageError(f"{creator.name}'s role is {creator.role}: a token they create may be "
                                 f"{creator.role} at most, not {role}")
            if creator.endpoints is not None and (scope is None or not set(scope) <= creator.endpoints):
                raise UsageError(f"{creator.name} may act only on {', '.join(sorted(creator.endpoints))}: "
                                 "so may their tokens")
        secret, now = new_token("tbh_"), time.time()
        with self.engine.begin() as connection:
            result = connection.execute(insert(api_tokens).values(
                name=name, token_hash=token_digest(secret), role=str(role), created_by=created_by, created_at=now,
                endpoints=None if scope is None else json.dumps(list(scope))))
            token_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        return secret, ApiToken(token_id, name, role, created_by, now, None, None, scope)

    def revoke_token(self, token_id: int) -> bool:
        """``False`` when there is no such token or it was revoked already."""
        with self.engine.begin() as connection:
            result = connection.execute(update(api_tokens)
                                        .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
                                        .values(revoked_at=time.time()))
            return bool(result.rowcount)

    def tokens(self) -> list[ApiToken]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(api_tokens).order_by(api_tokens.c.id))
            return [ApiToken(r.id, r.name, Role.parse(r.role), r.created_by, r.created_at, r.last_used_at,
                             r.revoked_at, _scope(r.endpoints)) for r in rows]

    def token_user(self, secret: str) -> User | None:
        """Who a bearer token acts as (``token:NAME``); ``None`` when unknown or revoked."""
        with self.engine.connect() as connection:
            row = connection.execute(select(api_tokens).where(api_tokens.c.token_hash == token_digest(secret))).first()
        if row is None or row.revoked_at is not None:
            return None
        now = time.time()
        if row.last_used_at is None or now - row.last_used_at > 60:  # not a write per request
            with self.engine.begin() as connection:
                connection.execute(update(api_tokens).where(api_tokens.c.id == row.id).values(last_used_at=now))
        scope = _scope(row.endpoints)
        return User(f"token:{row.name}", Role.parse(row.role), "token", None,
                    None if scope is None else frozenset(scope))

    # -- setup links ----------------------------------------------------------------------------
    def create_setup_token(self, ttl_s: float = 86400.0) -> str:
        """A link that creates the first admin (see ``use_setup_token``)."""
        token, now = new_token(), time.time()
        with self.engine.begin() as connection:
            connection.execute(insert(setup_tokens).values(token_hash=token_digest(token), created_at=now,
                                                           expires_at=now + ttl_s))
        return token

    def setup_token_valid(self, token: str) -> bool:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(setup_tokens).where(setup_tokens.c.token_hash == token_digest(token))
            ).first()
            admin = _has_admin(connection)
        return row is not None and row.used_at is None and row.expires_at > time.time() and not admin

    def use_setup_token(self, token: str, name: str, password: str) -> UserRow:
        """Create the first admin with a setup link. ``UsageError`` when the link is unknown, used or
        expired, or an admin exists already.

        Using a link spends every outstanding one, in the same transaction that creates the admin; a
        refused name (taken, malformed) rolls all of it back, leaving the link usable for another try.
        On PostgreSQL the outstanding links are locked first, so two links used at once make one admin.
        """
        name = _check_name(name)
        hashed = hash_password(password)
        now = time.time()
        mine = token_digest(token)
        admin_exists = False
        try:
            with self.engine.begin() as connection:
                live = connection.execute(
                    select(setup_tokens.c.token_hash)
                    .where(setup_tokens.c.used_at.is_(None), setup_tokens.c.expires_at > now)
                    .with_for_update()
                ).scalars().all()
                if mine not in live:
                    raise UsageError("this setup link was used already or has expired")
                _spend_setup_links(connection, now)
                admin_exists = _has_admin(connection)
                if not admin_exists:
                    result = connection.execute(
                        insert(users).values(name=name, role=str(Role.ADMIN), password_hash=hashed, created_at=now,
                                             disabled=False)
                    )
                    user_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        except IntegrityError:
            raise UsageError(f"a user named {name!r} exists already") from None
        if admin_exists:  # the links stay spent (committed above)
            raise UsageError("this setup link was used already or has expired: an admin exists, log in instead")
        return UserRow(user_id, name, Role.ADMIN, now, False)


def _has_admin(connection: Connection) -> bool:
    row = connection.execute(
        select(users.c.id).where(users.c.role == str(Role.ADMIN), users.c.disabled.is_(False)).limit(1)
    ).first()
    return row is not None


def _spend_setup_links(connection: Connection, now: float) -> None:
    """Once there is an admin, no setup link may make another."""
    connection.execute(update(setup_tokens).where(setup_tokens.c.used_at.is_(None)).values(used_at=now))


def _scope(stored: str | None) -> tuple[str, ...] | None:
    return None if stored is None else tuple(json.loads(stored))


@functools.cache
def _dummy_hash() -> str:
    return hash_password("timing equaliser")
