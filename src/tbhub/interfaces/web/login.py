"""Logging in and out, the first admin's setup link, and the admin page (users and API tokens).

Failed logins are throttled per account, per client address and per pair (``tbhub.core.throttle``;
counted in the state database, so every replica agrees): a locked try gets 429 with ``Retry-After``
before any password is hashed. Hashing runs in worker threads, at most ``HASHING_THREADS`` at once
and ``HASHING_QUEUE`` waiting, so a flood of logins cannot take every core or thread from the pages.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from tbhub.app.hub import Hub
from tbhub.app.services import AccountStore
from tbhub.core.accounts import ROLES, Role
from tbhub.errors import UsageError
from tbhub.interfaces.web.auth import (
    SESSION_COOKIE,
    RoleTable,
    cookie_secure,
    current_user,
    read_form,
    read_form_lists,
)

__all__ = ["add_login_routes", "safe_next"]

log = logging.getLogger("tbhub.login")
#: A failed login waits this long: guessing passwords over HTTP gets slow.
FAILED_LOGIN_DELAY_S = 1.0
#: scrypt takes about 50 ms of one core: half the cores at most, so pages keep the rest.
HASHING_THREADS = max(1, (os.cpu_count() or 2) // 2)
#: Logins waiting for a hashing thread beyond this are turned away at once (429).
HASHING_QUEUE = 64


def safe_next(target: str | None) -> str:
    """Where to go after login: a path on this hub only (no ``//host`` or ``https://``)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def add_login_routes(
    app: FastAPI,
    hub: Hub,
    accounts: AccountStore,
    templates: Jinja2Templates,
    access: RoleTable,
    context: Callable[[Request], dict[str, Any]],
) -> None:
    hashing = asyncio.Semaphore(HASHING_THREADS)
    queued = 0

    def login_form(request: Request, error: str | None = None, status: int = 200,
                   next_url: str = "/", headers: dict[str, str] | None = None) -> Response:
        return templates.TemplateResponse(
            request,
            "login.html",
            {**context(request), "error": error, "next": safe_next(next_url), "has_admin": accounts.has_admin()},
            status_code=status, headers=headers,
        )

    def too_soon(request: Request, next_url: str, wait_s: float, why: str) -> Response:
        seconds = max(1, math.ceil(wait_s))
        return login_form(request, f"{why}: try again in {seconds} s", 429, next_url, {"retry-after": str(seconds)})

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login(request: Request, next: str = "/") -> Response:
        if not hub.config.auth.enabled or current_user(request) is not None:
            return RedirectResponse(safe_next(next), status_code=303)
        return login_form(request, next_url=next)

    @app.post("/login", response_class=HTMLResponse, include_in_schema=False)
    async def login_submit(request: Request) -> Response:
        nonlocal queued
        form = await read_form(request)
        name, password, next = form.get("name", ""), form.get("password", ""), form.get("next", "/")
        address = request.client.host if request.client else "unknown"
        throttle = accounts.throttle
        if (wait := await asyncio.to_thread(throttle.wait, name, address)) > 0:
            log.warning("login as %r from %s refused: too many failures, locked for %.0f s", name, address, wait)
            return too_soon(request, next, wait, "too many failed logins")
        if queued >= HASHING_QUEUE:
            log.warning("login as %r from %s turned away: %d logins waiting already", name, address, queued)
            return too_soon(request, next, 1, "too many logins at once")
        queued += 1
        try:
            async with hashing:
                # Again: failures recorded while this one waited may have locked it. The failure is recorded
                # before the next waiting login checks, so a burst gets no more tries than one by one.
                wait = await asyncio.to_thread(throttle.wait, name, address)
                user = None if wait > 0 else await asyncio.to_thread(accounts.authenticate, name, password)
                if wait == 0 and user is None:
                    failures, locked = await asyncio.to_thread(throttle.failed, name, address)
        finally:
            queued -= 1
        if wait > 0:
            return too_soon(request, next, wait, "too many failed logins")
        if user is None:
            log.warning("failed login as %r from %s (%d in a row from there%s)", name, address, failures,
                        f"; locked for {locked:.0f} s" if locked else "")
            await asyncio.sleep(FAILED_LOGIN_DELAY_S)
            return login_form(request, "wrong name or password", 401, next)
        await asyncio.to_thread(throttle.succeeded, name, address)
        token, _ = await asyncio.to_thread(accounts.start_session, user, hub.config.auth.session_seconds)
        response = RedirectResponse(safe_next(next), status_code=303)
        _set_session_cookie(request, response, token, hub.config.auth.session_seconds)
        return response

    @app.post("/logout", include_in_schema=False)
    @access(Role.VIEWER)
    def logout(request: Request) -> Response:
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            accounts.end_session(token)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.get("/setup/{token}", response_class=HTMLResponse, include_in_schema=False)
    def setup_page(request: Request, token: str) -> Response:
        valid = accounts.setup_token_valid(token)
        return templates.TemplateResponse(
            request, "setup.html", {**context(request), "token": token, "valid": valid, "error": None},
            status_code=200 if valid else 404,
        )

    @app.post("/setup/{token}", response_class=HTMLResponse, include_in_schema=False)
    async def setup_submit(request: Request, token: str) -> Response:
        form = await read_form(request)
        name, password, password2 = form.get("name", ""), form.get("password", ""), form.get("password2", "")
        def again(error: str, status: int) -> Response:
            return templates.TemplateResponse(
                request, "setup.html",
                {**context(request), "token": token, "valid": status != 404, "error": error}, status_code=status,
            )

        if password != password2:
            return again("the passwords differ", 400)
        if len(password) < 8:
            return again("use at least 8 characters", 400)
        try:
            await asyncio.to_thread(accounts.use_setup_token, token, name, password)
        except UsageError as error:
            return again(error.message, 404 if "setup link" in error.message else 400)
        user = await asyncio.to_thread(accounts.authenticate, name, password)
        assert user is not None
        session, _ = await asyncio.to_thread(accounts.start_session, user, hub.config.auth.session_seconds)
        response = RedirectResponse("/", status_code=303)
        _set_session_cookie(request, response, session, hub.config.auth.session_seconds)
        return response

    # -- admin: users and tokens ----------------------------------------------------------------
    def admin_context(request: Request, new_token: str | None = None, error: str | None = None) -> dict[str, Any]:
        return {**context(request), "users": accounts.users(), "tokens": accounts.tokens(), "roles": ROLES,
                "endpoints": list(hub.specs), "grants": accounts.grants(), "new_token": new_token, "error": error,
                "failed_logins": accounts.throttle.recent()}

    @app.get("/admin", response_class=HTMLResponse, include_in_schema=False)
    @access(Role.ADMIN)
    def admin_page(request: Request) -> Response:
        return templates.TemplateResponse(request, "admin.html", admin_context(request))

    @app.post("/admin/users", response_class=HTMLResponse, include_in_schema=False)
    @access(Role.ADMIN)
    async def admin_add_user(request: Request) -> Response:
        form = await read_form(request)
        password = form.get("password", "")
        try:
            if len(password) < 8:
                raise UsageError("use at least 8 characters for the password")
            await asyncio.to_thread(accounts.add_user, form.get("name", ""), _role(form.get("role", "")), password)
        except UsageError as error:
            return templates.TemplateResponse(request, "admin.html", admin_context(request, error=error.message),
                                              status_code=400)
        return RedirectResponse("/admin", status_code=303)

    @app.post("/admin/tokens", response_class=HTMLResponse, include_in_schema=False)
    @access(Role.ADMIN)
    async def admin_create_token(request: Request) -> Response:
        fields = await read_form_lists(request)
        form = {k: v[-1] for k, v in fields.items()}
        user = current_user(request)
        scope = [e for e in fields.get("endpoints", []) if e] or None
        try:
            for endpoint in scope or []:
                hub.spec(endpoint)
            secret, _ = await asyncio.to_thread(
                accounts.create_token, form.get("name", ""), _role(form.get("role", "")),
                user.name if user else "web", endpoints=scope, creator=user,
            )
        except UsageError as error:
            return templates.TemplateResponse(request, "admin.html", admin_context(request, error=error.message),
                                              status_code=error.http_status)
        # Shown once, on this page; only its hash is kept.
        return templates.TemplateResponse(request, "admin.html", admin_context(request, new_token=secret))

    @app.post("/admin/grants", response_class=HTMLResponse, include_in_schema=False)
    @access(Role.ADMIN)
    async def admin_grant(request: Request) -> Response:
        form = await read_form(request)
        user = current_user(request)
        try:
            hub.spec(form.get("endpoint", ""))
            await asyncio.to_thread(accounts.grant, form.get("name", ""), form.get("endpoint", ""),
                                    _role(form.get("role", "")), user.name if user else "web")
        except UsageError as error:
            return templates.TemplateResponse(request, "admin.html", admin_context(request, error=error.message),
                                              status_code=error.http_status)
        return RedirectResponse("/admin", status_code=303)

    @app.post("/admin/grants/revoke", include_in_schema=False)
    @access(Role.ADMIN)
    async def admin_revoke_grant(request: Request) -> Response:
        form = await read_form(request)
        await asyncio.to_thread(accounts.revoke_grant, form.get("name", ""), form.get("endpoint", ""))
        return RedirectResponse("/admin", status_code=303)

    @app.post("/admin/tokens/{token_id}/revoke", include_in_schema=False)
    @access(Role.ADMIN)
    def admin_revoke_token(token_id: int) -> Response:
        accounts.revoke_token(token_id)
        return RedirectResponse("/admin", status_code=303)

    @app.get("/api/users", tags=["accounts"])
    @access(Role.ADMIN)
    def api_users() -> list[dict[str, Any]]:
        """Hub accounts (admin only)."""
        grants: dict[str, dict[str, str]] = {}
        for g in accounts.grants():
            grants.setdefault(g.user, {})[g.endpoint] = str(g.role)
        return [{"id": u.id, "name": u.name, "role": str(u.role), "endpoints": grants.get(u.name, {}),
                 "created_at": u.created_at, "disabled": u.disabled} for u in accounts.users()]

    @app.get("/api/login-failures", tags=["accounts"])
    @access(Role.ADMIN)
    def api_login_failures() -> list[dict[str, Any]]:
        """Failed logins of the last 15 minutes, per account, client address and pair, and until when
        each is locked (admin only)."""
        return [{"kind": f.kind, "subject": f.subject, "failures": f.failures, "last_at": f.last_at,
                 "locked_until": f.locked_until} for f in accounts.throttle.recent()]

    @app.get("/api/me", tags=["accounts"])
    @access(Role.VIEWER)
    def api_me(request: Request) -> JSONResponse:
        """Who this request acts as, with which role, and how it authenticated."""
        user = current_user(request)
        assert user is not None
        me: dict[str, Any] = {"name": user.name, "role": str(user.role), "via": user.via}
        if user.endpoints is not None:
            me["endpoints"] = sorted(user.endpoints)
        return JSONResponse(me)


def _role(name: str) -> Role:
    try:
        return Role.parse(name)
    except ValueError as error:
        raise UsageError(str(error)) from None


def _set_session_cookie(request: Request, response: Response, token: str, max_age: float) -> None:
    response.set_cookie(
        SESSION_COOKIE, token, max_age=int(max_age), path="/", httponly=True, samesite="lax",
        secure=cookie_secure(request.scope),
    )
