"""``/docs`` works with no internet (Swagger UI is vendored) and every page has an icon (issue 17)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serving import Server, serve

from browser import CHROMIUM, chromium_page
from eventfiles import write_scalar_file

pytestmark = pytest.mark.slow

VENDOR = Path(__file__).parents[2] / "src/tbhub/interfaces/web/static/vendor/swagger-ui"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("logs")
    write_scalar_file(base / "lora" / "alpaca" / "r1", range(20), ("train/loss",))
    with serve(tmp_path_factory.mktemp("srv"), {"lora": base / "lora"}) as running:
        yield running


def test_swagger_ui_is_vendored_with_its_licence() -> None:
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "VERSION"):
        assert (VENDOR / name).stat().st_size > 0, name
    assert re.match(r"swagger-ui-dist 5\.\d+\.\d+ ", (VENDOR / "VERSION").read_text())


def test_docs_page_names_no_other_origin(server: Server) -> None:
    answer = server.get("/docs")
    assert answer.status_code == 200
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in answer.text
    assert "cdn" not in answer.text and "https://" not in answer.text
    policy = answer.headers["content-security-policy"]
    assert "http" not in policy  # no external origin may serve a script, style, font or image
    assert "script-src 'self' 'sha256-" in policy  # FastAPI's inline starter script, by its hash only
    assert server.get("/redoc").status_code == 404  # ReDoc needs a CDN: not offered


def test_favicon_is_public_and_linked(server: Server) -> None:
    icon = server.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")
    assert "<svg" in icon.text
    assert '<link rel="icon" href="/static/favicon.svg"' in server.get("/").text


def _offline_problems(page: Any, origin: str) -> list[str]:
    """Abort every request that leaves the hub (no network) and collect what goes wrong."""
    problems: list[str] = []

    def route(r: Any) -> None:
        if r.request.url.startswith(origin):
            r.continue_()
        else:
            problems.append(f"request outside the hub: {r.request.url}")
            r.abort()

    page.route("**/*", route)
    page.on("console", lambda m: m.type == "error" and problems.append(f"console error: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url} {r.failure}"))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"{r.status}: {r.url}"))
    page.add_init_script("document.addEventListener('securitypolicyviolation', e => "
                         "console.error('CSP ' + e.violatedDirective + ' ' + e.blockedURI))")
    return problems


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is installed by .ci/run")
def test_docs_render_offline_in_chromium(server: Server) -> None:
    with chromium_page(viewport={"width": 1400, "height": 900}) as page:
        problems = _offline_problems(page, server.url)
        page.goto(server.url + "/docs")
        page.locator(".opblock").first.wait_for(timeout=20_000)  # the operations list is drawn
        assert page.locator(".opblock").count() > 10
        page.wait_for_load_state("networkidle")
        assert problems == []


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is installed by .ci/run")
def test_pages_have_an_icon_in_chromium(server: Server) -> None:
    with chromium_page() as page:
        problems = _offline_problems(page, server.url)
        for path in ("/", "/usage", "/docs"):
            with page.expect_response("**/static/favicon.svg") as icon:
                page.goto(server.url + path)
            assert icon.value.status in (200, 304), path
            assert icon.value.header_value("content-type") == "image/svg+xml"
            page.wait_for_load_state("networkidle")
        # (Chromium's own /favicon.ico request is not routed by Playwright: test_favicon_is_public_and_linked.)
        assert problems == []
