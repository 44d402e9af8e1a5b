"""Hardening seen through a real ``tbhub serve`` with real TensorBoards (issue 15: 14, 18), and the
hub's pages under their Content-Security-Policy in real Chromium: no violation, no console error.
"""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from serving import Server, accounts_of, serve

from eventfiles import write_scalar_file

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("logs")
    write_scalar_file(base / "alpaca" / "r16-lr2e-4", range(300), ("train/loss", "train/lr"))
    write_scalar_file(base / "alpaca" / "r8-lr1e-4", range(200), ("train/loss", "train/lr"))
    with serve(tmp_path_factory.mktemp("srv"), {"lora": base}, auth=None) as running:
        yield running


@pytest.fixture(scope="module")
def accounts(server: Server) -> tuple[str, str, str]:
    """(ada's password, an admin token, an editor token) in the server's database."""
    return accounts_of(server)


def test_a_hundred_megabytes_with_a_token_are_refused_without_being_held(
    server: Server, accounts: tuple[str, str, str]
) -> None:
    # A token request skipped the only check that bounded a body: 100 MB grew the hub by 167 MB.
    _, _, editor = accounts
    hub = psutil.Process(server.proc.pid)
    before = hub.memory_info().rss
    sent = 0

    def hundred_megabytes() -> Iterator[bytes]:
        nonlocal sent
        chunk = b"name=x&description=" + b"d" * (1 << 20)
        for _ in range(100):
            sent += 1
            yield chunk

    status: int | None = None
    try:
        answer = httpx.post(server.url + "/api/bookmarks", content=hundred_megabytes(), timeout=60, trust_env=False,
                            headers={"authorization": f"Bearer {editor}", "content-type": "application/json"})
        status = answer.status_code
    except httpx.TransportError:
        pass  # the hub answered 413 and closed the connection while the client was still sending
    grown = (hub.memory_info().rss - before) / 2**20
    assert status in (413, None) and grown < 40, (status, grown, sent)
    assert server.get("/healthz").status_code == 200
    # A declared length over the limit is answered before a byte of the body is sent.
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as raw:
        raw.sendall(f"POST /api/bookmarks HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {editor}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {100 * 2**20}\r\n\r\n".encode())
        assert raw.recv(4096).startswith(b"HTTP/1.1 413 ")


def test_tensorboard_keeps_its_policy_and_large_posts(server: Server, accounts: tuple[str, str, str]) -> None:
    _, admin, _ = accounts
    auth = {"authorization": f"Bearer {admin}"}
    page = httpx.get(server.url + "/tb/lora/", headers=auth, timeout=30, trust_env=False)
    assert page.status_code == 200
    policies = page.headers.get_list("content-security-policy")
    assert "frame-ancestors 'self'" in policies  # framing limited to the hub itself...
    assert any("script-src" in p for p in policies)  # ...beside TensorBoard's own policy, kept as it is
    assert page.headers["x-frame-options"] == "SAMEORIGIN"
    # TensorBoard's queries are not held by the hub (they stream through) and may be large.
    requests = [{"plugin": "scalars", "tag": "train/loss", "run": "alpaca/r16-lr2e-4"}] * 2
    big = {"requests": json.dumps(requests), "pad": "x" * (2 << 20)}
    answer = httpx.post(server.url + "/tb/lora/experiment/defaultExperimentId/data/plugin/timeseries/timeSeries",
                        data=big, headers=auth, timeout=60, trust_env=False)
    assert answer.status_code == 200 and answer.json()[0]["tag"] == "train/loss"


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is installed by .ci/run")
def test_hub_pages_work_under_their_content_security_policy(
    server: Server, accounts: tuple[str, str, str]
) -> None:
    playwright_api = pytest.importorskip("playwright.sync_api")
    password, _, _ = accounts
    paths = ["/", "/endpoints/lora", "/runs/lora/alpaca/r16-lr2e-4", "/compare?tags=train/loss", "/usage",
             "/bookmarks", "/alerts", "/alerts/rules", "/admin"]
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            problems: list[str] = []

            def console(message: Any) -> None:
                # Chromium asks for /favicon.ico on its own; the hub has none.
                if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
                    problems.append(f"console error: {message.text} ({message.location.get('url')})")

            page.on("console", console)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            # Violations are reported as console errors too; this names the directive.
            page.add_init_script("document.addEventListener('securitypolicyviolation', e => "
                                 "console.error('CSP ' + e.violatedDirective + ' ' + e.blockedURI))")
            page.goto(server.url + "/login")
            page.fill("input[name=name]", "ada")
            page.fill("input[name=password]", password)
            page.click("button[type=submit]")
            page.wait_for_url(server.url + "/")
            for path in paths:
                answer = page.goto(server.url + path)
                assert answer is not None and answer.status == 200, path
                page.wait_for_load_state("networkidle")
                if path.startswith("/compare"):
                    page.locator("#best-chart .uplot").wait_for(timeout=10_000)  # uPlot drew the chart
                if path == "/usage":
                    page.wait_for_function("document.getElementById('usage-chart-note').textContent !== ''")
                assert not problems, (path, problems)
            # The proxied TensorBoard UI still loads under its own policy and the hub's frame-ancestors.
            page.goto(server.url + "/tb/lora/")
            page.get_by_text("alpaca/r16-lr2e-4", exact=True).first.wait_for(timeout=60_000)
            assert not [m for m in problems if "CSP " in m], problems
        finally:
            browser.close()
