"""The run page in Chromium against ``tbhub serve``: the status with its reason, duration, steps/s, the last
and best value of each scalar with a sparkline, the event files with their sizes, the run's alert history
and a link to compare; both viewports, light and dark, no console error, no failed request, no serious
axe violation (issue 17). The TensorBoard link itself: test_run_page.py.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serving import Server, serve, wait_for
from test_compare_page import SCREENSHOTS, VIEWPORTS, serious_violations, watch

from browser import CHROMIUM, chromium_page
from eventfiles import file_version_event, scalar_event, write_events

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is installed by .ci/run"),
]

NAN = float("nan")
T0 = time.time() - 300  # five minutes ago: the README's screenshot shows a run of today
OK, DIVERGED = "alpaca/r32-lr2e-4", "alpaca/r64-lr1e-3"


def write_run(root: Path, relpath: str, steps: int, *, nan_from: int | None = None) -> None:
    """train/loss every step (2 s apart), eval/loss and eval/accuracy every 10 steps."""
    def loss(s: int) -> float:
        return NAN if nan_from is not None and s >= nan_from else 2.0 / (1 + 0.1 * s)

    train = [file_version_event(T0), *(scalar_event(s, loss(s), "loss", wall_time=T0 + 2 * s) for s in range(steps))]
    write_events(root / relpath / "train" / "events.out.tfevents.1.h", train)
    evals = [file_version_event(T0)]
    for s in range(0, steps, 10):
        evals += [scalar_event(s, loss(s) * 1.1, "loss", wall_time=T0 + 2 * s + 1),
                  scalar_event(s, 0.5 + 0.04 * s / 10, "accuracy", wall_time=T0 + 2 * s + 1)]
    write_events(root / relpath / "eval" / "events.out.tfevents.1.h", evals)


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("logs")
    write_run(root, OK, 101)
    write_run(root, DIVERGED, 31, nan_from=20)
    return root


@pytest.fixture(scope="module")
def server(logs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(tmp_path_factory.mktemp("srv"), {"lora": logs}) as running:
        wait_for(lambda: any(a["run"] == "r64-lr1e-3" for a in running.get("/api/alerts").json()), 60,
                 "the alert engine to see the diverged run")
        yield running


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(int(t), dt.UTC).isoformat().replace("+00:00", "Z")


def facts(page: Any) -> dict[str, str]:
    found: dict[str, str] = page.evaluate(
        "() => Object.fromEntries([...document.querySelectorAll('#run-facts div')].map(d => "
        "[d.querySelector('dt').textContent, d.querySelector('dd').textContent.trim()]))"
    )
    return found


def scalar_rows(page: Any) -> dict[str, list[str]]:
    rows: dict[str, list[str]] = page.evaluate(
        "() => Object.fromEntries([...document.querySelectorAll('#run-scalars tbody tr')].map(r => "
        "[r.dataset.tag, [...r.querySelectorAll('td')].map(c => c.textContent.trim())]))"
    )
    return rows


def test_the_diverged_run_says_why_and_when(server: Server, logs: Path) -> None:
    with chromium_page(viewport=VIEWPORTS["desktop"]) as page:
        seen = watch(page)
        page.goto(f"{server.url}/runs/lora/{DIVERGED}")
        assert page.locator("#run-status").inner_text() == "diverged"
        assert page.locator("#run-reason").inner_text() == "eval/loss is NaN at step 20"
        got = facts(page)
        assert got["duration"] == "1m" and got["last step"] == "30"  # steps 0..30, 2 s apart: 61 s
        assert float(got["steps/s"]) == pytest.approx(0.5, rel=0.02)
        # Started and last event are the records' own times (step 0; eval at step 30, 2 s a step), not the
        # files' modification times: a copied or synced log keeps them.
        times = page.locator("#run-facts time").evaluate_all("ts => ts.map(t => t.getAttribute('datetime'))")
        assert times == [_iso(T0), _iso(T0 + 2 * 30 + 1)]
        rows = scalar_rows(page)
        assert rows["train/loss"][0].startswith("nan") and "min" in rows["train/loss"][1]
        best = float(rows["train/loss"][1].split("@")[0])
        assert best == pytest.approx(2.0 / (1 + 0.1 * 19), rel=1e-3)  # the best finite value, at step 19
        assert "11 non-finite" in rows["train/loss"][3]
        assert page.locator("#run-scalars tr[data-tag='train/loss'] .sparkline-nonfinite").count() == 1
        # The alert history of this run (and only of it).
        alerts = page.locator("#run-alerts tbody tr")
        assert alerts.count() == 1 and "eval/loss is NaN at step 20" in alerts.inner_text()
        assert alerts.locator("time[datetime]").inner_text().endswith(" ago")  # relative, exact on hover
        # The feed says the same of delivery: with no channel configured nothing is "pending".
        page.goto(f"{server.url}/alerts")
        row = page.locator("#alerts-live tbody tr", has_text="r64-lr1e-3")
        assert row.locator("td").last.inner_text() == "no channel"
        assert seen == {"console": [], "failed": []}


def test_figures_sparklines_and_files(server: Server, logs: Path) -> None:
    with chromium_page(viewport=VIEWPORTS["desktop"]) as page:
        page.goto(f"{server.url}/runs/lora/{OK}")
        rows = scalar_rows(page)
        assert list(rows) == ["eval/accuracy", "eval/loss", "train/loss"]
        assert rows["eval/accuracy"][0] == "0.9 @100" and rows["eval/accuracy"][1].startswith("0.9 @100 (max)")
        assert float(rows["train/loss"][0].split()[0]) == pytest.approx(2.0 / 11, rel=1e-3)
        assert rows["train/loss"][3] == "101"
        # One sparkline per tag, a line drawn through the points it holds.
        paths = page.locator("#run-scalars svg.sparkline path")
        assert paths.count() == 3
        d = paths.nth(2).get_attribute("d") or ""
        assert d.count("L") == 100  # 101 points (under the 120 a sparkline keeps): all of them
        ys = [float(p.split()[1]) for p in d.replace("M", "L").split("L")[1:]]
        assert ys == sorted(ys)  # a falling loss: y grows downwards in SVG
        assert page.locator("#run-scalars svg.sparkline").first.get_attribute("aria-label")
        files = page.evaluate(
            "() => [...document.querySelectorAll('#run-files tbody tr')].map(r => "
            "[r.cells[0].textContent, Number(r.cells[1].dataset.bytes), r.cells[2].textContent])"
        )
        on_disk = sorted(p for p in (logs / OK).rglob("events.out.*"))
        assert files == [[str(p.relative_to(logs / OK)), p.stat().st_size,
                          f"{(2 * 11 + 1) if 'eval' in str(p) else 102:,}"] for p in on_disk]
        assert page.locator("#no-alerts").count() == 1
        with page.expect_navigation():
            page.click("a.compare-link")
        assert page.url.endswith("/compare?run=lora%2Falpaca%2Fr32-lr2e-4")
        assert page.locator("#run-picker input[name=run]:checked").count() == 1


def test_a_run_not_in_the_index_is_404(server: Server) -> None:
    assert server.get("/runs/lora/alpaca/nope").status_code == 404
    assert server.get("/runs/nope/alpaca/r32-lr2e-4").status_code == 404


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_run_page_in_both_viewports_and_schemes(server: Server, viewport: str, scheme: str) -> None:
    with chromium_page(viewport=VIEWPORTS[viewport], color_scheme=scheme) as page:
        seen = watch(page)
        page.goto(f"{server.url}/runs/lora/{DIVERGED}")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= VIEWPORTS[viewport]["width"], width
        # The sparkline follows the text colour: light on the dark page.
        colour = page.locator("#run-scalars td.spark").first.evaluate("e => getComputedStyle(e).color")
        level = sum(int(c) for c in colour[colour.index("(") + 1 : colour.index(")")].split(",")[:3]) / 3
        assert (level > 128) == (scheme == "dark"), colour
        if viewport == "desktop" and scheme == "light":  # for the README
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "run.png"), full_page=True)
        assert serious_violations(page) == []
        assert seen == {"console": [], "failed": []}


@pytest.fixture(scope="module")
def trainer_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from hf_runs import trained_runs

    root = trained_runs(tmp_path_factory.getbasetemp())  # trained once per session, shared
    # The crashed run is quiet for longer than stalled_after (1 s): stalled, short of its plan.
    with serve(tmp_path_factory.mktemp("srv-hf"), {"hf": root},
               extra_config='[alerts]\nstalled_after = "1s"\n') as running:
        yield running


def test_what_the_trainers_logs_tell(trainer_server: Server) -> None:
    """Runs the Hugging Face Trainer wrote: the framework, the plan and how far the run got (issue 18)."""
    with chromium_page(viewport=VIEWPORTS["desktop"]) as page:
        seen = watch(page)

        def progress(relpath: str) -> dict[str, str] | None:
            page.goto(f"{trainer_server.url}/runs/hf/{relpath}")
            got = facts(page)
            return got if "progress" in got else None

        done = wait_for(lambda: progress("hf/done"), 60, "the scalar states of hf/done")
        assert done["framework"] == "transformers" and done["progress"] == "100% of 12 steps"
        assert page.locator("#run-status").inner_text() == "finished"
        crash = wait_for(lambda: progress("hf/crash"), 60, "the scalar states of hf/crash")
        assert crash["progress"].startswith("crashed? at ") and crash["progress"].endswith("of 20 steps")
        assert "ETA" not in crash
        assert seen == {"console": [], "failed": []}


def test_a_training_run_updates_live_without_a_reload(server: Server, logs: Path) -> None:
    """The run page polls its live part (status, facts, scalars, files) while the tab is visible: steps a
    job writes after the page opened show without a reload, and a note being typed is left alone."""
    events = logs / "live" / "r1" / "events.out.tfevents.1.h"
    now = time.time()
    write_events(events, [file_version_event(now), *(scalar_event(s, 1 / (s + 1), "train/loss", wall_time=now + s / 10)
                                                     for s in range(10))])
    wait_for(lambda: "<dt>last step</dt><dd>9</dd>" in server.get("/runs/lora/live/r1").text, 30,
             "the hub to index the run's 10 steps")
    with chromium_page(viewport=VIEWPORTS["desktop"]) as page:
        seen = watch(page)
        page.goto(f"{server.url}/runs/lora/live/r1")
        assert facts(page)["last step"] == "9"
        page.evaluate("window.__sameDocument = true")
        page.fill("#note-form textarea", "half-typed note")
        more = [scalar_event(s, 1 / (s + 1), "train/loss", wall_time=now + s / 10) for s in range(10, 60)]
        write_events(events, more, append=True)
        page.wait_for_function(
            "() => [...document.querySelectorAll('#run-facts div')].some(d => d.querySelector('dt').textContent"
            " === 'last step' && d.querySelector('dd').textContent.trim() === '59')", timeout=30_000)
        assert page.evaluate("window.__sameDocument") is True  # swapped in place, not reloaded
        assert page.input_value("#note-form textarea") == "half-typed note"
        assert page.locator(".live-note").inner_text().startswith("Updates every")
        assert seen == {"console": [], "failed": []}, seen
