"""The hub page, the runs explorer over 10,000 runs and the other pages of the design system, in real
Chromium: both viewports, light and dark, no console error, no failed request, no CSP violation, no
serious axe-core finding; sort, filter, pages, selection to compare and TensorBoard, live updates.

The hub runs in-process (``inprocess.serve_inprocess``: real uvicorn, real background scans, no
TensorBoard children); the log root holds 10,000 real runs (``manyruns``). The screenshots of the
README (``docs/screenshots/``) are taken here, so they always show the pages as they are.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from inprocess import PageWatch, Served, axe_serious, serve_inprocess
from serving import wait_for

from browser import CHROMIUM, chromium_page
from eventfiles import write_scalar_file
from manyruns import run_path, write_many_runs
from tbhub.core.accounts import Role
from tbhub.core.explorer import runs_filter

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is installed by .ci/run"),
]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
N = 10_000
VIEWPORTS = ((1440, 900), (390, 844))
SCHEMES = ("light", "dark")
CSP_LOG = ("document.addEventListener('securitypolicyviolation', e => "
           "console.error('CSP ' + e.violatedDirective + ' ' + e.blockedURI))")


def _config(base: Path, auth: str = "none") -> str:
    return (f'[state]\ndir = "{base / "state"}"\n[auth]\nmode = "{auth}"\n'
            f'[endpoints.big]\nlogdir = "{base / "big"}"\ntitle = "LoRA sweeps"\n'
            f'[endpoints.lora]\nlogdir = "{base / "lora"}"\n'
            f'[endpoints.empty]\nlogdir = "{base / "empty"}"\n'
            '[retention.lora]\nkeep_days = 60\n')


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("explorer")
    write_many_runs(base / "big", N)
    for name in ("r1", "r2", "r3"):
        write_scalar_file(base / "lora" / "alpaca" / name, range(20), ("train/loss",))
    (base / "empty").mkdir()
    with serve_inprocess(_config(base), base) as served:
        notes, state = served.services.annotations, served.services.state
        notes.tag("big", run_path(0), "baseline", "ada")
        notes.tag("big", run_path(1), "ablation", "ada")
        notes.add_note("big", run_path(0), "LR too high, see [the sweep](https://example.org/sweep)", "ada")
        state.pin("big", run_path(2), "ada")
        state.save_run_states("big", [
            (run_path(0), "running", "k0", "written to 1 minute ago"),
            (run_path(3), "diverged", "k3", "eval/loss is NaN at step 20"),
            (run_path(4), "stalled", "k4", "no write for 2 h"),
            *((run_path(i), "finished", f"k{i}", "train_runtime logged") for i in range(5, 400)),
        ])
        state.insert_alert(key="a3", endpoint="big", dataset="alpaca", run=run_path(3).split("/")[1],
                           status="diverged", at=time.time() - 300, message="eval/loss is NaN at step 20",
                           details="{}", url=None)
        yield served


def _check(page: Any, watch: PageWatch, where: str, width: int) -> None:
    """What every page must be: no console error or failed request, no serious axe finding, and no
    page-wide horizontal scroll (wide tables scroll inside their box)."""
    assert watch.clean(), (where, watch.errors, watch.failed)
    overflow = page.evaluate("document.scrollingElement.scrollWidth")
    assert overflow <= width, (where, f"the page is {overflow} px wide")
    assert axe_serious(page) == [], where


PAGES = ["/", "/runs", "/endpoints/big", "/endpoints/big?status=diverged", "/endpoints/empty",
         "/runs?text=no-such-run", "/alerts", "/alerts/rules", "/bookmarks", "/admin/retention",
         "/endpoints/lora/clean"]


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize(("width", "height"), VIEWPORTS)
def test_every_page_in_both_viewports_and_schemes(hub: Served, width: int, height: int, scheme: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with chromium_page(viewport={"width": width, "height": height}, color_scheme=scheme) as page:
        page.add_init_script(CSP_LOG)
        watch = PageWatch.on(page)
        for path in PAGES:
            answer = page.goto(hub.url + path)
            assert answer is not None and answer.status == 200, path
            page.wait_for_load_state("networkidle")
            _check(page, watch, f"{path} {width} {scheme}", width)
            if path in ("/", "/endpoints/big") and width == 1440:
                name = {"/": "hub", "/endpoints/big": "explorer"}[path]
                page.screenshot(path=str(SCREENSHOTS / f"{name}{'-dark' if scheme == 'dark' else ''}.png"))
        # TensorBoard children listen on 127.0.0.1 unless exposed: the hub links no port it cannot reach.
        page.goto(hub.url + "/")
        assert page.get_by_text("direct :").count() == 0
        assert page.locator('#endpoints a[href^="http://"]').count() == 0
        # The explorer's filters fold on a phone; the nav folds behind its Menu button.
        page.goto(hub.url + "/endpoints/big")
        # A note's preview is what it says, not its markdown.
        notes = page.locator("#runs td.note-preview").all_inner_texts()
        assert any("LR too high, see the sweep" in n for n in notes) and not any("](" in n for n in notes), notes
        # Each run name on one line, at 390 px too (its box scrolls sideways instead).
        lines = page.locator("#runs a.run-name").evaluate_all("links => links.map(a => a.getClientRects().length)")
        assert lines and set(lines) == {1}, lines
        if width < 720:
            assert page.locator("#filter-box").evaluate("el => el.open") is False
            assert not page.locator("#site-nav").is_visible()
            page.click(".nav-toggle")
            assert page.locator('#site-nav a[aria-current="page"]').inner_text() == "Runs"
        else:
            assert page.locator('#site-nav a[aria-current="page"]').inner_text() == "Runs"
        # Dark mode reaches the tokens the charts read.
        text = page.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--chart-text').trim()")
        assert text == ("#c9d1d9" if scheme == "dark" else "#424a53")


def test_login_and_setup_pages(tmp_path: Path) -> None:
    (tmp_path / "big").mkdir()
    (tmp_path / "lora").mkdir()
    (tmp_path / "empty").mkdir()
    with serve_inprocess(_config(tmp_path, auth="password"), tmp_path) as served:
        link = served.services.accounts.create_setup_token()
        for width, height in VIEWPORTS:  # the setup page, while no account exists
            for scheme in SCHEMES:
                with chromium_page(viewport={"width": width, "height": height}, color_scheme=scheme) as page:
                    page.add_init_script(CSP_LOG)
                    watch = PageWatch.on(page)
                    page.goto(served.url + f"/setup/{link}")
                    assert page.locator("input[name=password2]").count() == 1
                    _check(page, watch, f"setup {width} {scheme}", width)
        served.services.accounts.add_user("ada", Role.ADMIN, "ada-password-1")
        for width, height in VIEWPORTS:
            for scheme in SCHEMES:
                with chromium_page(viewport={"width": width, "height": height}, color_scheme=scheme) as page:
                    page.add_init_script(CSP_LOG)
                    watch = PageWatch.on(page)
                    page.goto(served.url + "/login")
                    _check(page, watch, f"login {width} {scheme}", width)
                    assert page.locator('label:has-text("Name") input[name="name"]').count() == 1
                    page.fill("input[name=name]", "ada")
                    page.fill("input[name=password]", "ada-password-1")
                    page.click("button[type=submit]")
                    page.wait_for_url(served.url + "/")
                    page.goto(served.url + "/admin")
                    _check(page, watch, f"admin {width} {scheme}", width)
                    if width < 720:
                        page.click(".nav-toggle")
                    assert page.locator("#site-nav a[aria-current=page]").inner_text() == "Admin"
        # A session that ends while a live page polls leads to the login page, which leads back.
        with chromium_page(viewport={"width": 1440, "height": 900}) as page:
            page.goto(served.url + "/login?next=/runs")
            page.fill("input[name=name]", "ada")
            page.fill("input[name=password]", "ada-password-1")
            page.click("button[type=submit]")
            page.wait_for_url(served.url + "/runs")
            page.context.clear_cookies()
            page.wait_for_url(re.compile(r"/login\?next=%2Fruns"), timeout=20_000)


def _rows(page: Any) -> list[str]:
    return page.locator("#runs tbody tr").evaluate_all("rows => rows.map(r => r.dataset.run)")  # type: ignore[no-any-return]


def _column(page: Any, index: int) -> list[str]:
    return page.locator(f"#runs tbody tr td:nth-child({index})").all_inner_texts()  # type: ignore[no-any-return]


def _size(text: str) -> float:
    number, unit = text.split()
    return float(number) * {"B": 1, "kB": 1e3, "MB": 1e6}[unit]


def test_explorer_sorts_filters_and_pages_through_10000_runs(hub: Served) -> None:
    with chromium_page(viewport={"width": 1440, "height": 900}) as page:
        watch = PageWatch.on(page)
        page.goto(hub.url + "/endpoints/big")
        assert page.locator("#result-count").inner_text() == "Runs 1–50 of 10,000"
        assert len(_rows(page)) == 50
        # Sort by size: descending first, then ascending; the URL says so (shareable).
        page.click('th a[data-sort="size"]')
        page.wait_for_url(re.compile(r"sort=-size"))
        sizes = [_size(t) for t in _column(page, 8)]
        assert sizes == sorted(sizes, reverse=True)
        largest = sizes[0]
        page.click('th a[data-sort="size"]')
        page.wait_for_url(re.compile(r"sort=size(&|$)"))
        sizes = [_size(t) for t in _column(page, 8)]
        assert sizes == sorted(sizes) and sizes[0] < largest
        assert page.locator('th[aria-sort="ascending"]').inner_text().startswith("size")
        # Sort by run name, every page in order across a page boundary.
        page.click('th a[data-sort="run"]')
        page.wait_for_url(re.compile(r"sort=run"))
        first = _column(page, 3)
        page.click("#page-next")
        page.wait_for_url(re.compile(r"page=2"))
        second = _column(page, 3)
        assert first + second == sorted(first + second) and not set(first) & set(second)
        assert page.locator("#result-count").inner_text() == "Runs 51–100 of 10,000"
        # The last page, from the page links.
        page.locator("nav.pages a", has_text="200").click()
        page.wait_for_url(re.compile(r"page=200"))
        assert page.locator("#result-count").inner_text() == "Runs 9,951–10,000 of 10,000"
        # Filters: dataset and status from the form; the view is in the URL and survives a reload.
        page.goto(hub.url + "/endpoints/big")
        page.fill('input[name="dataset"]', "alpaca")
        page.select_option('select[name="status"]', "finished")
        page.click("#filters button[type=submit]")
        page.wait_for_url(re.compile(r"dataset=alpaca"))
        query = parse_qs(urlsplit(page.url).query)
        assert query["dataset"] == ["alpaca"] and query["status"] == ["finished"]
        finished_alpaca = len([i for i in range(5, 400) if run_path(i).startswith("alpaca/")])
        page.reload()
        assert page.locator("#result-count").inner_text() == f"Runs 1–{finished_alpaca} of {finished_alpaca} matching"
        assert {t.strip() for t in _column(page, 2)} == {"alpaca"}
        # Free text finds a note's words; tag and pinned filters; an age range.
        for params, expected in (("text=too+high", [run_path(0)]), ("tag=ablation", [run_path(1)]),
                                 ("pinned=yes", [run_path(2)]), ("status=diverged", [run_path(3)])):
            page.goto(hub.url + "/endpoints/big?" + params)
            assert _rows(page) == expected, params
        page.goto(hub.url + "/endpoints/big?newer=1h")
        assert page.locator("#runs tbody tr").count() >= 1
        page.goto(hub.url + "/endpoints/big?text=nothing-like-this")
        assert "No run matches" in page.locator("#no-match").inner_text()
        # Status and age are separate badges; the age colour is on the age badge only, never on the row.
        page.goto(hub.url + "/endpoints/big?status=diverged")
        row = page.locator(f'tr[data-run="{run_path(3)}"]')
        assert row.locator(".badge.status.diverged").inner_text() == "diverged"
        assert "NaN" in (row.locator(".badge.status").get_attribute("title") or "")
        assert row.get_attribute("class") is None
        assert row.locator("td.age-cell .age").count() == 1
        # A run the alert engine has not seen says so, in the same words as the hub's summary.
        page.select_option('select[name="status"]', label="not judged")
        page.click("#filters button[type=submit]")
        page.wait_for_url(re.compile(r"status=unknown"))
        assert set(page.locator("#runs tbody .badge.status").all_inner_texts()) == {"not judged"}
        # The sticky header stays at the top of the table's box while its rows scroll.
        page.goto(hub.url + "/endpoints/big?per=200")
        box = page.locator(".explorer-scroll")
        box.evaluate("el => el.scrollTop = 3000")
        top = box.evaluate("el => el.getBoundingClientRect().top")
        head = page.locator("#runs thead th").first.evaluate("el => el.getBoundingClientRect().top")
        assert abs(head - top) < 3, (head, top)
        # Each row links to the run's TensorBoard charts, filtered to that run and its sub-runs.
        tb = page.locator("#runs tbody tr a.tb-link").first.get_attribute("href") or ""
        relpath = _rows(page)[0]
        assert unquote(tb.split("regexInput=")[1]) == runs_filter([relpath])
        assert watch.clean(), (watch.errors, watch.failed)


def test_selection_goes_to_compare_tensorboard_and_clean(hub: Served) -> None:
    with chromium_page(viewport={"width": 1440, "height": 900}) as page:
        watch = PageWatch.on(page)
        page.route("**/compare?**", lambda route: route.fulfill(status=200, body="compare", content_type="text/html"))
        page.goto(hub.url + "/endpoints/big?sort=run")
        assert page.locator("#compare-selected").is_disabled()
        picked = _rows(page)[:3]
        for relpath in picked:
            page.locator(f'tr[data-run="{relpath}"] input[name=run]').check()
        assert page.locator("#selected-count").inner_text() == "3 selected"
        page.click("#compare-selected")
        page.wait_for_url("**/compare?**")
        assert parse_qs(urlsplit(page.url).query)["run"] == [f"big/{p}" for p in picked]

        # A run picked on another page of the explorer goes along too.
        page.goto(hub.url + "/endpoints/big?sort=run")
        page.click("#page-next")
        page.wait_for_url(re.compile("page=2"))
        other = _rows(page)[0]
        page.locator(f'tr[data-run="{other}"] input[name=run]').check()
        assert page.locator("#selected-count").inner_text() == "4 selected"
        with page.expect_response(lambda r: "/explore/tensorboard?" in r.url) as answer:
            page.click("#tb-selected")
        location = answer.value.headers["location"]
        assert location.startswith("/tb/big/#scalars&regexInput=")
        regex = unquote(location.split("regexInput=")[1])
        assert regex == runs_filter([other, *picked])  # the page's own ticks first, then those carried along

        # Clean (an admin on one endpoint) opens the clean flow's first page with the runs ticked.
        page.goto(hub.url + "/endpoints/big?sort=run")
        page.click("#clear-selection")
        assert page.locator("#selected-count").inner_text() == "none selected"
        page.locator(f'tr[data-run="{picked[0]}"] input[name=run]').check()
        page.click("#clean-selected")
        page.wait_for_url("**/endpoints/big/clean?**")
        assert page.locator(f'#clean-runs tr[data-run="{picked[0]}"] input[type=checkbox]').is_checked()
        assert page.locator("#clean-runs input[type=checkbox]:checked").count() == 1

        # Across endpoints: compare works, TensorBoard (one endpoint's runs) does not.
        page.goto(hub.url + "/runs?sort=endpoint")
        assert page.locator("#selected-count").inner_text() == "none selected"  # a selection per page path
        page.locator("#runs tbody tr[data-endpoint=big] input[name=run]").first.check()
        page.goto(hub.url + "/runs?endpoint=lora")
        page.locator("#runs tbody tr[data-endpoint=lora] input[name=run]").first.check()
        assert page.locator("#selected-count").inner_text() == "2 selected"
        assert page.locator("#compare-selected").is_enabled() and page.locator("#tb-selected").is_disabled()
        assert page.locator("#tb-hint").is_visible()
        # No TensorBoard runs in this in-process hub: the redirect above ended at the proxy's 502.
        watch.failed = [f for f in watch.failed if not f.endswith("/tb/big/ 502")]
        watch.errors = [e for e in watch.errors if "502 (Bad Gateway)" not in e]
        assert watch.clean(), (watch.errors, watch.failed)


def test_live_updates_without_reload_and_pause_when_hidden(hub: Served) -> None:
    root = Path(hub.services.spec("lora").logdir)
    with chromium_page(viewport={"width": 1440, "height": 900}) as page:
        watch = PageWatch.on(page)
        page.goto(hub.url + "/endpoints/lora")
        page.evaluate("window.sameDocument = true")
        assert page.locator('tr[data-run="alpaca/live"]').count() == 0
        write_scalar_file(root / "alpaca" / "live", range(5), ("train/loss",))
        page.locator('tr[data-run="alpaca/live"]').wait_for(timeout=30_000)
        assert page.evaluate("window.sameDocument") is True  # no reload: the rows were swapped in
        assert page.locator("#result-count").inner_text() == "Runs 1–4 of 4"

        # The hub's cards and the alert feed follow too.
        page.goto(hub.url + "/")
        page.evaluate("window.sameDocument = true")
        card = page.locator('article[data-endpoint="lora"] dl')
        assert "4" in card.inner_text()
        write_scalar_file(root / "alpaca" / "live2", range(5), ("train/loss",))
        wait_for(lambda: "5" in card.inner_text().split("runs")[1], 30, "the card to count the new run")
        page.goto(hub.url + "/alerts")
        page.evaluate("window.sameDocument = true")
        hub.services.state.insert_alert(key="live-1", endpoint="lora", dataset="alpaca", run="live",
                                        status="stalled", at=time.time(), message="no write for 30 min",
                                        details="{}", url=None)
        page.locator("#alerts tr", has_text="no write for 30 min").wait_for(timeout=30_000)
        assert page.evaluate("window.sameDocument") is True

        # A hidden tab asks nothing; shown again, it refreshes at once.
        page.goto(hub.url + "/endpoints/lora")
        polls: list[str] = []
        page.on("request", lambda r: polls.append(r.url) if r.headers.get("hx-request") else None)
        page.evaluate("Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});"
                      "document.dispatchEvent(new Event('visibilitychange'))")
        page.wait_for_timeout(12_000)
        assert polls == []
        page.evaluate("Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});"
                      "document.dispatchEvent(new Event('visibilitychange'))")
        wait_for(lambda: polls, 5, "a refresh when the tab is visible again")
        assert watch.clean(), (watch.errors, watch.failed)
