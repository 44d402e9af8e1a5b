"""Accounts and roles on the real app, in process: every route × every role, CSRF, tokens, sessions.

The route table below must name every route of the app: a new route fails
``test_the_table_covers_every_route`` until someone decides who may use it, and
``test_every_route_is_protected_or_public`` fails for a route with no role that is not public.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from eventfiles import write_scalar_file
from tbhub.adapters.db.accounts import AccountStore
from tbhub.adapters.db.annotations import AnnotationStore
from tbhub.adapters.db.store import StateStore
from tbhub.adapters.db.tables import sessions
from tbhub.app.hub import Hub
from tbhub.app.services import Services
from tbhub.config import AuthConfig, Config, EndpointConfig, StateConfig
from tbhub.core.accounts import Role
from tbhub.interfaces.web import login as login_module
from tbhub.interfaces.web.app import create_app
from tbhub.interfaces.web.auth import CSRF_COOKIE, PUBLIC, SESSION_COOKIE

with warnings.catch_warnings():
    # Starlette 1.x asks for `httpx2` under its TestClient; with httpx it warns once, at import, and works.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

ROLES = ("anonymous", "viewer", "editor", "admin")
HTML = {"accept": "text/html,application/xhtml+xml"}


@dataclass
class Case:
    method: str
    path: str
    expect: tuple[int, int, int, int]  # anonymous, viewer, editor, admin
    form: Callable[[str], dict[str, str]] | None = None
    json: Callable[[str], dict[str, Any]] | None = None
    headers: dict[str, str] = field(default_factory=lambda: dict(HTML))


def _form(**fields: str) -> Callable[[str], dict[str, str]]:
    return lambda role: dict(fields)


PAGE = (302, 200, 200, 200)
API = (401, 200, 200, 200)
EDIT_FORM = (401, 403, 303, 303)
ADMIN_FORM = (401, 403, 403, 303)
RUN = {"endpoint": "lora", "run": "alpaca/r1"}

#: route name → a request to it and the status each role gets.
ROUTES: dict[str, Case] = {
    "index": Case("GET", "/", PAGE),
    "usage_page": Case("GET", "/usage", PAGE),
    "trends_page": Case("GET", "/trends", PAGE),
    "api_trends": Case("GET", "/api/trends", API),
    "endpoint_page": Case("GET", "/endpoints/lora", PAGE),
    "all_runs_page": Case("GET", "/runs", PAGE),
    "selected_in_tensorboard": Case("GET", "/explore/tensorboard?run=lora/alpaca/r1", (302, 303, 303, 303)),
    "compare_page": Case("GET", "/compare", PAGE),
    "alerts_page": Case("GET", "/alerts", PAGE),
    "run_page": Case("GET", "/runs/lora/alpaca/r1", PAGE),
    "bookmarks_page": Case("GET", "/bookmarks", PAGE),
    "admin_page": Case("GET", "/admin", (302, 403, 403, 200)),
    "api_endpoints": Case("GET", "/api/endpoints", API),
    "api_endpoint": Case("GET", "/api/endpoints/lora", API),
    "api_runs": Case("GET", "/api/endpoints/lora/runs", API),
    "api_compare": Case("GET", "/api/compare?tag=loss", API),
    "api_compare_series": Case("GET", "/api/compare/series?run=lora/alpaca/r1&tag=loss", API),
    "compare_export": Case("GET", "/compare/export?run=lora/alpaca/r1&format=csv", PAGE),
    "api_usage": Case("GET", "/api/usage", API),
    "api_usage_history": Case("GET", "/api/usage/history", API),
    "api_retention": Case("GET", "/api/retention", API),
    "api_alerts": Case("GET", "/api/alerts", API),
    "api_channels": Case("GET", "/api/channels", API),
    "api_notes": Case("GET", "/api/endpoints/lora/notes", API),
    "api_bookmarks": Case("GET", "/api/bookmarks", API),
    "api_me": Case("GET", "/api/me", API),
    "api_users": Case("GET", "/api/users", (401, 403, 403, 200)),
    "api_login_failures": Case("GET", "/api/login-failures", (401, 403, 403, 200)),
    "openapi": Case("GET", "/openapi.json", API),
    "swagger_ui_html": Case("GET", "/docs", PAGE),
    "favicon": Case("GET", "/favicon.ico", (200, 200, 200, 200)),
    "tensorboard_bare": Case("GET", "/tb/lora", (302, 301, 301, 301)),
    # No TensorBoard runs in process: a signed-in request reaches the proxy, which answers 502.
    "tensorboard_root": Case("GET", "/tb/lora/data/runs", (401, 502, 502, 502), headers={}),
    "healthz": Case("GET", "/healthz", (200, 200, 200, 200)),
    "readyz": Case("GET", "/readyz", (200, 200, 200, 200)),
    # Prometheus scrapes with a viewer API token; without one it gets 401, never the login page.
    "metrics": Case("GET", "/metrics", API, headers={}),
    "static": Case("GET", "/static/hub.css", (200, 200, 200, 200)),
    "login": Case("GET", "/login", (200, 303, 303, 303)),
    "login_submit": Case("POST", "/login", (401, 401, 401, 401), form=_form(name="nobody", password="wrong")),
    "setup_page": Case("GET", "/setup/not-a-link", (404, 404, 404, 404)),
    "setup_submit": Case("POST", "/setup/not-a-link", (404, 404, 404, 404),
                         form=_form(name="x", password="longenough", password2="longenough")),
    "admin_add_user": Case("POST", "/admin/users", ADMIN_FORM,
                           form=lambda role: {"name": f"new-{role}", "role": "viewer", "password": "longenough"}),
    "admin_create_token": Case("POST", "/admin/tokens", (401, 403, 403, 200), form=_form(name="t", role="viewer")),
    "admin_revoke_token": Case("POST", "/admin/tokens/999/revoke", ADMIN_FORM, form=_form()),
    "note_submit": Case("POST", "/notes", EDIT_FORM, form=_form(**RUN, text="a note")),
    "note_delete": Case("POST", "/notes/999/delete", EDIT_FORM, form=_form(**RUN)),
    "tag_submit": Case("POST", "/tags", EDIT_FORM, form=_form(**RUN, tag="baseline")),
    "pin_submit": Case("POST", "/pins", EDIT_FORM, form=_form(**RUN, pinned="true")),
    "bookmark_submit": Case("POST", "/bookmarks", EDIT_FORM,
                            form=lambda role: {"name": f"view-{role}", "endpoint": "lora", "run_filter": "r1"}),
    "bookmark_delete": Case("POST", "/bookmarks/nothing/delete", EDIT_FORM, form=_form()),
    "api_add_note": Case("POST", "/api/endpoints/lora/notes", (401, 403, 201, 201),
                         json=lambda role: {"run": "alpaca/r1", "text": f"from {role}"}, headers={}),
    "api_tag": Case("POST", "/api/endpoints/lora/tags", (401, 403, 200, 200),
                    json=lambda role: {"run": "alpaca/r1", "tag": role}, headers={}),
    "api_pin": Case("POST", "/api/endpoints/lora/pins", (401, 403, 200, 200),
                    json=lambda role: {"run": "alpaca/r1"}, headers={}),
    "api_add_bookmark": Case("POST", "/api/bookmarks", (401, 403, 201, 201),
                             json=lambda role: {"name": f"api-{role}", "page": "/compare"}, headers={}),
    "api_remove_bookmark": Case("DELETE", "/api/bookmarks/nothing", (401, 403, 404, 404), headers={}),
    # Note 1 is the editor's, from note_submit above.
    "note_edit": Case("POST", "/notes/1/edit", EDIT_FORM, form=_form(**RUN, text="edited")),
    "api_edit_note": Case("PATCH", "/api/endpoints/lora/notes/1", (401, 403, 200, 200),
                          json=lambda role: {"text": f"edited by {role}"}, headers={}),
    # Admin actions: a page, a preview, and no deletion without the confirmation step (400).
    "clean_page": Case("GET", "/endpoints/lora/clean", (302, 403, 403, 200)),
    "clean_preview": Case("POST", "/endpoints/lora/clean/preview", (401, 403, 403, 200),
                          form=_form(run="alpaca/r1", mode="delete")),
    "clean_execute": Case("POST", "/endpoints/lora/clean/execute", (401, 403, 403, 400),
                          form=_form(run="alpaca/r1", mode="delete")),
    "api_clean": Case("POST", "/api/endpoints/lora/clean", (401, 403, 403, 200),
                      json=lambda role: {"runs": ["alpaca/r1"]}, headers={}),
    "api_history": Case("GET", "/api/history", API),
    "retention_page": Case("GET", "/admin/retention", (302, 403, 403, 200)),
    "retention_apply": Case("POST", "/admin/retention/apply", (401, 403, 403, 400), form=_form()),
    "api_retention_plan": Case("GET", "/api/retention/plan", (401, 403, 403, 200)),
    "api_retention_apply": Case("POST", "/api/retention/apply", (401, 403, 403, 200), json=lambda role: {},
                                headers={}),
    # Alert rules: viewers read them, editors override them.
    "rules_page": Case("GET", "/alerts/rules", PAGE),
    "api_alert_rules": Case("GET", "/api/alert-rules", API),
    "rule_submit": Case("POST", "/alerts/rules", EDIT_FORM, form=_form(endpoint="lora", stalled_after="5m")),
    "rule_delete": Case("POST", "/alerts/rules/delete", EDIT_FORM, form=_form(endpoint="lora", dataset="x*")),
    "api_set_alert_rule": Case("PUT", "/api/endpoints/lora/alert-rules", (401, 403, 200, 200),
                               json=lambda role: {"dataset": role, "rule": {"max_steps": 100}}, headers={}),
    "api_remove_alert_rule": Case("DELETE", "/api/endpoints/lora/alert-rules?dataset=none", (401, 403, 404, 404),
                                  headers={}),
    "admin_grant": Case("POST", "/admin/grants", ADMIN_FORM, form=_form(name="viewer", endpoint="lora", role="editor")),
    "admin_revoke_grant": Case("POST", "/admin/grants/revoke", ADMIN_FORM, form=_form(name="viewer", endpoint="lora")),
    # Last: it ends the session.
    "logout": Case("POST", "/logout", (401, 303, 303, 303), form=_form()),
}


def _config(tmp_path: Path, auth: AuthConfig | None = None) -> Config:
    root = tmp_path / "logs"
    write_scalar_file(root / "alpaca" / "r1", range(20))
    return Config(
        state=StateConfig(dir=tmp_path / "state"),
        endpoints={"lora": EndpointConfig(logdir=str(root))},
        auth=auth or AuthConfig(),
    )


def _app(tmp_path: Path, state: StateStore, auth: AuthConfig | None = None) -> FastAPI:
    hub = Hub(Services(_config(tmp_path, auth), state=state), None)
    hub.refresh("lora")
    return create_app(hub, scan_interval=3600, job_interval=3600, alerts=False)


@pytest.fixture
def app(tmp_path: Path, state: StateStore) -> FastAPI:
    return _app(tmp_path, state)


@pytest.fixture(autouse=True)
def fast_failed_logins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(login_module, "FAILED_LOGIN_DELAY_S", 0.0)


def _client(app: FastAPI, accounts: AccountStore, role: str) -> tuple[TestClient, str]:
    """A client signed in as ``role`` (a session cookie) and the CSRF token its forms carry."""
    client = TestClient(app, follow_redirects=False)
    if role == "anonymous":
        client.get("/login")
        return client, client.cookies[CSRF_COOKIE]
    accounts.add_user(role, Role.parse(role), "password-" + role)
    user = accounts.authenticate(role, "password-" + role)
    assert user is not None
    token, session = accounts.start_session(user, 3600)
    client.cookies.set(SESSION_COOKIE, token)
    return client, session.csrf


def _request(client: TestClient, case: Case, role: str, csrf: str) -> httpx.Response:
    headers = dict(case.headers)
    if case.form is not None:
        return client.request(case.method, case.path, data={**case.form(role), "csrf": csrf}, headers=headers)
    if case.method != "GET":
        headers["x-csrf-token"] = csrf
    return client.request(case.method, case.path, json=case.json(role) if case.json else None, headers=headers)


def test_every_route_for_every_role(app: FastAPI, state: StateStore) -> None:
    accounts = AccountStore(state.engine)
    with TestClient(app):  # the lifespan: the proxy's client
        got: dict[str, list[int]] = {}
        for i, role in enumerate(ROLES):
            client, csrf = _client(app, accounts, role)
            with client:
                for name, case in ROUTES.items():
                    got.setdefault(name, [0] * 4)[i] = _request(client, case, role, csrf).status_code
    wrong = {name: (tuple(codes), ROUTES[name].expect) for name, codes in got.items()
             if tuple(codes) != ROUTES[name].expect}
    assert not wrong, "route: (got, expected) for anonymous, viewer, editor, admin: " + repr(wrong)


def test_the_table_covers_every_route(app: FastAPI) -> None:
    names = {getattr(route, "name", None) for route in app.routes}
    assert names == set(ROUTES), f"add these routes to ROUTES: {sorted(names - set(ROUTES))}"


def test_every_route_is_protected_or_public(app: FastAPI) -> None:
    table = app.state.access.roles
    unprotected = [getattr(r, "path", r) for r in app.routes if getattr(r, "name", None) not in PUBLIC | set(table)]
    assert not unprotected, f"routes with no role that are not public: {unprotected}"
    assert {getattr(r, "name", None) for r in app.routes} >= PUBLIC  # no stale public names


def test_anonymous_requests_through_the_tensorboard_proxy_are_refused(app: FastAPI) -> None:
    with TestClient(app, follow_redirects=False) as client:
        page = client.get("/tb/lora/", headers=HTML)
        assert page.status_code == 302 and page.headers["location"] == "/login?next=%2Ftb%2Flora%2F"
        for method in ("GET", "POST", "PUT", "DELETE"):
            data = client.request(method, "/tb/lora/data/plugin/scalars/scalars?run=x&tag=loss")
            assert data.status_code == 401 and data.headers["www-authenticate"] == "Bearer"
        assert client.get("/tb/lora/data/environment").status_code == 401


def test_csrf_is_required_on_every_form_and_cookie_api_call(app: FastAPI, state: StateStore) -> None:
    accounts = AccountStore(state.engine)
    client, csrf = _client(app, accounts, "editor")
    with client:
        form = {"endpoint": "lora", "run": "alpaca/r1", "text": "hi"}
        assert client.post("/notes", data=form).status_code == 403
        assert client.post("/notes", data={**form, "csrf": "forged"}).status_code == 403
        assert client.post("/notes", data={**form, "csrf": csrf}).status_code == 303
        body = {"run": "alpaca/r1", "text": "hi"}
        assert client.post("/api/endpoints/lora/notes", json=body).status_code == 403
        assert client.post("/api/endpoints/lora/notes", json=body, headers={"x-csrf-token": csrf}).status_code == 201
        # Another user's token does not do: the token belongs to the session.
        _, other = _client(app, accounts, "admin")
        assert client.post("/notes", data={**form, "csrf": other}).status_code == 403
    # Logging in needs the pre-session token from the login page (double submit).
    anonymous = TestClient(app, follow_redirects=False)
    with anonymous:
        assert anonymous.post("/login", data={"name": "editor", "password": "password-editor"}).status_code == 403
        anonymous.get("/login")
        token = anonymous.cookies[CSRF_COOKIE]
        ok = anonymous.post("/login", data={"name": "editor", "password": "password-editor", "csrf": token})
        assert ok.status_code == 303
        cookie = ok.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
        assert anonymous.get("/api/me").json() == {"name": "editor", "role": "editor", "via": "session"}


def test_session_cookie_is_secure_behind_tls(app: FastAPI, state: StateStore) -> None:
    AccountStore(state.engine).add_user("ada", Role.VIEWER, "password-ada")
    with TestClient(app, follow_redirects=False) as client:
        client.get("/login")
        headers = {"x-forwarded-proto": "https"}
        form = {"name": "ada", "password": "password-ada", "csrf": client.cookies[CSRF_COOKIE]}
        response = client.post("/login", data=form, headers=headers)
        assert response.status_code == 303 and "Secure" in response.headers["set-cookie"]


def test_expired_sessions_are_refused(app: FastAPI, state: StateStore) -> None:
    accounts = AccountStore(state.engine)
    client, _ = _client(app, accounts, "viewer")
    with client:
        assert client.get("/api/me").status_code == 200
        with state.engine.begin() as connection:
            connection.execute(update(sessions).values(expires_at=time.time() - 1))
        assert client.get("/api/me").status_code == 401
        assert client.get("/", headers=HTML).status_code == 302


def test_api_tokens_authenticate_without_csrf_until_revoked(app: FastAPI, state: StateStore) -> None:
    accounts = AccountStore(state.engine)
    secret, token = accounts.create_token("ci", Role.EDITOR, "test")
    with TestClient(app) as client:
        bearer = {"authorization": f"Bearer {secret}"}
        response = client.post("/api/endpoints/lora/notes", json={"run": "alpaca/r1", "text": "from CI"},
                               headers=bearer)
        assert response.status_code == 201 and response.json()["author"] == "token:ci"
        assert client.get("/api/users", headers=bearer).status_code == 403  # an editor token
        accounts.revoke_token(token.id)
        assert client.get("/api/endpoints", headers=bearer).status_code == 401
        assert client.get("/api/endpoints", headers={"authorization": "Bearer tbh_made-up"}).status_code == 401


def test_login_page_says_ask_the_admin_when_there_is_none(app: FastAPI, state: StateStore) -> None:
    with TestClient(app) as client:
        assert "Ask the admin" in client.get("/login").text
        AccountStore(state.engine).add_user("root", Role.ADMIN, "password-root")
        assert "Ask the admin" not in client.get("/login").text


def test_setup_link_creates_the_first_admin_once(app: FastAPI, state: StateStore) -> None:
    accounts = AccountStore(state.engine)
    link = accounts.create_setup_token()
    with TestClient(app, follow_redirects=False) as client:
        page = client.get(f"/setup/{link}")
        assert page.status_code == 200
        form = {"name": "root", "password": "long-password", "password2": "long-password",
                "csrf": client.cookies[CSRF_COOKIE]}
        assert client.post(f"/setup/{link}", data={**form, "password2": "other"}).status_code == 400
        created = client.post(f"/setup/{link}", data=form)
        assert created.status_code == 303 and SESSION_COOKIE in created.headers["set-cookie"]
        assert client.get("/api/me").json()["role"] == "admin"
    with TestClient(app, follow_redirects=False) as again:
        assert again.get(f"/setup/{link}").status_code == 404
        form["csrf"] = again.cookies[CSRF_COOKIE]
        assert again.post(f"/setup/{link}", data={**form, "name": "mallory"}).status_code == 404
    assert [u.name for u in accounts.users()] == ["root"]


def test_login_redirects_only_within_the_hub(app: FastAPI, state: StateStore) -> None:
    AccountStore(state.engine).add_user("ada", Role.VIEWER, "password-ada")
    for target, expected in (("/endpoints/lora", "/endpoints/lora"), ("//evil.example/", "/"),
                             ("https://evil.example/", "/")):
        with TestClient(app, follow_redirects=False) as client:
            client.get("/login")
            form = {"name": "ada", "password": "password-ada", "next": target, "csrf": client.cookies[CSRF_COOKIE]}
            assert client.post("/login", data=form).headers["location"] == expected


def test_no_auth_mode_lets_everyone_in_but_still_checks_csrf(tmp_path: Path, state: StateStore) -> None:
    app = _app(tmp_path, state, AuthConfig(mode="none"))
    with TestClient(app, follow_redirects=False) as client:
        assert client.get("/", headers=HTML).status_code == 200
        assert client.get("/api/users").status_code == 200
        form = {"endpoint": "lora", "run": "alpaca/r1", "text": "local"}
        assert client.post("/notes", data=form).status_code == 403
        assert client.post("/notes", data={**form, "csrf": client.cookies[CSRF_COOKIE]}).status_code == 303


def test_trusted_proxy_header_only_from_configured_addresses(tmp_path: Path, state: StateStore) -> None:
    app = _app(tmp_path, state, AuthConfig(trusted_proxies=["10.0.0.0/8"], proxy_role="editor"))
    asyncio.run(_proxied(app))


async def _proxied(app: FastAPI) -> None:
    header = {"x-auth-request-email": "ada@example.com"}
    trusted = httpx.ASGITransport(app=app, client=("10.1.2.3", 4000))
    async with httpx.AsyncClient(transport=trusted, base_url="http://hub") as client:
        me = await client.get("/api/me", headers=header)
        assert me.json() == {"name": "ada@example.com", "role": "editor", "via": "proxy"}
        assert (await client.get("/api/me")).status_code == 401
    other = httpx.ASGITransport(app=app, client=("192.168.1.9", 4000))
    async with httpx.AsyncClient(transport=other, base_url="http://hub") as client:
        assert (await client.get("/api/me", headers=header)).status_code == 401


def test_a_script_tag_in_a_note_is_text(app: FastAPI, state: StateStore) -> None:
    AnnotationStore(state.engine).add_note("lora", "alpaca/r1", "<script>alert(1)</script> **bold** `a<b`", "ada")
    client, _ = _client(app, AccountStore(state.engine), "viewer")
    with client:
        page = client.get("/runs/lora/alpaca/r1").text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; <strong>bold</strong> <code>a&lt;b</code>" in page


def test_the_proxy_keeps_hub_credentials_from_tensorboard() -> None:
    from tbhub.interfaces.web.proxy import without_hub_credentials

    headers = [("Authorization", "Bearer tbh_x"), ("Cookie", "tbhub_session=s; theme=dark; tbhub_csrf=c"),
               ("Accept", "*/*")]
    assert without_hub_credentials(headers) == [("Cookie", "theme=dark"), ("Accept", "*/*")]
    assert without_hub_credentials([("cookie", "tbhub_session=s")]) == []
