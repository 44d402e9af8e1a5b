"""The hub and a proxied TensorBoard in real Chromium (Debian's package, driven by Playwright)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from serving import Server, serve

from eventfiles import write_scalar_file, write_tf2_run

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is installed by .ci/run"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("logs")
    write_scalar_file(base / "lora" / "alpaca" / "r16-lr2e-4", range(300), ("train/loss", "train/lr"))
    write_tf2_run(base / "lora" / "dolly" / "keras-run")
    write_scalar_file(base / "router" / "moe" / "top2", range(50), ("loss",))
    with serve(tmp_path_factory.mktemp("srv"), {"lora": base / "lora", "router": base / "router"}) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def test_hub_page_links_into_tensorboard_through_the_proxy(
    server: Server, browser: object, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 900})  # type: ignore[attr-defined]
    try:
        page.goto(server.url + "/")
        rows = page.locator("#endpoints tbody tr")
        assert rows.count() == 2
        assert page.locator('tr[data-endpoint="lora"] .state').inner_text() == "up"
        page.screenshot(path=str(tmp_path / "hub.png"), full_page=True)

        page.click('tr[data-endpoint="lora"] a.tb-link')
        page.wait_for_url("**/tb/lora/**")
        # The runs selector of TensorBoard's scalars dashboard lists every run, loaded via the proxy.
        for run in ("alpaca/r16-lr2e-4", "dolly/keras-run/train", "dolly/keras-run/validation"):
            page.get_by_text(run, exact=True).first.wait_for(timeout=60_000)
        # Scalar cards are rendered from the scalars data fetched through the proxy.
        page.get_by_text("epoch_accuracy").first.wait_for(timeout=60_000)
        page.get_by_role("combobox", name="Filter tags (regex)").fill("train/lr")
        page.locator("card-view, .card", has_text="train/lr").first.wait_for(timeout=60_000)
        page.screenshot(path=str(tmp_path / "tensorboard.png"))
        assert page.url.startswith(server.url + "/tb/lora/")
        assert (tmp_path / "tensorboard.png").stat().st_size > 10_000
    finally:
        page.close()


def test_endpoint_page_rows_and_colours(server: Server, browser: object, tmp_path: Path) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    try:
        page.goto(server.url + "/")
        page.click('tr[data-endpoint="router"] td:first-child a')
        page.wait_for_url("**/endpoints/router")
        row = page.locator('tr[data-run="moe/top2"]')
        assert row.count() == 1
        # The age is a badge of its own, coloured by age; the row is not (an old run is no error).
        assert row.get_attribute("class") is None
        badge = row.locator("td.age-cell .age")
        assert "age-green" in (badge.get_attribute("class") or "")
        colour = badge.evaluate("el => getComputedStyle(el).color")
        assert colour in ("rgb(17, 99, 41)", "rgb(86, 211, 100)")  # --green, light or dark scheme
        page.screenshot(path=str(tmp_path / "endpoint.png"), full_page=True)
    finally:
        page.close()
