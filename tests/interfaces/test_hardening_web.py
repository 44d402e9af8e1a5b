"""Hardening of the hub app itself, in process: bookmarks that leave the hub, forms that are not UTF-8,
the request-body limit, security headers and the Host header (issue 15: 13, 14, 18).

The real app over a real log root and SQLite state database, driven through httpx's ASGI transport
(a streamed body reaches the app chunk by chunk, as from a socket).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import insert

from eventfiles import write_scalar_file
from tbhub.adapters.db.accounts import AccountStore
from tbhub.adapters.db.store import StateStore
from tbhub.adapters.db.tables import bookmarks
from tbhub.app.hub import Hub
from tbhub.app.services import Services
from tbhub.config import Config, EndpointConfig, ServerConfig, StateConfig
from tbhub.core.accounts import Role
from tbhub.core.bookmarks import stays_on_hub
from tbhub.interfaces.web.app import create_app
from tbhub.interfaces.web.auth import SESSION_COOKIE
from tbhub.interfaces.web.hardening import MAX_BODY

#: Each was accepted and, as a link, took the browser to evil.example (issue 15: 13).
OFF_HUB = [
    "/\\evil.example/phish",
    "/\t/evil.example/phish",
    "/\n/evil.example/phish",
    "/\r\n/evil.example",
    "/\\/evil.example",
    "/\\\\evil.example",
    "//evil.example",
    " //evil.example",
    "/ \t/evil.example",
    "https://evil.example/",
    "javascript:alert(1)",
]
ON_HUB = ["/", "/compare?tags=loss", "/endpoints/lora", "/compare?tags=a\\b", "/%5Cevil.example", "/x#y"]


@pytest.fixture
def app(tmp_path: Path, state: StateStore) -> FastAPI:
    root = tmp_path / "logs"
    write_scalar_file(root / "chat" / "old", range(30))
    cfg = Config(state=StateConfig(dir=tmp_path / "state"), endpoints={"lora": EndpointConfig(logdir=str(root))})
    hub = Hub(Services(cfg, state=state), None)
    hub.refresh("lora")
    return create_app(hub, scan_interval=3600, job_interval=3600, alerts=False)


@pytest.fixture
def client(app: FastAPI) -> Iterator[httpx.Client]:
    """A synchronous client over the ASGI app (httpx runs the coroutine per request)."""

    class Sync(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            async def go() -> httpx.Response:
                response = await httpx.ASGITransport(app=app).handle_async_request(request)
                body = await response.aread()
                return httpx.Response(response.status_code, headers=response.headers, content=body)

            return asyncio.run(go())

    with httpx.Client(transport=Sync(), base_url="http://127.0.0.1:6005") as c:
        yield c


def token(state: StateStore, role: Role = Role.EDITOR) -> dict[str, str]:
    secret, _ = AccountStore(state.engine).create_token("bot", role, "test")
    return {"authorization": f"Bearer {secret}"}


def session(client: httpx.Client, state: StateStore, role: str = "editor") -> str:
    """Sign ``client`` in as a user named ``role``; the session's CSRF token."""
    accounts = AccountStore(state.engine)
    accounts.add_user(role, Role.parse(role), "password-" + role)
    user = accounts.authenticate(role, "password-" + role)
    assert user is not None
    cookie, row = accounts.start_session(user, 3600)
    client.cookies.set(SESSION_COOKIE, cookie)
    return row.csrf


FORM = {"content-type": "application/x-www-form-urlencoded"}


# -- 13: bookmarks stay on the hub -----------------------------------------------------------------


@pytest.mark.parametrize("page", OFF_HUB)
def test_bookmarked_pages_that_leave_the_hub_are_refused(client: httpx.Client, state: StateStore, page: str) -> None:
    assert not stays_on_hub(page)
    answer = client.post("/api/bookmarks", json={"name": "phish", "page": page}, headers=token(state))
    assert answer.status_code == 400 and "path on the hub" in answer.json()["error"]
    csrf = session(client, state)
    form = client.post("/bookmarks", data={"name": "phish", "page": page, "csrf": csrf})
    assert form.status_code == 400
    assert client.get("/api/bookmarks", headers=token(state, Role.VIEWER)).json() == []


def test_bookmarked_hub_pages_still_work(client: httpx.Client, state: StateStore) -> None:
    for i, page in enumerate(ON_HUB):
        assert stays_on_hub(page), page
        answer = client.post("/api/bookmarks", json={"name": f"b{i}", "page": page}, headers=token(state))
        assert answer.status_code == 201 and answer.json()["url"] == page


def test_a_stored_bookmark_that_leaves_the_hub_is_not_shown(client: httpx.Client, state: StateStore) -> None:
    # Saved before the check was tightened: the list must neither link it nor fail.
    with state.engine.begin() as connection:
        connection.execute(insert(bookmarks).values(name="old", owner="ada", description="", page="/\\evil.example/x",
                                                    dashboard="scalars", run_filter="", tag_filter="", created_at=0.0))
    session(client, state, "viewer")
    page = client.get("/bookmarks", headers={"accept": "text/html"})
    assert page.status_code == 200 and "evil.example" not in page.text


# -- 14: forms that are not UTF-8, one body limit ---------------------------------------------------


@pytest.mark.parametrize("body", [b"name=ada&password=\xff\xfe", b"name=ada&password=%ff%fe"])
def test_a_login_form_that_is_not_utf8_is_a_400(client: httpx.Client, body: bytes) -> None:
    client.get("/login")  # the CSRF cookie a browser gets with the form
    csrf = client.cookies["tbhub_csrf"]
    answer = client.post("/login", content=body + f"&csrf={csrf}".encode(), headers=FORM)
    assert answer.status_code == 400 and "UTF-8" in answer.json()["error"]


@pytest.mark.parametrize(("path", "fields"), [
    ("/notes", b"endpoint=lora&run=chat/old&text=caf\xe9"),
    ("/bookmarks", b"name=caf\xe9&page=/compare"),
    ("/tags", b"endpoint=lora&run=chat/old&tag=caf\xe9"),
])
def test_editor_forms_that_are_not_utf8_are_a_400(
    client: httpx.Client, state: StateStore, path: str, fields: bytes
) -> None:
    csrf = session(client, state)
    body = fields + b"&csrf=" + csrf.encode()
    answer = client.post(path, content=body, headers=FORM)
    assert answer.status_code == 400 and "UTF-8" in answer.json()["error"], answer.text
    answer = client.post(path, content=body.replace(b"\xe9", b"%e9"), headers=FORM)  # a Latin-1 escape
    assert answer.status_code == 400 and "UTF-8" in answer.json()["error"], answer.text
    good = client.post(path, content=body.replace(b"caf\xe9", b"cafe"), headers=FORM)
    assert good.status_code == 303, good.text


def test_every_request_body_has_one_limit(client: httpx.Client, state: StateStore) -> None:
    # A token request skips the CSRF check, which was the only code that bounded a body.
    big = json.dumps({"name": "x", "page": "/", "description": "d" * MAX_BODY}).encode()
    answer = client.post("/api/bookmarks", content=big, headers={**token(state), "content-type": "application/json"})
    assert answer.status_code == 413 and "limit" in answer.json()["error"]
    csrf = session(client, state)
    form = client.post("/notes", data={"endpoint": "lora", "run": "chat/old", "text": "x" * MAX_BODY, "csrf": csrf})
    assert form.status_code == 413
    small = client.post("/api/bookmarks", json={"name": "x", "page": "/", "description": "d" * 1000},
                        headers=token(state))
    assert small.status_code == 201


def test_a_streamed_body_is_cut_off_at_the_limit_not_buffered(app: FastAPI, state: StateStore) -> None:
    """100 MB sent chunked (no Content-Length): answered 413 after about the limit, the rest never read."""
    pulled = 0

    async def hundred_megabytes() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(100):
            pulled += 1
            yield b"x" * (1 << 20)

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as c:
            return await c.post("/api/bookmarks", content=hundred_megabytes(),
                                headers={**token(state), "content-type": "application/json"})

    answer = asyncio.run(go())
    assert answer.status_code == 413
    assert pulled <= 2  # of 100 chunks of 1 MiB


# -- 18: headers, and no Host header in links -------------------------------------------------------


def test_hub_pages_and_api_send_security_headers(client: httpx.Client) -> None:
    for path in ("/login", "/api/endpoints", "/static/hub.css", "/healthz", "/nowhere"):
        answer = client.get(path, headers={"accept": "text/html"})
        headers = answer.headers
        assert headers["x-frame-options"] == "DENY", path
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["referrer-policy"] == "same-origin", path
        csp = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self';" in csp, path
        assert "unsafe-inline" not in csp, path


def test_links_never_come_from_the_host_header(tmp_path: Path, state: StateStore, client: httpx.Client) -> None:
    evil = {"host": "evil.example:8443", "accept": "text/html"}
    (endpoint,) = client.get("/api/endpoints", headers={**evil, **token(state, Role.VIEWER)}).json()
    assert "evil.example" not in json.dumps(endpoint)
    assert endpoint["url"] == "/tb/lora/"
    assert endpoint["direct_url"].startswith("http://127.0.0.1:")
    session(client, state, "viewer")
    page = client.get("/", headers=evil)
    assert page.status_code == 200 and "/static/hub.css" in page.text and "evil.example" not in page.text
    # Starlette's slash redirect wrote the Host header into an absolute Location.
    for path, location in (("/bookmarks/", "/bookmarks"), ("/api/endpoints/?x=1", "/api/endpoints?x=1")):
        moved = client.get(path, headers=evil)
        assert moved.status_code == 307 and moved.headers["location"] == location
    # With server.public_url, links are absolute on it.
    root = tmp_path / "logs"
    cfg = Config(state=StateConfig(dir=tmp_path / "state"), endpoints={"lora": EndpointConfig(logdir=str(root))},
                 server=ServerConfig(public_url="https://hub.example/"))
    hub = Hub(Services(cfg, state=state), None)
    app = create_app(hub, scan_interval=3600, job_interval=3600, alerts=False)

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://evil.example") as c:
            return await c.get("/api/endpoints", headers=token(state, Role.VIEWER))

    (public,) = asyncio.run(go()).json()
    assert public["url"] == "https://hub.example/tb/lora/"
    assert public["direct_url"].startswith("http://hub.example:") and public["direct_url"].endswith("/tb/lora/")


@pytest.mark.parametrize(("location", "host", "expected"), [
    ("http://evil.example/login", "evil.example", "/login"),
    ("http://evil.example//elsewhere.example/x?a=1", "evil.example", "/elsewhere.example/x?a=1"),
    ("http://evil.example/\\elsewhere.example", "evil.example", "/elsewhere.example"),
    ("/tb/lora/", "evil.example", "/tb/lora/"),
    ("https://sso.example/auth", "hub.example", "https://sso.example/auth"),
])
def test_a_redirect_to_the_hub_itself_is_a_path_that_stays_on_it(location: str, host: str, expected: str) -> None:
    from tbhub.interfaces.web.hardening import own_location

    assert own_location(location, host) == expected
