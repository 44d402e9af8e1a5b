"""Issue 15 through a real ``tbhub serve``: forwarded addresses (1), setup links (2) and login floods (6).

uvicorn rewrites the client address from ``X-Forwarded-For`` for loopback peers unless told not to,
and a setup link, a throttle or a stalled event loop only show on the real server.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from serving import Server, serve, wait_for

from eventfiles import write_scalar_file
from tbhub.core.throttle import LIMITS
from tbhub.interfaces.web.auth import CSRF_COOKIE
from tbhub.interfaces.web.login import HASHING_THREADS

pytestmark = pytest.mark.timeout(300)

BOSS = {"x-auth-request-email": "boss"}


def _from(address: str) -> httpx.Client:
    """A client whose connections come from ``address`` (any of 127.0.0.0/8 is this machine)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30, trust_env=False,
                        follow_redirects=False)


def _roots(tmp_path: Path) -> dict[str, Path]:
    write_scalar_file(tmp_path / "logs" / "ds" / "r1", range(20))
    return {"lora": tmp_path / "logs"}


def _up(server: Server) -> None:
    wait_for(lambda: server.get("/healthz").status_code == 200, 90, "the hub")


def test_a_forged_forwarded_address_gets_no_proxy_trust(tmp_path: Path) -> None:
    auth = '[auth]\ntrusted_proxies = ["10.9.9.9", "127.0.0.2"]\nproxy_role = "admin"\n'
    with serve(tmp_path / "a", _roots(tmp_path), auth=None, extra_config=auth, wait=False) as server:
        _up(server)
        # The curl: a loopback peer claims to forward for the trusted proxy.
        for forged in ("10.9.9.9", "127.0.0.2", "6.6.6.6, 10.9.9.9"):
            got = server.get("/api/me", headers={**BOSS, "x-forwarded-for": forged})
            assert got.status_code == 401, (forged, got.text)
        # The proxy itself, from its own address, is believed, whoever it forwards for.
        with _from("127.0.0.2") as proxy:
            me = proxy.get(server.url + "/api/me", headers={**BOSS, "x-forwarded-for": "203.0.113.9"})
            assert me.json() == {"name": "boss", "role": "admin", "via": "proxy"}
        # Setup link (2): printed at start, dead once `tbhub users add` makes an admin.
        link = re.search(r"/setup/([\w-]+)", wait_for(lambda: "/setup/" in server.output() and server.output(),
                                                       30, "the setup link")).group(1)  # type: ignore[union-attr]
        with _from("127.0.0.1") as client:
            assert client.get(f"{server.url}/setup/{link}").status_code == 200
            added = subprocess.run(
                [sys.executable, "-m", "tbhub", "users", "add", "root", "--role", "admin", "--password-stdin",
                 "-c", str(server.config)], input="root-password\n", capture_output=True, text=True, timeout=60)
            assert added.returncode == 0, added.stderr
            assert client.get(f"{server.url}/setup/{link}").status_code == 404
            client.get(server.url + "/login")
            form = {"name": "mallory", "password": "long-password", "password2": "long-password",
                    "csrf": client.cookies[CSRF_COOKIE]}
            assert client.post(f"{server.url}/setup/{link}", data=form).status_code == 404


def test_a_trusted_loopback_proxy_still_works(tmp_path: Path) -> None:
    auth = '[auth]\ntrusted_proxies = ["127.0.0.1"]\nproxy_role = "editor"\n'
    with serve(tmp_path / "b", _roots(tmp_path), auth=None, extra_config=auth, wait=False) as server:
        _up(server)
        for chain in (None, "203.0.113.9", "1.2.3.4, 203.0.113.9, 127.0.0.1"):
            headers = BOSS if chain is None else {**BOSS, "x-forwarded-for": chain}
            me = server.get("/api/me", headers=headers)
            assert me.json() == {"name": "boss", "role": "editor", "via": "proxy"}, (chain, me.text)
        with _from("127.0.0.3") as stranger:
            assert stranger.get(server.url + "/api/me", headers=BOSS).status_code == 401


async def _flood(server: Server, logins: list[tuple[str, str, str]]) -> tuple[list[httpx.Response], list[float]]:
    """POST every (source address, name, password) login at once while timing /healthz; returns the
    login responses and each /healthz round trip."""
    clients = []
    for address, _, _ in logins:
        client = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(local_address=address), base_url=server.url,
                                   timeout=120, trust_env=False)
        await client.get("/login")
        clients.append(client)
    health = httpx.AsyncClient(base_url=server.url, timeout=120, trust_env=False)
    tasks = [asyncio.create_task(c.post("/login", data={"name": n, "password": p, "csrf": c.cookies[CSRF_COOKIE]}))
             for c, (_, n, p) in zip(clients, logins, strict=True)]
    rounds: list[float] = []
    while not all(t.done() for t in tasks) or not rounds:
        start = time.monotonic()
        assert (await health.get("/healthz")).status_code == 200
        rounds.append(time.monotonic() - start)
        await asyncio.sleep(0.05)
    responses = await asyncio.gather(*tasks)
    for c in [*clients, health]:
        await c.aclose()
    return list(responses), rounds


def test_a_login_flood_is_throttled_and_the_hub_stays_responsive(tmp_path: Path) -> None:
    with serve(tmp_path / "c", _roots(tmp_path), auth="password", wait=False) as server:
        _up(server)
        added = subprocess.run(
            [sys.executable, "-m", "tbhub", "users", "add", "ada", "--password-stdin", "-c", str(server.config)],
            input="ada-password\n", capture_output=True, text=True, timeout=60, env={**os.environ})
        assert added.returncode == 0, added.stderr
        # 50 logins from 50 addresses, every one hashed: the hub keeps answering meanwhile.
        spread = [(f"127.0.0.{10 + i}", f"user{i}", "wrong-password") for i in range(50)]
        responses, rounds = asyncio.run(_flood(server, spread))
        assert [r.status_code for r in responses] == [401] * 50
        assert max(rounds) < 5.0, f"/healthz took {max(rounds):.1f} s during the flood: {rounds}"
        # 12 at once against one account from one address: only the free tries are hashed, the rest wait.
        burst = [("127.0.0.1", "ada", "guess")] * 12
        responses, _ = asyncio.run(_flood(server, burst))
        codes = [r.status_code for r in responses]
        assert codes.count(401) <= LIMITS["pair"].free + HASHING_THREADS - 1 and codes.count(429) >= 12 - (
            LIMITS["pair"].free + HASHING_THREADS - 1), codes
        assert all(int(r.headers["retry-after"]) >= 1 for r in responses if r.status_code == 429)
        # The right password is refused for a while too...
        with _from("127.0.0.1") as client:
            client.get(server.url + "/login")
            form = {"name": "ada", "password": "ada-password", "csrf": client.cookies[CSRF_COOKIE]}
            refused = client.post(server.url + "/login", data=form)
            assert refused.status_code == 429, refused.text
            wait = int(refused.headers["retry-after"])
            assert 1 <= wait <= LIMITS["pair"].cap_s
            # ... but from another address the account is not locked out.
            with _from("127.0.0.9") as elsewhere:
                elsewhere.get(server.url + "/login")
                ok = elsewhere.post(server.url + "/login", data={**form, "csrf": elsewhere.cookies[CSRF_COOKIE]})
                assert ok.status_code == 303
        assert "failed login as 'ada' from 127.0.0.1" in server.output()
