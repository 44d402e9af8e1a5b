"""uPlot's axis text, ticks and grid follow the colour scheme: light on the dark page, dark on the light one
(they were uPlot's black in dark mode too, invisible), and a scheme change redraws them (issue 17)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serving import Server, serve, wait_for

from browser import CHROMIUM, chromium_page
from eventfiles import write_scalar_file

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is installed by .ci/run"),
]

CHARTS = {"/compare?tags=train/loss": "#best-chart", "/usage": "#usage-chart"}

# The mean colour of what the chart drew in its left axis (tick labels and tick marks), as luminance 0..1,
# and the page's background luminance. uPlot draws on a 2D canvas, which headless Chromium renders.
AXIS_LUMINANCE = """sel => {
  const canvas = document.querySelector(sel + ' canvas');
  const ctx = canvas.getContext('2d');
  const width = Math.round(40 * devicePixelRatio);
  const pixels = ctx.getImageData(0, 0, width, canvas.height).data;
  let sum = 0, weight = 0;
  for (let i = 0; i < pixels.length; i += 4) {
    const a = pixels[i + 3] / 255;
    if (a < 0.5) continue;
    sum += a * (0.2126 * pixels[i] + 0.7152 * pixels[i + 1] + 0.0722 * pixels[i + 2]) / 255;
    weight += a;
  }
  // The page's background: the body's, or the root's when the body is transparent.
  const painted = [document.body, document.documentElement].map(e => getComputedStyle(e).backgroundColor)
    .find(c => !/^rgba\\(.*,\\s*0\\)$/.test(c) && c !== 'transparent') || 'rgb(255, 255, 255)';
  const bg = painted.match(/\\d+/g).map(Number);
  return {axis: weight ? sum / weight : null, drawn: weight,
          background: (0.2126 * bg[0] + 0.7152 * bg[1] + 0.0722 * bg[2]) / 255};
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("logs")
    for i, run in enumerate(("r1", "r2", "r3")):
        write_scalar_file(base / "lora" / "alpaca" / run, range(20 + 10 * i), ("train/loss",))
    write_scalar_file(base / "lora" / "dolly" / "r1", range(30), ("train/loss",))
    with serve(tmp_path_factory.mktemp("srv"), {"lora": base / "lora"}, extra_args=("--job-interval", "1")) as running:
        # The usage chart needs a snapshot: the server records one as soon as its job loop runs.
        wait_for(lambda: running.get("/api/usage/history").json()["times"], 30, "a usage snapshot")
        yield running


def _axis(page: Any, server: Server, path: str) -> dict[str, float]:
    page.goto(server.url + path)
    page.locator(CHARTS[path] + " .uplot canvas").wait_for(timeout=20_000)
    page.wait_for_timeout(300)  # uPlot draws on the next animation frame
    seen: dict[str, float] = page.evaluate(AXIS_LUMINANCE, CHARTS[path])
    assert seen["drawn"] > 20, (path, seen)  # tick labels were drawn
    return seen


@pytest.mark.parametrize("path", list(CHARTS))
def test_chart_axes_are_light_on_the_dark_page(server: Server, path: str) -> None:
    with chromium_page(color_scheme="dark") as page:
        seen = _axis(page, server, path)
        assert seen["background"] < 0.2, seen
        assert seen["axis"] > 0.55, seen  # readable on the dark background (was black)


@pytest.mark.parametrize("path", list(CHARTS))
def test_chart_axes_are_dark_on_the_light_page_and_follow_a_scheme_change(server: Server, path: str) -> None:
    with chromium_page(color_scheme="light") as page:
        seen = _axis(page, server, path)
        assert seen["background"] > 0.9, seen
        assert seen["axis"] < 0.4, seen
        page.emulate_media(color_scheme="dark")  # the user switches the system to dark: no reload
        page.wait_for_timeout(300)
        after = page.evaluate(AXIS_LUMINANCE, CHARTS[path])
        assert after["background"] < 0.2 and after["axis"] > 0.55, after
