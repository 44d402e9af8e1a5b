"""The compare page in Chromium against ``tbhub serve``: choosing runs across endpoints with the picker
overlays one curve per run (uPlot), smoothing and log scale redraw them, tick labels are distinct, the
table's sortable headers sort, the default tag is explained, CSV and JSON export what the page shows;
both viewports, light and dark, no console error, no failed request, no serious axe violation (issue 17).
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serving import Server, serve, wait_for

from browser import CHROMIUM, chromium_page
from eventfiles import file_version_event, scalar_event, write_events

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is installed by .ci/run"),
]

NAN = float("nan")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
VIEWPORTS = {"desktop": {"width": 1440, "height": 900}, "phone": {"width": 390, "height": 844}}


def write_run(root: Path, relpath: str, losses: list[float], t0: float, step_s: float, *,
              eval_every: int = 10) -> None:
    """A run that started at ``t0`` and took ``step_s`` seconds a step (the README's screenshot shows it)."""
    train = [file_version_event(t0),
             *(scalar_event(s, v, "loss", wall_time=t0 + s * step_s) for s, v in enumerate(losses))]
    write_events(root / relpath / "train" / "events.out.tfevents.1.h", train)
    evals = [file_version_event(t0)] + [
        scalar_event(s, 0.5 + 0.4 * (1 - v / losses[0]) if v == v else NAN, "accuracy", wall_time=t0 + s * step_s)
        for s, v in enumerate(losses) if s % eval_every == 0
    ]
    write_events(root / relpath / "eval" / "events.out.tfevents.1.h", evals)


def curve(start: float, rate: float, n: int) -> list[float]:
    return [start / (1 + rate * s) + 0.01 * ((s * 7919) % 13) / 13 for s in range(n)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    lora, chat = tmp_path_factory.mktemp("lora"), tmp_path_factory.mktemp("chat")
    day = 86_400.0
    now = time.time()
    write_run(lora, "alpaca/r32-lr2e-4", curve(2.2, 0.05, 400), now - 3 * day, 1.6)
    write_run(lora, "alpaca/r16-lr1e-4", curve(2.4, 0.03, 300), now - 2 * day, 1.1)
    write_run(lora, "dolly/r8-diverged", [*curve(2.0, 0.08, 60), NAN, NAN], now - day, 0.8)
    write_run(chat, "alpaca/sft-base", curve(2.0, 0.02, 3000), now - 4 * 3600, 2.5, eval_every=100)
    with serve(tmp_path_factory.mktemp("srv"), {"lora": lora, "chat": chat}) as running:

        def indexed() -> bool | None:
            rows = running.get("/compare/export", params={"tag": "train/loss"}).json()["rows"]
            return True if sum(1 for r in rows if r["tags"]) == 4 else None

        wait_for(indexed, 60, "the scalar index of every run")
        yield running


def watch(page: Any) -> dict[str, list[str]]:
    """Collect console errors and failed requests (4xx/5xx answers included) of ``page``."""
    seen: dict[str, list[str]] = {"console": [], "failed": []}
    page.on("console", lambda m: seen["console"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen["console"].append(str(e)))
    page.on("requestfailed", lambda r: seen["failed"].append(f"{r.url} {r.failure}"))
    page.on("response", lambda r: seen["failed"].append(f"{r.url} {r.status}") if r.status >= 400 else None)
    return seen


def serious_violations(page: Any) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def legend_runs(page: Any, tag: str) -> list[str]:
    """The runs in the legend of ``tag``'s chart (the raw faint lines are left out of it)."""
    labels: list[str] = page.evaluate(
        """tag => [...document.querySelectorAll(`figure.curve[data-tag="${tag}"] .u-legend tr.u-series`)]
             .filter(tr => getComputedStyle(tr).display !== 'none')
             .map(tr => tr.querySelector('.u-label').textContent).slice(1)""",
        tag,
    )
    return labels


def test_choosing_three_runs_and_pressing_compare_overlays_three_curves(server: Server) -> None:
    with chromium_page(viewport=VIEWPORTS["desktop"]) as page:
        seen = watch(page)
        page.goto(server.url + "/compare")
        assert "No runs chosen: the 4 most recently written runs" in page.locator("#no-choice").inner_text()
        page.fill("#run-search", "alpaca")
        with page.expect_navigation():
            page.click("#run-picker button[name=find]")
        found = page.locator("#search-results input[name=run]")
        # Across endpoints: TensorBoard itself cannot compare runs of two log roots.
        assert sorted(found.evaluate_all("els => els.map(e => e.value)")) == [
            "chat/alpaca/sft-base", "lora/alpaca/r16-lr1e-4", "lora/alpaca/r32-lr2e-4"]
        for box in found.all():
            box.check()
        with page.expect_navigation():
            page.click("#compare-button")
        assert page.url.count("run=") == 3
        page.locator("#curves[data-loaded=true] figure.curve .uplot canvas").first.wait_for(timeout=20_000)
        assert "the most common scalar tag" in page.locator("#default-tag-note").inner_text()
        chart = page.locator('figure.curve[data-tag="train/loss"] .curve-chart')
        assert chart.get_attribute("data-runs") == "3"
        assert sorted(legend_runs(page, "train/loss")) == [
            "chat/alpaca/sft-base", "lora/alpaca/r16-lr1e-4", "lora/alpaca/r32-lr2e-4"]
        # uPlot's own series: 3 smoothed lines and 3 faint raw ones behind them.
        assert page.locator('figure.curve[data-tag="train/loss"] .u-legend tr.u-series').count() == 1 + 6
        ticks = json.loads(chart.get_attribute("data-yticks") or "[]")
        assert len(ticks) >= 3 and len(set(ticks)) == len(ticks), ticks
        # Hover: the legend shows each run's value at the cursor.
        over = page.locator('figure.curve[data-tag="train/loss"] .u-over')
        over.scroll_into_view_if_needed()
        box = over.bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] / 2)
        page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] / 2, steps=5)
        page.wait_for_timeout(100)
        values = page.locator('figure.curve[data-tag="train/loss"] .u-legend tr.u-series .u-value').all_inner_texts()
        assert values[0] not in ("", "–") and any(v not in ("", "–") for v in values[1:4]), values
        # Smoothing 0 leaves only the raw lines; the log scale redraws with the same runs.
        page.locator("#smoothing").fill("0")
        page.wait_for_function(
            """() => document.querySelectorAll(
                 'figure.curve[data-tag="train/loss"] .u-legend tr.u-series').length === 4""")
        page.check("#log-scale")
        page.wait_for_timeout(200)
        assert sorted(legend_runs(page, "train/loss")) == [
            "chat/alpaca/sft-base", "lora/alpaca/r16-lr1e-4", "lora/alpaca/r32-lr2e-4"]
        assert seen == {"console": [], "failed": []}


def test_the_tag_picker_lists_the_runs_tags_with_counts(server: Server) -> None:
    runs = ["lora/alpaca/r32-lr2e-4", "lora/dolly/r8-diverged", "chat/alpaca/sft-base"]
    with chromium_page(viewport=VIEWPORTS["desktop"]) as page:
        seen = watch(page)
        page.goto(server.url + "/compare?" + "&".join(f"run={r}" for r in runs))
        labels = page.locator("#tag-picker label.pick").all_inner_texts()
        assert [" ".join(t.split()) for t in labels] == ["eval/accuracy (3)", "train/loss (3)"]
        page.check("#tag-picker input[value='eval/accuracy']")
        with page.expect_navigation():
            page.click("#show-tags")
        page.locator('#curves[data-loaded=true] figure.curve[data-tag="eval/accuracy"] .uplot').wait_for(timeout=20_000)
        assert page.locator("figure.curve").evaluate_all("els => els.map(e => e.dataset.tag)") == [
            "eval/accuracy", "train/loss"]
        assert not page.locator("#default-tag-note").count()
        diverged = page.locator('tr[data-run="lora/dolly/r8-diverged"]')
        assert "diverged" in diverged.inner_text()
        assert seen == {"console": [], "failed": []}


def _order(page: Any) -> list[str]:
    order: list[str] = page.locator("#compare tbody tr").evaluate_all("rows => rows.map(r => r.dataset.run)")
    return order


def test_sortable_headers_sort_and_best_is_finite(server: Server) -> None:
    runs = ["lora/alpaca/r32-lr2e-4", "lora/alpaca/r16-lr1e-4", "lora/dolly/r8-diverged", "chat/alpaca/sft-base"]
    with chromium_page(viewport=VIEWPORTS["desktop"]) as page:
        page.goto(server.url + "/compare?tag=train/loss&" + "&".join(f"run={r}" for r in runs))
        header = page.locator("#compare thead th", has_text="train/loss last")
        with page.expect_navigation():
            header.get_by_role("link").click()
        assert header.get_attribute("aria-sort") == "ascending"
        lasts = page.locator("#compare tbody tr td:nth-child(2)").all_inner_texts()
        finite = [float(v) for v in lasts if v != "nan"]
        assert finite == sorted(finite) and lasts[-1] == "nan"  # the diverged run after the finite ones
        assert _order(page)[0] == "chat/alpaca/sft-base"
        assert page.locator("#compare tbody tr.best").get_attribute("data-run") == "chat/alpaca/sft-base"
        with page.expect_navigation():
            page.locator("#compare thead th", has_text="train/loss last").get_by_role("link").click()
        assert page.locator("#compare thead th", has_text="train/loss last").get_attribute("aria-sort") == "descending"
        lasts = page.locator("#compare tbody tr td:nth-child(2)").all_inner_texts()
        finite = [float(v) for v in lasts if v != "nan"]
        assert finite == sorted(finite, reverse=True)
        # min@step: the diverged run's min before it diverged is the lowest, yet it is never best.
        with page.expect_navigation():
            page.locator("#compare thead th", has_text="min@step").get_by_role("link").click()
        best = page.locator("#compare tbody tr.best")
        assert best.count() == 1 and best.get_attribute("data-run") != "lora/dolly/r8-diverged"
        with page.expect_navigation():
            page.locator("#compare thead th", has_text="duration").get_by_role("link").click()
        assert _order(page)[0] == "chat/alpaca/sft-base"  # 3,000 steps, 2.5 s each: the longest
        with page.expect_navigation():
            page.locator("#compare thead th", has_text="run").first.get_by_role("link").click()
        assert _order(page) == sorted(runs)


def test_csv_and_json_export_what_the_page_shows(server: Server) -> None:
    runs = ["lora/alpaca/r32-lr2e-4", "lora/dolly/r8-diverged", "chat/alpaca/sft-base"]
    with chromium_page(viewport=VIEWPORTS["desktop"]) as page:
        page.goto(server.url + "/compare?tag=train/loss&sort=train/loss:min&" + "&".join(f"run={r}" for r in runs))
        json_href = page.locator("#export-json").get_attribute("href")
        csv_href = page.locator("#export-csv").get_attribute("href")
        shown = _order(page)
    data = server.get(json_href).json()
    assert [f"{r['endpoint']}/{r['relpath']}" for r in data["rows"]] == shown
    assert data["tags"] == ["train/loss"] and data["sort"] == "train/loss:min"
    by_run = {f"{r['endpoint']}/{r['relpath']}": r for r in data["rows"]}
    assert by_run["lora/dolly/r8-diverged"]["tags"]["train/loss"]["last"] == "nan"
    assert by_run["lora/dolly/r8-diverged"]["best"] is False and by_run["lora/dolly/r8-diverged"]["diverged"]
    assert sum(r["best"] for r in data["rows"]) == 1
    assert by_run["chat/alpaca/sft-base"]["tags"]["train/loss"]["count"] == 3000
    exported = server.get(csv_href)
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [f"{r['endpoint']}/{r['dataset']}/{r['run']}" for r in rows] == shown
    nan_row = next(r for r in rows if r["run"] == "r8-diverged")
    assert nan_row["train/loss:last"] == "nan" and float(nan_row["train/loss:min"]) > 0
    assert server.get("/compare/export", params={"run": runs[0], "tag": "x", "format": "xml"}).status_code == 400


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_compare_page_in_both_viewports_and_schemes(server: Server, viewport: str, scheme: str) -> None:
    runs = ["lora/alpaca/r32-lr2e-4", "lora/alpaca/r16-lr1e-4", "lora/dolly/r8-diverged", "chat/alpaca/sft-base"]
    url = (server.url + "/compare?tag=train/loss&tag=eval/accuracy&sort=train/loss:min&"
           + "&".join(f"run={r}" for r in runs))
    with chromium_page(viewport=VIEWPORTS[viewport], color_scheme=scheme) as page:
        seen = watch(page)
        page.goto(url)
        page.locator("#curves[data-loaded=true] figure.curve .uplot canvas").first.wait_for(timeout=20_000)
        page.locator("#best-chart .uplot canvas").wait_for(timeout=20_000)
        # Nothing wider than the screen but the table, which scrolls in its own box.
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= VIEWPORTS[viewport]["width"], width
        # Each run on one line, on a phone too (the table's box scrolls sideways instead).
        lines = page.locator("#compare tbody td:first-child a:first-child").evaluate_all(
            "links => links.map(a => a.getClientRects().length)")
        assert lines and set(lines) == {1}, lines
        if viewport == "desktop" and scheme == "light":  # for the README
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "compare.png"), full_page=True)
        assert serious_violations(page) == []
        assert seen == {"console": [], "failed": []}
