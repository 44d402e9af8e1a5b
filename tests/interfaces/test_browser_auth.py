"""A real ``tbhub serve`` with auth on (the default) in real Chromium: the one-time setup link, login,
TensorBoard through the proxy, a note with a script tag shown as text, log out."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import httpx
import pytest
from serving import serve, wait_for

from eventfiles import write_scalar_file

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
XSS = "<script>window.__xss = 1</script><img src=x onerror=\"window.__xss = 2\"> **kept** for later"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is installed by .ci/run"),
]


def test_setup_login_proxy_and_a_note_with_a_script_tag(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    write_scalar_file(root / "alpaca" / "r16", range(50), ("train/loss",))
    with serve(tmp_path / "srv", {"lora": root}, auth=None) as server:
        link = wait_for(lambda: re.search(r"http://\S+/setup/[\w-]+", server.output()), 30, "the setup link")[0]
        # Nobody is let in before logging in, and the TensorBoard is not reachable around the hub.
        assert server.get("/api/endpoints").status_code == 401
        assert server.get("/tb/lora/data/runs").status_code == 401
        page_redirect = server.get("/tb/lora/", headers={"accept": "text/html"})
        assert page_redirect.status_code == 302 and page_redirect.headers["location"].startswith("/login")
        assert server.get("/healthz").status_code == 200
        with pytest.raises(httpx.HTTPError):  # the child listens on 127.0.0.1 only: checked by its own
            httpx.get(f"http://127.0.0.2:{server.ports['lora']}/tb/lora/", timeout=5, trust_env=False)

        with playwright_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                page = browser.new_page()
                page.goto(server.url + "/")
                page.wait_for_url("**/login?next=*")
                assert "Ask the admin" in page.locator("#no-admin").inner_text()

                page.goto(link)
                page.fill("input[name=name]", "ada")
                page.fill("input[name=password]", "correct horse")
                page.fill("input[name=password2]", "correct horse")
                page.click("button[type=submit]")
                page.wait_for_url(server.url + "/")
                assert page.locator("#whoami").inner_text() == "ada · admin"
                cookie = next(c for c in page.context.cookies() if c["name"] == "tbhub_session")
                assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

                # The link worked once.
                assert httpx.get(link, timeout=10, trust_env=False).status_code == 404

                # TensorBoard through the proxy, with the session.
                runs = page.evaluate("fetch('/tb/lora/data/runs').then(r => r.json())")
                assert runs == ["alpaca/r16"]

                page.goto(server.url + "/runs/lora/alpaca/r16")
                page.fill("#note-form textarea", XSS)
                page.click("#note-form button[type=submit]")
                page.wait_for_url("**/runs/lora/alpaca/r16")
                note = page.locator(".note-text").first
                assert note.inner_text() == XSS.replace("**kept**", "kept")
                assert note.locator("strong").inner_text() == "kept"
                assert note.locator("script, img").count() == 0
                assert page.evaluate("window.__xss") is None
                page.screenshot(path=str(tmp_path / "run.png"), full_page=True)

                page.goto(server.url + "/endpoints/lora")
                assert "<script>" in page.locator('tr[data-run="alpaca/r16"] .note-preview').inner_text()
                assert page.evaluate("window.__xss") is None

                page.click("header form.whoami button")
                page.wait_for_url("**/login")
                status = page.evaluate("fetch('/tb/lora/data/runs').then(r => r.status)")
                assert status == 401
            finally:
                browser.close()
