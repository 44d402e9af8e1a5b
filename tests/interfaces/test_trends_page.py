"""The /trends and /usage pages in Chromium against ``tbhub serve``: compute figures from the stored
scalar states (the alert engine's parse worker), trend charts whose points open their runs, a plain
table beside them, explanatory empty states, the usage chart's domain with one snapshot; at 1440 and
390 px, light and dark, no console error, no failed request, no serious axe violation; with a target
(``?target=eval/loss<0.05``), the time and cost to it on both pages and their API, and a bad target or an
unknown tag said beside the field (issue 18)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from serving import Server, serve, wait_for
from test_compare_page import VIEWPORTS, serious_violations, watch
from test_usage import CATCH_CHARTS

from browser import CHROMIUM, chromium_page
from eventfiles import file_version_event, scalar_event, write_events

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is installed by .ci/run"),
]


#: Every run's eval/loss is 1/(step + 1), a point every 2 s from its start: below 0.05 first at step 20,
#: 42 s of busy time in (the file-version event at the start, then 21 points); 8 GPUs at 2.5 EUR.
GOAL = "eval/loss<0.05"
TO_GOAL_S = 42.0


def write_run(root: Path, relpath: str, t0: float, steps: int) -> None:
    events = [file_version_event(t0)]
    events += [scalar_event(s, 1.0 / (s + 1), "eval/loss", wall_time=t0 + 2.0 * (s + 1)) for s in range(steps)]
    events.append(scalar_event(steps - 1, 32.0, "train/train_samples_per_second", wall_time=t0 + 2.0 * steps + 1))
    write_events(root / relpath / "events.out.tfevents.1.host", events)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("logs")
    today = dt.datetime.now(tz=dt.UTC).replace(hour=12, minute=0, second=0, microsecond=0).timestamp()
    for i in range(9):  # three weeks of three runs: by week
        write_run(root, f"claims-v2/r{i}", today - 86400 - (i // 3) * 7 * 86400 - (i % 3) * 3600, 100 + 20 * i)
    for i in range(2):  # two runs: by run
        write_run(root, f"chat/c{i}", today - 86400 * (i + 1), 60)
    with serve(tmp_path_factory.mktemp("srv"), {"lora": root}, extra_args=("--job-interval", "1"),
               extra_config='[cost]\ngpu_hour = 2.5\ngpus = 8\ncurrency = "EUR"\n') as running:

        def computed() -> bool | None:
            page = running.get("/trends").text
            return True if page.count('class="trend-group"') == 2 and "trend-chart" in page else None

        wait_for(computed, 90, "the trends of both datasets")
        wait_for(lambda: running.get("/api/usage/history").json()["times"], 30, "a usage snapshot")
        yield running


def test_a_trend_point_opens_its_run_and_the_table_lists_the_runs(server: Server) -> None:
    with chromium_page(viewport=VIEWPORTS["desktop"]) as page:
        seen = watch(page)
        page.add_init_script(CATCH_CHARTS)
        page.goto(server.url + "/trends?metric=eval/loss")
        page.wait_for_function("window.charts.length >= 6", timeout=20_000)
        groups = page.locator("section.trend-group h2").all_inner_texts()
        assert [g.split(" ")[0] for g in groups] == ["lora/chat", "lora/claims-v2"]
        assert "by run" in groups[0] and "by week" in groups[1]
        weeks = page.locator("#trend-1 table.trend-table tbody tr")
        assert weeks.count() == 3
        assert sum(len(weeks.nth(i).locator("td.trend-runs a").all()) for i in range(3)) == 9
        assert page.locator("#trend-1 table.trend-table thead").inner_text().count("best eval/loss:min") == 1
        # The first chart of chat (by run): click its first point, land on that run's page.
        point = page.evaluate("""() => { const u = window.charts[0]; const r = u.over.getBoundingClientRect();
            return {x: r.left + u.valToPos(u.data[0][0], 'x'), y: r.top + u.valToPos(u.data[1][0], 'y')}; }""")
        page.mouse.move(point["x"], point["y"])
        page.wait_for_function("window.charts[0].cursor.idx === 0", timeout=5_000)
        with page.expect_navigation():
            page.mouse.click(point["x"], point["y"])
        assert page.url.endswith("/runs/lora/chat/c1"), page.url  # the older run is the first point
        assert seen["console"] == []


def test_trends_empty_state_explains(server: Server) -> None:
    with chromium_page(viewport=VIEWPORTS["phone"]) as page:
        page.goto(server.url + "/trends?dataset=nothing-*")
        text = page.locator("#trends-empty").inner_text()
        assert "nothing-*" in text and "tbhub trends" in text
    assert server.get("/trends", params={"metric": "eval/loss:best"}).status_code == 400


def test_usage_page_shows_compute_beside_storage_and_a_sane_chart_domain(server: Server) -> None:
    with chromium_page(viewport=VIEWPORTS["desktop"]) as page:
        page.add_init_script(CATCH_CHARTS)
        page.goto(server.url + "/usage")
        row = page.locator('#usage tr[data-dataset="lora/chat"]')
        hours = float(row.locator('td[data-field="gpu_hours_this_month"]').inner_text() or "0")
        hours += float(row.locator('td[data-field="gpu_hours_last_month"]').inner_text() or "0")
        # two runs of 60 scalars 2 s apart (+1 s to the final summary): 121 s of busy time each, 8 GPUs
        assert hours == pytest.approx(2 * 121 / 3600 * 8, abs=0.01)
        assert page.locator("#price-note").count() == 0
        page.wait_for_function("window.charts.length && window.charts[0].scales.x.max != null", timeout=20_000)
        span = page.evaluate("window.charts[0].scales.x.max - window.charts[0].scales.x.min")
        assert span <= 3 * 86400, span  # one snapshot: a day either side, not 2026 to 2029


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("viewport", list(VIEWPORTS))
@pytest.mark.parametrize("path", ["/trends?metric=eval/loss", "/usage", f"/trends?metric=eval/loss&target={GOAL}",
                                  f"/usage?target={GOAL}"])
def test_pages_in_both_viewports_and_schemes(server: Server, path: str, viewport: str, scheme: str) -> None:
    with chromium_page(viewport=VIEWPORTS[viewport], color_scheme=scheme) as page:
        seen = watch(page)
        page.goto(server.url + path)
        page.locator(".uplot canvas").first.wait_for(timeout=20_000)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= VIEWPORTS[viewport]["width"], width  # wide tables scroll in their own box
        assert serious_violations(page) == []
        assert seen == {"console": [], "failed": []}


def test_an_unpriced_hub_says_so(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    write_run(root, "chat/c0", time.time() - 86400, 30)
    with serve(tmp_path / "srv", {"lora": root}) as running:
        wait_for(lambda: True if "trend-chart" in running.get("/trends").text else None, 90, "the trend")
        usage = running.get("/usage").text
        assert "price not set: set [cost] gpu_hour" in usage and "not set" in usage
        # Nor a storage price: the month's storage cost says so too, never a 0.00 that reads as free.
        assert "price not set: set [cost] storage_per_gb_month" in usage
        assert '<td class="num" data-field="monthly_cost"><span class="cost-unset">not set</span></td>' in usage
        assert running.get("/api/usage").json()[0]["monthly_cost"] is None
        assert "price not set: set [cost] gpu_hour" in running.get("/trends").text


def test_a_run_still_training_is_marked_and_not_costed_yet(tmp_path: Path) -> None:
    """The newest run of a dataset is often still training: its spend so far is not its cost, so its point
    says "training" instead of drawing a drop in GPU-hours and cost; it is listed with a badge."""
    root = tmp_path / "logs"
    write_run(root, "chat/c0", time.time() - 2 * 86400, 30)
    write_run(root, "chat/c1", time.time() - 86400, 30)
    t0 = time.time() - 120
    write_events(root / "chat" / "live" / "events.out.tfevents.1.host",  # no final summary: running
                 [file_version_event(t0), *(scalar_event(s, 1.0 / (s + 1), "eval/loss", wall_time=t0 + 2.0 * s)
                                            for s in range(30))])
    with serve(tmp_path / "srv", {"lora": root}, extra_config="[cost]\ngpu_hour = 2.5\n") as running:
        wait_for(lambda: True if running.get("/trends").text.count("badge status running") else None, 90,
                 "the trend with the live run")
        with chromium_page(viewport=VIEWPORTS["desktop"]) as page:
            seen = watch(page)
            page.add_init_script(CATCH_CHARTS)
            page.goto(running.url + "/trends")
            page.wait_for_function("window.charts.length >= 3", timeout=20_000)
            rows = page.locator("table.trend-table tbody tr")
            assert rows.count() == 3
            live = rows.nth(2)
            assert live.locator("td").first.inner_text() == "live"
            # steps/s, samples/s, GPU-h/run, USD/run
            assert live.locator("td.num").all_inner_texts()[2:4] == ["training", "training"]
            assert live.locator(".trend-runs .badge").inner_text() == "training"
            for i in range(2):
                cells = rows.nth(i).locator("td.num").all_inner_texts()
                assert float(cells[2]) > 0 and float(cells[3]) > 0 and not rows.nth(i).locator(".badge").count()
            # The GPU-hours chart has no value at the live run's point (a gap, not a drop).
            gpu = page.evaluate("""() => window.charts.map(u => u.root.parentElement.previousElementSibling)
                .findIndex(h => h && h.textContent.startsWith('GPU-hours'))""")
            assert page.evaluate(f"window.charts[{gpu}].data[1]")[2] is None
            assert seen == {"console": [], "failed": []}


def test_the_api_answers_what_the_pages_show(server: Server) -> None:
    usage = {r["dataset"]: r for r in server.get("/api/usage").json()}
    assert usage["chat"]["gpu_hours"] == pytest.approx(2 * 121 / 3600 * 8, abs=1e-3)
    assert usage["chat"]["currency"] == "EUR" and usage["chat"]["price_note"] is None
    assert usage["chat"]["compute_cost"] == pytest.approx(usage["chat"]["gpu_hours"] * 2.5, rel=1e-3)
    trends = server.get("/api/trends", params={"metric": "eval/loss"}).json()
    assert [(t["dataset"], t["by"], len(t["points"])) for t in trends] == [("chat", "run", 2), ("claims-v2", "week", 3)]
    assert "charts" not in trends[0] and trends[0]["points"][0]["runs"][0]["href"] == "/runs/lora/chat/c1"
    assert server.get("/api/trends", params={"metric": "eval/loss:best"}).status_code == 400


def test_a_target_on_both_pages_and_their_api(server: Server) -> None:
    hours = TO_GOAL_S / 3600 * 8
    with chromium_page(viewport=VIEWPORTS["desktop"]) as page:
        seen = watch(page)
        page.goto(server.url + "/usage")
        page.locator('input[name="target"]').fill(GOAL)
        page.get_by_role("button", name="show").click()
        page.wait_for_load_state()
        assert "target=eval%2Floss%3C0.05" in page.url  # a view to share
        assert page.locator('input[name="target"]').input_value() == GOAL
        cell = page.locator('#usage tr[data-dataset="lora/chat"] td[data-field="target_gpu_hours_median"]')
        assert cell.inner_text() == f"{hours:.2f} (2)"
        cost = page.locator('#usage tr[data-dataset="lora/chat"] td[data-field="target_compute_cost_median"]')
        assert float(cost.inner_text()) == pytest.approx(hours * 2.5, abs=0.005)
        read = page.locator("#target-read").inner_text()
        assert "11 runs that logged eval/loss" in read, read
        assert "CLI" not in page.content() and "never does on a request" not in page.content()
        page.goto(server.url + "/trends?dataset=chat&target=" + GOAL)
        cells = page.locator('#trend-0 td[data-field="target_hours"]').all_inner_texts()
        assert [float(c) for c in cells] == pytest.approx([TO_GOAL_S / 3600] * 2, rel=1e-2)
        assert page.locator('.trend-chart[data-measure="target_hours"]').count() == 1
        read = page.locator("#target-read").inner_text()
        assert "2 runs that logged eval/loss in datasets matching chat" in read and "2 unchanged" in read, read
        assert page.locator("#target-pending").count() == 0
        assert seen == {"console": [], "failed": []}
    usage = server.get("/api/usage", params={"target": GOAL})
    assert usage.status_code == 200 and usage.headers["x-tbhub-target-pending"] == "0"
    chat = next(r for r in usage.json() if r["dataset"] == "chat")
    assert chat["target"] == GOAL and chat["target_runs"] == 2
    assert chat["target_gpu_hours_median"] == pytest.approx(hours, abs=1e-4)
    trends = server.get("/api/trends", params={"target": GOAL, "dataset": "claims-*"}).json()
    assert [t["dataset"] for t in trends] == ["claims-v2"] and trends[0]["target"] == GOAL
    assert all(p["target_hours"] == pytest.approx(TO_GOAL_S / 3600, rel=1e-3) for p in trends[0]["points"])


def test_a_bad_target_or_an_unknown_tag_is_said_beside_the_field(server: Server) -> None:
    for path in ("/api/usage", "/api/trends"):
        bad = server.get(path, params={"target": "eval/loss=0.5"})
        assert bad.status_code == 400 and "is not a target like eval/loss<0.5" in bad.json()["error"]
        unknown = server.get(path, params={"target": "eval/los<0.5"})
        assert unknown.status_code == 400 and unknown.json()["error"] == "no run logged eval/los"
    with chromium_page(viewport=VIEWPORTS["phone"], color_scheme="dark") as page:
        answer = page.goto(server.url + "/usage?target=eval/loss=0.5")
        assert answer is not None and answer.status == 400
        assert "is not a target like eval/loss<0.5" in page.locator("#target-error").inner_text()
        assert page.locator('#usage tr[data-dataset="lora/chat"]').count() == 1  # the table, without a target
        assert page.locator('input[name="target"]').get_attribute("aria-invalid") == "true"
        answer = page.goto(server.url + "/trends?target=eval/los<0.5")
        assert answer is not None and answer.status == 400
        assert page.locator("#target-error").inner_text().startswith("no run logged eval/los")
        assert page.locator("section.trend-group").count() == 2
        assert page.locator('input[name="target"]').get_attribute("aria-invalid") == "true"
        assert serious_violations(page) == []
        answer = page.goto(server.url + "/trends?metric=eval/loss:best")
        assert answer is not None and answer.status == 400
        assert page.locator('input[name="metric"]').get_attribute("aria-invalid") == "true"
        assert page.locator('input[name="target"]').get_attribute("aria-invalid") is None
        assert "without that metric" in page.locator("#target-error").inner_text()
