"""Who may do what on the hub: one ASGI middleware in front of every route, the proxy included.

Every request is matched to its route the way the router will match it, and the route's required
role is looked up in a ``RoleTable``. Routes in ``PUBLIC`` need nobody; any other route that the
table does not know needs ``admin`` (deny by default), and a test fails for such a route.

How a request authenticates, in order: ``[auth] mode = "none"`` (everyone is a local admin; only on
loopback), ``Authorization: Bearer TOKEN`` (an API token), the trusted proxy's user header (only when
the TCP peer is one of ``auth.trusted_proxies``: ``forwarded.py``), the session cookie.

An API token limited to some endpoints reaches only those (``token_scope.py``).

Refusals: anonymous page requests are sent to ``/login`` (302); anonymous API calls and TensorBoard
data calls get 401; a role too low gets 403.

CSRF: every unsafe request (POST, PUT, PATCH, DELETE) authenticated by a cookie, or by nothing, must
carry the session's CSRF token in the ``csrf`` form field or the ``X-CSRF-Token`` header. Before login
the token lives in its own cookie (double submit). Bearer tokens are not sent by browsers on their
own, so token requests need none. The TensorBoard proxy is exempt: TensorBoard's frontend posts its
own data queries without our token, they read but change nothing, and the SameSite=Lax session
cookie is not sent on cross-site POSTs.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Iterable
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote

import anyio.to_thread
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tbhub.app.services import AccountStore
from tbhub.config import AuthConfig
from tbhub.core.accounts import Role, User, new_token
from tbhub.errors import UsageError
from tbhub.interfaces.web.forwarded import TrustedProxies, resolve_client
from tbhub.interfaces.web.hardening import replay_body
from tbhub.interfaces.web.token_scope import filter_metrics, named_endpoint, scope_refusal

__all__ = [
    "CSRF_COOKIE",
    "PUBLIC",
    "SESSION_COOKIE",
    "AuthMiddleware",
    "RoleTable",
    "cookie_secure",
    "current_user",
    "read_form",
    "read_form_lists",
    "required_role",
]

SESSION_COOKIE = "tbhub_session"
CSRF_COOKIE = "tbhub_csrf"
#: Routes anyone may reach: logging in, the first admin's setup, health checks, stylesheets, the icon.
PUBLIC = frozenset({"login", "login_submit", "setup_page", "setup_submit", "healthz", "readyz", "static",
                    "favicon"})
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Forms and JSON the hub accepts are small; a bigger body is refused before it is buffered.
MAX_CHECKED_BODY = 1 << 20

F = TypeVar("F", bound=Callable[..., Any])


class RoleTable:
    """Route name → the least role that may use it, and where an endpoint-scoped route names its endpoint.

    A route scoped to an endpoint is judged by the user's role *on that endpoint*: their own role, or a
    higher one granted there (``AccountStore.grant``). ``"path"``: the ``name`` or ``endpoint`` path
    parameter; ``"form"``: the ``endpoint`` field of a URL-encoded form. A route that is not scoped
    (users, tokens, bookmarks, retention) needs the user's own role.
    """

    def __init__(self) -> None:
        self.roles: dict[str, Role] = {}
        self.scoped: dict[str, str] = {}

    def __call__(self, role: Role, *, endpoint: str | None = None) -> Callable[[F], F]:
        """Decorate a route function (beneath ``@app.get``): its route needs ``role`` (on ``endpoint``)."""

        def record(fn: F) -> F:
            self.grant(fn.__name__, role)
            if endpoint is not None:
                self.scope(fn.__name__, endpoint)
            return fn

        return record

    def grant(self, name: str, role: Role) -> None:
        self.roles[name] = role

    def scope(self, name: str, where: str) -> None:
        if where not in ("path", "form"):
            raise ValueError(f"an endpoint comes from the path or the form, not {where!r}")
        self.scoped[name] = where

    def include(self, other: RoleTable) -> None:
        """Take the entries of a router's table, when the app includes that router."""
        self.roles.update(other.roles)
        self.scoped.update(other.scoped)


def required_role(table: RoleTable, route_name: str | None) -> Role | None:
    """``None``: public. A path no route matches needs a viewer (the 404 is for users only)."""
    if route_name in PUBLIC:
        return None
    if route_name is None:
        return Role.VIEWER
    return table.roles.get(route_name, Role.ADMIN)


def _route(routes: Iterable[BaseRoute], scope: Scope) -> tuple[str | None, dict[str, Any]]:
    """The name of the route the router will pick, and its path parameters."""
    partial: tuple[str | None, dict[str, Any]] | None = None
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.FULL:
            return getattr(route, "name", None), dict(child.get("path_params", {}))
        if match is Match.PARTIAL and partial is None:
            partial = getattr(route, "name", None), dict(child.get("path_params", {}))
    return partial or (None, {})


def cookie_secure(scope: Scope) -> bool:
    """Behind TLS (directly or at a proxy that says so) cookies are ``Secure``."""
    if scope.get("scheme") == "https":
        return True
    return Headers(scope=scope).get("x-forwarded-proto", "").split(",")[0].strip().lower() == "https"


def current_user(request: Request) -> User | None:
    user: User | None = request.state.user
    return user


async def read_form(request: Request) -> dict[str, str]:
    """The fields of a URL-encoded form (the last value of each). The hub's forms are small and never
    upload files, so this needs no multipart parser (python-multipart is not a dependency)."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise UsageError("send the form URL-encoded (application/x-www-form-urlencoded)")
    body = await request.body()
    return {k: v[-1] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}


async def read_form_lists(request: Request) -> dict[str, list[str]]:
    """Every value of each field of a URL-encoded form (checkboxes that share a name)."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise UsageError("send the form URL-encoded (application/x-www-form-urlencoded)")
    return parse_qs((await request.body()).decode(), keep_blank_values=True)


async def _json(send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    raw = json.dumps(body).encode()
    out = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    out += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": raw})


async def _redirect(send: Send, location: str) -> None:
    await send({"type": "http.response.start", "status": 302,
                "headers": [(b"location", location.encode()), (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


class AuthMiddleware:
    """Authenticates each request, enforces its route's role and CSRF; sets ``request.state.user``
    (``None`` when anonymous) and ``request.state.csrf`` (the token forms must carry)."""

    def __init__(self, app: ASGIApp, *, routes: list[BaseRoute], table: RoleTable, accounts: AccountStore,
                 config: AuthConfig) -> None:
        self.app = app
        self.routes = routes
        self.table = table
        self.accounts = accounts
        self.config = config
        self.proxies = TrustedProxies(config.trusted_proxies)

    def _authenticate(self, scope: Scope, from_proxy: bool) -> tuple[User | None, str | None, bool]:
        """(user, the session's CSRF token if a session, whether a bearer token failed). ``from_proxy``:
        the TCP peer is a trusted proxy, whose user header is believed."""
        if not self.config.enabled:
            return User("local", Role.ADMIN, "none"), None, False
        headers = Headers(scope=scope)
        authorization = headers.get("authorization", "")
        if authorization[:7].lower() == "bearer ":
            user = self.accounts.token_user(authorization[7:].strip())
            return user, None, user is None
        if from_proxy:
            name = headers.get(self.config.proxy_header, "").strip()
            if name:
                row = self.accounts.user(name)
                if row is not None and row.disabled:
                    return None, None, False
                role = row.role if row is not None else Role.parse(self.config.proxy_role)
                return User(name, role, "proxy", row.id if row else None), None, False
        cookie = Request(scope).cookies.get(SESSION_COOKIE)
        if cookie:
            session = self.accounts.session(cookie)
            if session is not None:
                return session.user, session.csrf, False
        return None, None, False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from_proxy = resolve_client(scope, self.proxies)
        user, session_csrf, bad_token = await anyio.to_thread.run_sync(self._authenticate, scope, from_proxy)
        cookies = Request(scope).cookies
        fresh_csrf: str | None = None
        csrf = session_csrf or cookies.get(CSRF_COOKIE)
        if csrf is None:
            csrf = fresh_csrf = new_token()
        state = scope.setdefault("state", {})
        state["user"], state["csrf"] = user, csrf

        name, params = _route(self.routes, scope)
        need = required_role(self.table, name)
        path: str = scope["path"]
        body: bytes | None = None
        body_read = False  # a body is read once: None after that means too big, or the client left
        where = self.table.scoped.get(name or "")
        granting = where is not None and user is not None and user.id is not None and user.role < Role.ADMIN
        limited = need is not None and user is not None and user.endpoints is not None
        endpoint = named_endpoint(params)
        if (granting or limited) and where == "form" and scope["method"] in UNSAFE:
            body, body_read = await _read_body(receive), True
            endpoint = _form_field(scope, body or b"", "endpoint")
        if granting and user is not None and user.id is not None and endpoint:
            # The user's role on the endpoint this request acts on (a grant may raise it).
            granted = await anyio.to_thread.run_sync(self.accounts.endpoint_role, user.id, endpoint)
            if granted is not None and granted > user.role:
                user = User(user.name, granted, user.via, user.id)
                state["user"] = user
        if body is not None:
            receive = replay_body(body, receive)
        if bad_token:
            await _json(send, 401, {"error": "invalid or revoked API token"}, {"www-authenticate": "Bearer"})
            return
        if need is not None and user is None:
            accept = Headers(scope=scope).get("accept", "")
            api = path.startswith("/api/") or path == "/openapi.json"
            if scope["method"] in ("GET", "HEAD") and "text/html" in accept and not api:
                target = path + ("?" + scope["query_string"].decode("latin-1") if scope.get("query_string") else "")
                await _redirect(send, "/login?next=" + quote(target, safe=""))
            else:
                await _json(send, 401, {"error": "log in, or send Authorization: Bearer TOKEN"},
                            {"www-authenticate": "Bearer"})
            return
        if need is not None and user is not None and user.role < need:
            await _json(send, 403, {"error": f"this needs the {need} role; {user.name} is a {user.role}"})
            return
        refusal = scope_refusal(user, name, endpoint) if limited and user is not None else None
        if refusal is not None:
            await _json(send, 403, {"error": refusal})
            return
        if limited and name == "metrics" and user is not None and user.endpoints is not None:
            send = _filtered_metrics(send, user.endpoints)

        if scope["method"] in UNSAFE and not path.startswith("/tb/") and (user is None or user.via != "token"):
            if not body_read:
                body, body_read = await _read_body(receive), True
                if body is not None:
                    receive = replay_body(body, receive)
            ok = body is not None and _csrf_ok(scope, body, csrf if fresh_csrf is None else None)
            if not ok:
                await _json(send, 403, {"error": "missing or wrong CSRF token: reload the page and try again"})
                return

        if fresh_csrf is None:
            await self.app(scope, receive, send)
            return
        secure = cookie_secure(scope)

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.append("set-cookie", f"{CSRF_COOKIE}={fresh_csrf}; Path=/; HttpOnly; SameSite=Lax"
                               + ("; Secure" if secure else ""))
            await send(message)

        await self.app(scope, receive, send_with_cookie)



def _filtered_metrics(send: Send, endpoints: frozenset[str]) -> Send:
    """A ``send`` that buffers the metrics response and drops other endpoints' samples."""
    start: Message | None = None
    chunks: list[bytes] = []

    async def filtered(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
            return
        if message["type"] != "http.response.body" or start is None:
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body = filter_metrics(b"".join(chunks), endpoints)
        headers = MutableHeaders(raw=list(start.get("headers", [])))
        headers["content-length"] = str(len(body))
        await send({**start, "headers": headers.raw})
        await send({"type": "http.response.body", "body": body})

    return filtered


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body; ``None`` when the client left or it is over ``MAX_CHECKED_BODY``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_CHECKED_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _form_field(scope: Scope, body: bytes, name: str) -> str | None:
    """A form field as ``read_form`` will give it to the route (the last value, UTF-8)."""
    if not _is_form(scope):
        return None
    values = parse_qs(body.decode("utf-8", "replace")).get(name)
    return values[-1] if values else None


def _csrf_ok(scope: Scope, body: bytes, expected: str | None) -> bool:
    """The token in the ``X-CSRF-Token`` header or the ``csrf`` form field is the session's."""
    given = Headers(scope=scope).get("x-csrf-token")
    if given is None:
        values = parse_qs(body.decode("latin-1")).get("csrf") if _is_form(scope) else None
        given = values[0] if values else None
    return expected is not None and given is not None and hmac.compare_digest(given, expected)


def _is_form(scope: Scope) -> bool:
    return Headers(scope=scope).get("content-type", "").startswith("application/x-www-form-urlencoded")
