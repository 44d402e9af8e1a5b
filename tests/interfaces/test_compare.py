"""``tbhub compare`` and ``/compare``: figures equal TensorBoard's own loader; best, target, exports."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from serving import serve, wait_for
from tensorboard.backend.event_processing import event_accumulator as ea

from browser import chromium_page
from eventfiles import file_version_event, scalar_event, tensor_scalar_event, write_events

NAN = float("nan")


def write_run(
    root: Path,
    relpath: str,
    losses: list[float],
    accs: list[float] | None = None,
    *,
    t0: float = 1.7e9,
    v2: bool = False,
) -> None:
    make = tensor_scalar_event if v2 else scalar_event
    train = [file_version_event(t0), *(make(s, v, "loss", wall_time=t0 + 2 * s) for s, v in enumerate(losses))]
    write_events(root / relpath / "train" / ("events.out.tfevents.1.h.v2" if v2 else "events.out.tfevents.1.h"), train)
    if accs is not None:
        evals = [
            file_version_event(t0),
            *(make(10 * s, v, "accuracy", wall_time=t0 + 20 * s) for s, v in enumerate(accs)),
        ]
        write_events(root / relpath / "eval" / "events.out.tfevents.2.h", evals)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "logs"
    write_run(root, "alpaca/a", [2.0, 1.0, 0.6, 0.7], [0.5, 0.7], t0=1.7e9)
    write_run(root, "alpaca/b", [2.0, 0.9, 0.4, 0.45, 0.42], [0.6, 0.8, 0.75], t0=1.7e9 + 1000, v2=True)
    write_run(root, "dolly/nan", [1.5, 1.2, NAN, NAN], [0.4], t0=1.7e9 + 2000)
    write_events(root / "dolly" / "empty" / "events.out.tfevents.3.h", [file_version_event()])
    return root


def tbhub(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TBHUB_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "tbhub", *args], env=env, capture_output=True, text=True, timeout=120)


def tensorboard_scalars(run_dir: Path, tag: str) -> list[float]:
    acc = ea.EventAccumulator(str(run_dir), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
    acc.Reload()
    if tag in acc.Tags()["scalars"]:
        return [e.value for e in acc.Scalars(tag)]
    import tensorboard.util.tensor_util as tu

    return [float(tu.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)]


def test_figures_equal_tensorboard_and_best_and_target(tree: Path, tmp_path: Path) -> None:
    result = tbhub(
        tmp_path / "home",
        "compare",
        str(tree),
        "--tag",
        "train/loss",
        "--tag",
        "eval/accuracy",
        "--sort",
        "train/loss:min",
        "--target",
        "train/loss<0.5",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    rows = {r["relpath"]: r for r in json.loads(result.stdout)}
    assert set(rows) == {"alpaca/a", "alpaca/b", "dolly/nan", "dolly/empty"}
    for relpath in ("alpaca/a", "alpaca/b", "dolly/nan"):
        values = tensorboard_scalars(tree / relpath / "train", "loss")
        finite = [v for v in values if math.isfinite(v)]
        figures = rows[relpath]["tags"]["train/loss"]
        assert figures["count"] == len(values)
        assert figures["min"] == pytest.approx(min(finite)) and figures["max"] == pytest.approx(max(finite))
        last = values[-1]
        assert (figures["last"] == "nan") if math.isnan(last) else figures["last"] == pytest.approx(last)
        assert figures["nan_count"] == sum(not math.isfinite(v) for v in values)
        accs = tensorboard_scalars(tree / relpath / "eval", "accuracy")
        assert rows[relpath]["tags"]["eval/accuracy"]["max"] == pytest.approx(max(accs))
    assert rows["dolly/empty"]["tags"] == {}
    ordered = [r["relpath"] for r in json.loads(result.stdout)]
    assert ordered[0] == "alpaca/b" and rows["alpaca/b"]["best"] is True
    assert sum(r["best"] for r in rows.values()) == 1
    assert rows["alpaca/b"]["target_step"] == 2 and rows["alpaca/b"]["target_seconds"] == pytest.approx(4.0)
    assert rows["alpaca/a"]["target_step"] is None
    assert rows["alpaca/b"]["duration_s"] == pytest.approx(40.0)  # eval's last point is at t0 + 40
    assert rows["alpaca/b"]["steps_per_s"] == pytest.approx(20 / 40.0)

    table = tbhub(tmp_path / "home", "compare", str(tree), "--tag", "loss", "--sort", "loss:min")
    assert table.returncode == 0 and "best by loss:min" in table.stdout
    csv_out = tbhub(tmp_path / "home", "compare", str(tree), "--tag", "train/loss", "--csv")
    parsed = list(csv.DictReader(io.StringIO(csv_out.stdout)))
    assert len(parsed) == 4 and "train/loss:min" in parsed[0]
    bad = tbhub(tmp_path / "home", "compare", str(tree), "--tag", "x", "--sort", "x:best")
    assert bad.returncode == 2 and "is not a sort like" in bad.stderr
    none = tbhub(tmp_path / "home", "compare", str(tree))
    assert none.returncode == 2 and "--tag" in none.stderr


def test_thousands_of_runs(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    for i in range(2000):
        write_events(
            root / f"ds{i % 20}" / f"r{i}" / "events.out.tfevents.1.h",
            [file_version_event(), scalar_event(0, 1.0 + i, "loss"), scalar_event(1, 0.5 + i, "loss")],
        )
    result = tbhub(tmp_path / "home", "compare", str(root), "--tag", "loss", "--sort", "loss:min", "--json")
    rows = json.loads(result.stdout)
    assert len(rows) == 2000 and rows[0]["run"] == "r0" and rows[0]["tags"]["loss"]["min"] == 0.5


@pytest.mark.slow
def test_hub_compare_api_csv_and_charts(tree: Path, tmp_path: Path) -> None:
    with serve(tmp_path / "srv", {"lora": tree}) as server:

        def rows() -> list[dict[str, object]] | None:
            data = server.get("/api/compare", params={"tag": ["train/loss"], "sort": "train/loss:min"}).json()
            return data["rows"] if any(r["tags"] for r in data["rows"]) else None

        found = wait_for(rows, 30, "the alert engine to fill the scalar index")
        assert found[0]["relpath"] == "alpaca/b" and found[0]["best"] is True
        assert found[0]["tensorboard"] == "/tb/lora/#scalars&regexInput=%5Ealpaca%2Fb%28%2F%7C%24%29"
        exported = server.get("/api/compare", params={"tag": "train/loss", "format": "csv"})
        assert exported.headers["content-type"].startswith("text/csv") and "train/loss:min" in exported.text
        filtered = server.get("/api/compare", params={"tag": "train/loss", "dataset": "dolly"}).json()
        assert {r["dataset"] for r in filtered["rows"]} == {"dolly"}
        page = server.get("/compare", params={"tags": "train/loss, eval/accuracy", "sort": "train/loss:min"})
        assert page.status_code == 200 and 'class="best"' in page.text
        with chromium_page() as tab:
            tab.goto(server.url + "/compare?tags=train/loss&sort=train/loss:min")
            tab.locator("#best-chart .uplot canvas").wait_for(timeout=30_000)
            tab.locator("#speed-chart .uplot canvas").wait_for(timeout=30_000)
            assert "lora/alpaca" in tab.locator("#best-chart .u-legend").inner_text()
            assert tab.locator("#compare tbody tr.best").count() == 1
            tab.screenshot(path=str(tmp_path / "compare.png"), full_page=True)
