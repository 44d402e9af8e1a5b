"""``tbhub usage``: figures equal a direct walk of the tree; growth from snapshots; cost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from serving import serve

from browser import chromium_page
from eventfiles import write_scalar_file
from tbhub.adapters.db.store import open_state
from tbhub.core.usage import Snapshot
from tbhub.interfaces.records import cost_figure, cost_text

#: Keeps every uPlot chart a page makes in ``window.charts``: its tick labels are drawn on a canvas,
#: and the vendored uPlot keeps the labels it drew in ``axes[i]._values``.
CATCH_CHARTS = """
window.charts = [];
let real;
Object.defineProperty(window, "uPlot", {configurable: true, get: () => real, set: (u) => {
  real = function (...args) { const chart = new u(...args); window.charts.push(chart); return chart; };
  Object.assign(real, u);
}});
"""


def walk(root: Path) -> dict[str, tuple[int, int]]:
    """dataset -> (bytes of event files, runs), by a plain walk."""
    out: dict[str, tuple[int, int]] = {}
    for dataset in sorted(p for p in root.iterdir() if p.is_dir()):
        size = sum(f.stat().st_size for f in dataset.rglob("*") if f.is_file() and "tfevents" in f.name)
        runs = sum(1 for r in dataset.iterdir() if r.is_dir())
        out[dataset.name] = (size, runs)
    return out


def test_usage_equals_a_direct_walk_with_growth_and_cost(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    for i in range(5):
        write_scalar_file(root / "claims-v2" / f"r{i}", range(200 * (i + 1)), ("loss", "lr"))
    for i in range(3):
        write_scalar_file(root / "chat" / f"r{i}" / "train", range(100))
        write_scalar_file(root / "chat" / f"r{i}" / "eval", range(10))
    (root / "chat" / "r0" / "notes.txt").write_text("not an event file")
    cfg = tmp_path / "tbhub.toml"
    cfg.write_text(
        f'[state]\ndir = "{tmp_path / "state"}"\n[endpoints.lora]\nlogdir = "{root}"\n'
        '[cost]\nstorage_per_gb_month = 20.0\ncurrency = "EUR"\n'
    )
    # a snapshot from 8 days ago, as the server would have recorded it
    state = open_state(f"sqlite:///{tmp_path / 'state' / 'tbhub.db'}")
    state.record_usage([Snapshot(time.time() - 8 * 86400, "lora", "claims-v2", 1000, 1, 10)])
    state.dispose()
    result = subprocess.run(
        [sys.executable, "-m", "tbhub", "usage", "--config", str(cfg), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )
    assert result.returncode == 0, result.stderr
    rows = {r["dataset"]: r for r in json.loads(result.stdout)}
    expected = walk(root)
    assert {d: (r["size_bytes"], r["runs"]) for d, r in rows.items()} == expected
    claims = rows["claims-v2"]
    assert claims["growth_7d_bytes"] == claims["size_bytes"] - 1000
    assert claims["growth_30d_bytes"] is None  # no snapshot that old
    assert rows["chat"]["growth_7d_bytes"] == rows["chat"]["size_bytes"]  # absent 8 days ago: it all grew since
    assert claims["monthly_cost"] == pytest.approx(claims["size_bytes"] / 1e9 * 20.0, rel=5e-4)
    assert claims["monthly_cost"] > 0 and claims["currency"] == "EUR"
    table = subprocess.run(
        [sys.executable, "-m", "tbhub", "usage", "--config", str(cfg)], capture_output=True, text=True, timeout=60
    )
    assert "lora/claims-v2" in table.stdout and "EUR/month" in table.stdout
    state = open_state(f"sqlite:///{tmp_path / 'state' / 'tbhub.db'}")
    assert len({r.at for r in state.usage_history()}) == 3  # the old one and one per CLI run
    state.dispose()


def test_a_small_dataset_never_costs_a_rounded_away_zero(tmp_path: Path) -> None:
    """A few kB at a real price cost a fraction of a cent: JSON keeps it (4 significant digits below a
    cent), the table says <0.01, and neither says 0."""
    root = tmp_path / "logs"
    write_scalar_file(root / "tiny" / "r0", range(20))
    cfg = tmp_path / "tbhub.toml"
    cfg.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n[endpoints.lora]\nlogdir = "{root}"\n'
                   "[cost]\nstorage_per_gb_month = 0.023\n")
    result = subprocess.run([sys.executable, "-m", "tbhub", "usage", "--config", str(cfg), "--json"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    exact = row["size_bytes"] / 1e9 * 0.023
    assert 0 < exact < 1e-4  # what 4 fixed decimals turned into 0.0
    assert row["monthly_cost"] == pytest.approx(exact, rel=5e-4) and row["monthly_cost"] > 0
    table = subprocess.run([sys.executable, "-m", "tbhub", "usage", "--config", str(cfg)],
                           capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})
    assert table.returncode == 0, table.stderr
    assert "<0.01" in table.stdout and "0.00" not in table.stdout  # the terminal table too


def test_cost_figures_to_the_cent_and_never_rounded_away() -> None:
    assert [cost_figure(v) for v in (0.0, 12.3456, 123456.789, 0.5, 0.0123456, 0.00234567, 1e-7)] == [
        0.0, 12.35, 123456.79, 0.5, 0.01235, 0.002346, 1e-7]
    assert [cost_text(v) for v in (0.0, 1e-7, 0.0049, 0.005, 0.0123, 1234.567)] == [
        "0.00", "<0.01", "<0.01", "0.01", "0.01", "1,234.57"]


@pytest.mark.slow
def test_usage_page_costs_to_the_cent_and_axis_ticks_that_differ(tmp_path: Path) -> None:
    """The served /usage page: a fraction of a cent reads <0.01 in the row and the total; the chart of
    a dataset growing by 10 MB a day on 1 GB labels its ticks with the decimals they need (real Chromium)."""
    root = tmp_path / "logs"
    write_scalar_file(root / "tiny" / "r0", range(20))
    state_dir = tmp_path / "srv" / "state"
    state_dir.mkdir(parents=True)
    state = open_state(f"sqlite:///{state_dir / 'tbhub.db'}")
    now = time.time()
    # The newest snapshot is an hour old, so the server records none of its own today.
    state.record_usage([Snapshot(now - 3600 - d * 86400, "lora", "tiny", 1_000_000_000 + (6 - d) * 10_000_000, 1, 10)
                        for d in range(7)])
    state.dispose()
    with serve(tmp_path / "srv", {"lora": root}, extra_config="[cost]\nstorage_per_gb_month = 0.023\n") as server:
        api = server.get("/api/usage").json()
        assert api[0]["monthly_cost"] > 0
        with chromium_page(viewport={"width": 1200, "height": 900}) as page:
            page.add_init_script(CATCH_CHARTS)
            page.goto(server.url + "/usage")
            cells = page.locator("#usage tbody tr td:nth-child(5)").all_inner_texts()
            assert cells == ["<0.01"]
            assert page.locator("#usage tfoot th:nth-child(5)").inner_text() == "<0.01"
            page.wait_for_function("window.charts.length && window.charts[0].axes[1]._values", timeout=30_000)
            labels = page.evaluate("window.charts[0].axes[1]._values")
            assert len(labels) >= 3, labels
            assert len(set(labels)) == len(labels), labels  # one decimal would print "1.0 GB" for every tick
            assert all(label.endswith(" GB") for label in labels), labels
