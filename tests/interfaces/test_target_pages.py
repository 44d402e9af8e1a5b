"""A target on /usage larger than a request's read bound, in Chromium: the page says how many runs were not
read to the end, its Reload link reads on from where the last request stopped, and the figures end
equal to the unbounded CLI's; tensorboardX runs, the hub in-process with its bound lowered (issue 18)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from clirun import run_cli
from inprocess import PageWatch, axe_serious, serve_inprocess
from tensorboardX import SummaryWriter
from test_compare_page import VIEWPORTS

from browser import CHROMIUM, chromium_page

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is installed by .ci/run"),
]

GOAL = "eval/loss<0.2"


def write_run(run: Path, t0: float, steps: int) -> None:
    """train/ and eval/ writers as a trainer uses them; eval/loss = 2/(step + 1), 1 s apart."""
    train, evaluation = SummaryWriter(str(run / "train")), SummaryWriter(str(run / "eval"))
    for step in range(steps):
        train.add_scalar("loss", 1 / (step + 1), step, walltime=t0 + step)
        evaluation.add_scalar("loss", 2 / (step + 1), step, walltime=t0 + step + 0.5)
    train.close()
    evaluation.close()


def test_a_target_beyond_the_bound_reads_on_reload_by_reload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "logs"
    t0 = time.time() - 86400
    for i in range(4):
        write_run(root / "claims" / f"r{i}", t0 + i * 7200, 400)
    config = (f'[state]\ndir = "{tmp_path / "state"}"\n[auth]\nmode = "none"\n'
              f'[endpoints.lora]\nlogdir = "{root}"\n[cost]\ngpu_hour = 3.0\n')
    (tmp_path / "cli.toml").write_text(config)
    # The scalar states the hub reads (tbhub trends creates the state database; serve's alert engine
    # would do the same), then the CLI's figures, unbounded.
    code, _, err = run_cli(capsys, "trends", "--config", str(tmp_path / "cli.toml"), "--json")
    assert code == 0, err
    code, out, err = run_cli(capsys, "usage", "--config", str(tmp_path / "cli.toml"), "--json", "--target", GOAL)
    assert code == 0, err
    (expected,) = json.loads(out)
    assert expected["target_runs"] == 4
    # A bound of 20 kB a request: each run's files hold about 28 kB, so it takes several requests.
    monkeypatch.setattr("tbhub.interfaces.web.targeting.HUB_TARGET_READ_LIMIT", 20_000)
    with serve_inprocess(config, tmp_path) as served, chromium_page(viewport=VIEWPORTS["phone"],
                                                                    color_scheme="dark") as page:
        watch = PageWatch.on(page)
        page.goto(f"{served.url}/usage?target={GOAL}")
        pending = page.locator("#target-pending")
        assert pending.count() == 1, page.locator("main").inner_text()[:1500]
        assert "not read to the end" in pending.inner_text() and "Reload" in pending.inner_text()
        assert axe_serious(page) == []
        requests = 1
        while pending.count():
            with page.expect_navigation():
                pending.get_by_role("link", name="Reload").click()
            requests += 1
            assert requests < 20
        assert requests >= 3
        assert "target=eval%2Floss%3C0.2" in page.url or "target=eval/loss%3C0.2" in page.url
        cell = page.locator('#usage tr[data-dataset="lora/claims"] td[data-field="target_gpu_hours_median"]')
        assert cell.inner_text() == f"{expected['target_gpu_hours_median']:.2f} (4)"
        read = page.locator("#target-read").inner_text()
        assert "4 runs that logged eval/loss" in read, read
        assert watch.clean(), (watch.errors, watch.failed)
