"""The run page: its TensorBoard link shows the run and its sub-runs; each tag chip holds its own
remove button."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest
from serving import serve

from browser import chromium_page
from eventfiles import write_scalar_file
from tbhub.core.bookmarks import run_filter, tensorboard_link

RUN = "alpaca/r32-lr2e-4-20261204"


def link_filter(link: str) -> str:
    fragment = link.split("#", 1)[1]
    return unquote(dict(p.split("=", 1) for p in fragment.split("&")[1:])["regexInput"])


def test_the_filter_matches_the_run_and_its_sub_runs_only() -> None:
    pattern = re.compile(link_filter(tensorboard_link("lora", "alpaca/r32")))
    assert pattern.pattern == "^alpaca/r32(/|$)"
    for name in ("alpaca/r32/train", "alpaca/r32/eval", "alpaca/r32"):
        assert pattern.search(name), name
    for name in ("alpaca/r32-other", "alpaca/r32-other/train", "alpaca/r3", "x/alpaca/r32", "alpaca/r32x"):
        assert not pattern.search(name), name
    odd = re.compile(run_filter("ds/r.1+(a)[b]|c$^"))
    assert odd.search("ds/r.1+(a)[b]|c$^/train") and not odd.search("ds/rx1+(a)[b]|c$^/train")
    assert run_filter("r32") == "^r32(/|$)"  # the {run} layout: no dataset


@pytest.mark.slow
def test_the_tensorboard_link_lists_the_runs_sub_runs(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    write_scalar_file(logs / RUN / "train", range(20), ("loss",))
    write_scalar_file(logs / RUN / "eval", range(0, 20, 5), ("loss",))
    write_scalar_file(logs / (RUN + "-other") / "train", range(20), ("loss",))
    viewport = {"width": 1400, "height": 900}
    with serve(tmp_path / "srv", {"lora": logs}) as server, chromium_page(viewport=viewport) as tab:
        tab.goto(f"{server.url}/runs/lora/{RUN}")
        link = tab.locator("a.tb-link")
        assert link_filter(link.get_attribute("href")) == "^alpaca/r32-lr2e-4-20261204(/|$)"
        with tab.expect_response(lambda r: r.url.endswith("/data/runs"), timeout=60_000) as fetched:
            link.click()
        tab.wait_for_url("**/tb/lora/**")
        # The run list TensorBoard's own page fetched through the hub.
        assert set(fetched.value.json()) == {f"{RUN}/train", f"{RUN}/eval", f"{RUN}-other/train"}
        # TensorBoard's own run list, and its own (JavaScript) reading of the filter.
        runs = tab.evaluate("fetch('data/runs').then(r => r.json())")
        assert set(runs) == {f"{RUN}/train", f"{RUN}/eval", f"{RUN}-other/train"}
        shown = tab.evaluate(
            "([runs, f]) => runs.filter(r => new RegExp(f).test(r))", [runs, link_filter(tab.url)]
        )
        assert sorted(shown) == [f"{RUN}/eval", f"{RUN}/train"]
        # The run selector of the scalars dashboard lists the run's sub-runs, not the other run.
        for sub in ("train", "eval"):
            tab.get_by_text(f"{RUN}/{sub}", exact=True).first.wait_for(timeout=60_000)
        tab.screenshot(path=str(tmp_path / "tensorboard.png"))
        assert tab.get_by_text(f"{RUN}-other/train", exact=True).filter(visible=True).count() == 0


@pytest.mark.slow
def test_each_tag_chip_holds_its_own_remove_button(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    write_scalar_file(logs / RUN / "train", range(5), ("loss",))
    with serve(tmp_path / "srv", {"lora": logs}) as server, chromium_page() as tab:
        tab.goto(f"{server.url}/runs/lora/{RUN}")
        for tag in ("baseline", "lr-sweep"):
            tab.fill("#tag-form input[name=tag]", tag)
            with tab.expect_navigation():
                tab.click("#tag-form button[type=submit]")
        # What Chromium's parser built from the served HTML: each × sits in the chip of its own tag.
        chips = tab.evaluate(
            """() => [...document.querySelectorAll('#tags button')].map(b => {
                 const chip = b.closest('.tag-chip');
                 return chip && [chip.querySelector('.tag').textContent, chip.querySelector('[name=tag]').value,
                                 chip.contains(b), chip.closest('#tags') !== null];
               })"""
        )
        assert chips == [["baseline", "baseline", True, True], ["lr-sweep", "lr-sweep", True, True]]
        with tab.expect_navigation():
            tab.locator(".tag-chip", has_text="baseline").get_by_role("button").click()
        assert tab.locator("#tags .tag").all_inner_texts() == ["lr-sweep"]
