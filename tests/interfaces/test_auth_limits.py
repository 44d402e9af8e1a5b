"""Issue 15, in process: forwarded addresses (1), setup links (2), login throttling (6) and API tokens
limited to endpoints (8). ``test_auth_serve.py`` checks the same through a real ``tbhub serve``."""

from __future__ import annotations

import asyncio
import io
import time
import warnings
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from eventfiles import write_scalar_file
from tbhub.adapters.db.accounts import AccountStore
from tbhub.adapters.db.store import StateStore
from tbhub.adapters.db.tables import login_failures
from tbhub.app.hub import Hub
from tbhub.app.services import Services
from tbhub.config import AuthConfig, Config, EndpointConfig, StateConfig
from tbhub.core.accounts import Role, User
from tbhub.core.throttle import LIMITS
from tbhub.errors import UsageError
from tbhub.interfaces.cli.main import main
from tbhub.interfaces.web import login as login_module
from tbhub.interfaces.web.app import create_app
from tbhub.interfaces.web.auth import CSRF_COOKIE

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


def _config(tmp_path: Path, auth: AuthConfig | None = None) -> Config:
    endpoints = {}
    for name in ("lora", "other"):
        root = tmp_path / name
        write_scalar_file(root / "alpaca" / "r1", range(20))
        endpoints[name] = EndpointConfig(logdir=str(root))
    return Config(state=StateConfig(dir=tmp_path / "state"), endpoints=endpoints, auth=auth or AuthConfig())


def _app(tmp_path: Path, state: StateStore, auth: AuthConfig | None = None) -> FastAPI:
    hub = Hub(Services(_config(tmp_path, auth), state=state), None)
    for name in hub.specs:
        hub.refresh(name)
    return create_app(hub, scan_interval=3600, job_interval=3600, alerts=False)


@pytest.fixture
def app(tmp_path: Path, state: StateStore) -> FastAPI:
    return _app(tmp_path, state)


@pytest.fixture(autouse=True)
def fast_failed_logins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(login_module, "FAILED_LOGIN_DELAY_S", 0.0)


# -- 1: forwarded addresses -------------------------------------------------------------------------
def test_a_forwarded_address_never_makes_the_peer_trusted(tmp_path: Path, state: StateStore) -> None:
    app = _app(tmp_path, state, AuthConfig(trusted_proxies=["127.0.0.1", "10.0.0.0/8"], proxy_role="admin"))

    async def check() -> None:
        boss = {"x-auth-request-email": "boss"}
        # A trusted peer: its header is believed, whatever client it forwards for.
        trusted = httpx.ASGITransport(app=app, client=("127.0.0.1", 4000))
        async with httpx.AsyncClient(transport=trusted, base_url="http://hub") as client:
            me = await client.get("/api/me", headers={**boss, "x-forwarded-for": "203.0.113.9, 10.1.1.1"})
            assert me.json() == {"name": "boss", "role": "admin", "via": "proxy"}
        # Any other peer: forwarded addresses naming a trusted proxy change nothing.
        other = httpx.ASGITransport(app=app, client=("192.168.1.9", 4000))
        async with httpx.AsyncClient(transport=other, base_url="http://hub") as client:
            for forged in ("127.0.0.1", "10.9.9.9", "10.9.9.9, 127.0.0.1", "[::1]:80"):
                got = await client.get("/api/me", headers={**boss, "x-forwarded-for": forged})
                assert got.status_code == 401, forged

    asyncio.run(check())


def test_throttling_counts_the_client_a_trusted_proxy_forwards_for(tmp_path: Path, state: StateStore) -> None:
    """Behind a trusted proxy every login arrives from the proxy: the address that counts is the
    client's, read from X-Forwarded-For right to left (a forged left part is skipped)."""
    app = _app(tmp_path, state, AuthConfig(trusted_proxies=["10.0.0.1"]))
    AccountStore(state.engine).add_user("ada", Role.VIEWER, "password-ada")

    async def check() -> None:
        proxy = httpx.ASGITransport(app=app, client=("10.0.0.1", 4000))
        async with httpx.AsyncClient(transport=proxy, base_url="http://hub") as client:
            await client.get("/login")
            form = {"name": "ada", "password": "wrong", "csrf": client.cookies[CSRF_COOKIE]}
            for _ in range(LIMITS["pair"].free):
                got = await client.post("/login", data=form, headers={"x-forwarded-for": "1.1.1.1, 198.51.100.7"})
                assert got.status_code == 401
            ok = {**form, "password": "password-ada"}
            locked = await client.post("/login", data=ok, headers={"x-forwarded-for": "198.51.100.7"})
            assert locked.status_code == 429
            elsewhere = await client.post("/login", data=ok, headers={"x-forwarded-for": "198.51.100.8"})
            assert elsewhere.status_code == 303

    asyncio.run(check())
    subjects = {(f.kind, f.subject) for f in AccountStore(state.engine).throttle.recent()}
    assert ("address", "198.51.100.7") in subjects and ("address", "10.0.0.1") not in subjects


# -- 2: setup links ---------------------------------------------------------------------------------
def _setup(client: TestClient, link: str, name: str) -> httpx.Response:
    client.get("/login")
    form = {"name": name, "password": "long-password", "password2": "long-password",
            "csrf": client.cookies[CSRF_COOKIE]}
    return client.post(f"/setup/{link}", data=form)


def test_using_one_setup_link_spends_every_other(app: FastAPI, state: StateStore) -> None:
    accounts = AccountStore(state.engine)
    first, second = accounts.create_setup_token(), accounts.create_setup_token()  # two starts, two links
    with TestClient(app, follow_redirects=False) as client:
        assert client.get(f"/setup/{second}").status_code == 200
        assert _setup(client, first, "root").status_code == 303
    with TestClient(app, follow_redirects=False) as client:
        assert client.get(f"/setup/{second}").status_code == 404
        assert _setup(client, second, "mallory").status_code == 404
    assert [(u.name, u.role) for u in accounts.users()] == [("root", Role.ADMIN)]


def test_an_admin_added_from_the_shell_spends_the_setup_link(app: FastAPI, state: StateStore, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    accounts = AccountStore(state.engine)
    link = accounts.create_setup_token()
    config = tmp_path / "tbhub.toml"
    config.write_text(f'[state]\ndatabase = "{state.engine.url}"\n[endpoints.lora]\nlogdir = "{tmp_path / "lora"}"\n')
    monkeypatch.setattr("sys.stdin", io.StringIO("long-password\n"))
    try:
        main(["users", "add", "root", "--role", "admin", "--password-stdin", "-c", str(config)])
    except SystemExit as done:  # main returns on success and exits only with an error code
        assert (done.code or 0) == 0, capsys.readouterr()
    with TestClient(app, follow_redirects=False) as client:
        assert client.get(f"/setup/{link}").status_code == 404
        assert _setup(client, link, "mallory").status_code == 404
    assert [u.name for u in accounts.users()] == ["root"]


def test_a_setup_link_dies_when_an_admin_appears_any_other_way(state: StateStore) -> None:
    accounts = AccountStore(state.engine)
    promoted, stale = accounts.create_setup_token(), accounts.create_setup_token()
    accounts.add_user("bob", Role.VIEWER, "password-bob")
    assert accounts.setup_token_valid(promoted)  # a viewer is not an admin
    accounts.set_role("bob", Role.ADMIN)
    assert not accounts.setup_token_valid(promoted) and not accounts.setup_token_valid(stale)
    with pytest.raises(UsageError, match="used already"):
        accounts.use_setup_token(stale, "mallory", "long-password")
    assert [u.name for u in accounts.users()] == ["bob"]


# -- 6: login throttling ----------------------------------------------------------------------------
def _login(client: TestClient, name: str, password: str) -> httpx.Response:
    if CSRF_COOKIE not in client.cookies:
        client.get("/login")
    return client.post("/login", data={"name": name, "password": password, "csrf": client.cookies[CSRF_COOKIE]})


def test_failed_logins_lock_the_pair_for_a_while(app: FastAPI, state: StateStore) -> None:
    accounts = AccountStore(state.engine)
    accounts.add_user("ada", Role.VIEWER, "password-ada")
    accounts.add_user("root", Role.ADMIN, "password-root")
    with TestClient(app, follow_redirects=False) as client:
        for _ in range(LIMITS["pair"].free):
            assert _login(client, "ada", "guess").status_code == 401
        refused = _login(client, "ada", "password-ada")  # the right password, too soon
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert "try again in" in refused.text
        # Admins see who is locked, on the page and in the API.
        admin = TestClient(app, follow_redirects=False)
        with admin:
            assert _login(admin, "root", "password-root").status_code == 303
            failures = {f["kind"]: f for f in admin.get("/api/login-failures").json()}
            assert failures["pair"]["subject"] == "ada testclient" and failures["pair"]["failures"] == 5
            assert failures["pair"]["locked_until"] > time.time()
            assert "ada testclient" in admin.get("/admin").text
        # The lock is short: once Retry-After has passed (aged here rather than waited for) ada is in.
        assert int(refused.headers["retry-after"]) <= LIMITS["pair"].first_s
        with state.engine.begin() as connection:
            connection.execute(update(login_failures).values(last_at=login_failures.c.last_at
                                                             - LIMITS["pair"].first_s))
        assert _login(client, "ada", "password-ada").status_code == 303
    assert all(f.kind == "address" for f in accounts.throttle.recent())  # success forgets pair and account


def test_an_attacker_elsewhere_cannot_lock_the_user_out(app: FastAPI, state: StateStore) -> None:
    AccountStore(state.engine).add_user("ada", Role.VIEWER, "password-ada")

    async def check() -> None:
        attacker = httpx.ASGITransport(app=app, client=("198.51.100.66", 4000))
        async with httpx.AsyncClient(transport=attacker, base_url="http://hub") as client:
            await client.get("/login")
            form = {"name": "ada", "password": "guess", "csrf": client.cookies[CSRF_COOKIE]}
            codes = [(await client.post("/login", data=form)).status_code for _ in range(12)]
            assert codes[:5] == [401] * 5 and 429 in codes[5:]
        user = httpx.ASGITransport(app=app, client=("192.0.2.10", 4000))
        async with httpx.AsyncClient(transport=user, base_url="http://hub") as client:
            await client.get("/login")
            form = {"name": "ada", "password": "password-ada", "csrf": client.cookies[CSRF_COOKIE]}
            assert (await client.post("/login", data=form)).status_code == 303

    asyncio.run(check())


# -- 8: API tokens limited to endpoints ------------------------------------------------------------
def test_a_token_limited_to_an_endpoint_reaches_nothing_else(app: FastAPI, state: StateStore) -> None:
    accounts = AccountStore(state.engine)
    secret, token = accounts.create_token("scraper", Role.EDITOR, "test", endpoints=["lora"])
    assert token.endpoints == ("lora",)
    bearer = {"authorization": f"Bearer {secret}"}
    with TestClient(app, follow_redirects=False) as client:
        assert client.get("/api/me", headers=bearer).json() == {
            "name": "token:scraper", "role": "editor", "via": "token", "endpoints": ["lora"]}
        assert client.get("/api/endpoints/lora/runs", headers=bearer).status_code == 200
        note = {"run": "alpaca/r1", "text": "from CI"}
        assert client.post("/api/endpoints/lora/notes", json=note, headers=bearer).status_code == 201
        for method, path in (("GET", "/api/endpoints/other/runs"), ("GET", "/api/endpoints/other"),
                             ("GET", "/endpoints/other"), ("GET", "/runs/other/alpaca/r1"),
                             ("GET", "/tb/other/data/runs"), ("GET", "/tb/other"),
                             ("POST", "/api/endpoints/other/notes"),
                             # Routes about every endpoint at once.
                             ("GET", "/api/endpoints"), ("GET", "/api/compare?tag=loss"), ("GET", "/api/usage"),
                             ("GET", "/api/alerts"), ("GET", "/")):
            got = client.request(method, path, headers=bearer, json=note if method == "POST" else None)
            assert got.status_code == 403 and "limited to lora" in got.json()["error"], (method, path)
        assert client.get("/tb/lora/data/runs", headers=bearer).status_code == 502  # on to TensorBoard
        # A form naming another endpoint is refused as well (tokens need no CSRF token).
        form = {"endpoint": "other", "run": "alpaca/r1", "text": "x"}
        assert client.post("/notes", data=form, headers=bearer).status_code == 403
        # /metrics keeps only the token's endpoints.
        metrics = client.get("/metrics", headers=bearer)
        assert metrics.status_code == 200
        assert 'endpoint="lora"' in metrics.text and 'endpoint="other"' not in metrics.text
        assert int(metrics.headers["content-length"]) == len(metrics.content)
        unlimited, _ = accounts.create_token("all", Role.VIEWER, "test")
        assert 'endpoint="other"' in client.get("/metrics", headers={"authorization": f"Bearer {unlimited}"}).text


def test_a_token_never_gets_more_than_its_creator(app: FastAPI, state: StateStore) -> None:
    accounts = AccountStore(state.engine)
    viewer = User("val", Role.VIEWER, "session", 1)
    with pytest.raises(UsageError, match="val's role is viewer: a token they create may be viewer at most"):
        accounts.create_token("t", Role.EDITOR, "val", creator=viewer)
    scoped = User("token:ops", Role.ADMIN, "token", None, frozenset({"lora"}))
    with pytest.raises(UsageError, match="may act only on lora"):
        accounts.create_token("t", Role.VIEWER, "ops", creator=scoped)
    with pytest.raises(UsageError, match="may act only on lora"):
        accounts.create_token("t", Role.VIEWER, "ops", endpoints=["lora", "other"], creator=scoped)
    accounts.create_token("t", Role.ADMIN, "ops", endpoints=["lora"], creator=scoped)
    # On the hub: an admin token limited to one endpoint cannot reach the token form at all.
    secret, _ = accounts.create_token("ops", Role.ADMIN, "test", endpoints=["lora"])
    with TestClient(app, follow_redirects=False) as client:
        made = client.post("/admin/tokens", data={"name": "wide", "role": "admin"},
                           headers={"authorization": f"Bearer {secret}"})
        assert made.status_code == 403
    assert "wide" not in [t.name for t in accounts.tokens()]


def test_the_admin_page_creates_and_shows_limited_tokens(app: FastAPI, state: StateStore) -> None:
    accounts = AccountStore(state.engine)
    accounts.add_user("root", Role.ADMIN, "password-root")
    with TestClient(app, follow_redirects=False) as client:
        assert _login(client, "root", "password-root").status_code == 303
        page = client.get("/admin").text
        csrf = page.split('name="csrf" value="')[1].split('"')[0]
        made = client.post("/admin/tokens", data={"name": "ci", "role": "editor", "endpoints": ["lora", "other"],
                                                  "csrf": csrf})
        assert made.status_code == 200 and 'id="new-token"' in made.text
        bad = client.post("/admin/tokens", data={"name": "ci2", "role": "viewer", "endpoints": "nope", "csrf": csrf})
        assert bad.status_code == 404 and "nope" in bad.text
        page = client.get("/admin").text
        assert '<td class="token-scope">lora, other</td>' in page
    assert [(t.name, t.endpoints) for t in accounts.tokens()] == [("ci", ("lora", "other"))]
