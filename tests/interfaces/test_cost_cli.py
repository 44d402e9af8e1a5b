"""``tbhub usage`` and ``tbhub trends``: compute figures checked against a hand computation from the
wall times the test wrote; a dataset's cost is the sum of its runs'; an unset price says so."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import statistics
import time
from pathlib import Path

import pytest
from clirun import run_cli

from eventfiles import file_version_event, scalar_event, write_events

STALLED = 900.0
PAUSE = 2000.0  # longer than stalled_after: not billed
NOON = 12 * 3600


def run_times(t0: float, steps: int, dt_s: float) -> list[tuple[int, float]]:
    """(step, wall time) of a run's scalars: every dt_s seconds, with a pause half-way."""
    return [(s, t0 + dt_s * (s + 1) + (PAUSE if s >= steps // 2 else 0.0)) for s in range(steps)]


def write_run(root: Path, relpath: str, t0: float, steps: int, dt_s: float, samples: float, best: float) -> list[float]:
    """A run's event file (TensorBoard's framing, explicit wall times); returns every event's wall time."""
    points = run_times(t0, steps, dt_s)
    events = [file_version_event(t0)]
    for s, t in points:
        events.append(scalar_event(s, best + 1.0 / (s + 1), "eval/loss", wall_time=t))
    last_step, last = points[-1]
    events.append(scalar_event(last_step, samples, "train/train_samples_per_second", wall_time=last + 1))
    write_events(root / relpath / "events.out.tfevents.1.host", events)
    return [t0, *(t for _, t in points), last + 1]


def busy(times: list[float]) -> float:
    ordered = sorted(times)
    return sum(b - a for a, b in itertools.pairwise(ordered) if b - a < STALLED)


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, dict[str, dict[str, object]]]:
    """claims: 9 runs over 3 weeks (by week); chat: 2 runs (by run). Every run starts at noon UTC."""
    root = tmp_path / "logs"
    today = dt.datetime.now(tz=dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    facts: dict[str, dict[str, object]] = {}
    for i in range(9):
        t0 = today - (i // 3) * 7 * 86400 - (i % 3) * 86400 - 86400 + NOON
        steps, dt_s = 100 + 10 * i, 2.0 + i % 3
        times = write_run(root, f"claims/r{i}", t0, steps, dt_s, 40.0 + i, 0.1 * (i + 1))
        facts[f"claims/r{i}"] = {"t0": t0, "busy": busy(times), "steps": steps - 1, "samples": 40.0 + i,
                                 "best": 0.1 * (i + 1) + 1.0 / steps, "dt": dt_s, "base": 0.1 * (i + 1)}
    for i in range(2):
        t0 = today - 2 * 86400 * (i + 1) + NOON
        times = write_run(root, f"chat/c{i}", t0, 50, 1.0, 10.0, 0.5)
        facts[f"chat/c{i}"] = {"t0": t0, "busy": busy(times), "steps": 49, "samples": 10.0, "best": 0.5 + 1 / 50,
                               "dt": 1.0, "base": 0.5}
    return root, facts


def config(tmp_path: Path, root: Path, cost: str) -> str:
    path = tmp_path / "tbhub.toml"
    path.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n[endpoints.lora]\nlogdir = "{root}"\n{cost}')
    return str(path)


PRICED = '[cost]\ngpu_hour = 2.5\ngpus = 2\ncurrency = "EUR"\n[cost.endpoints.lora.datasets.chat]\ngpus = 8\n'


def test_usage_compute_is_the_sum_over_runs_by_month(tmp_path: Path, tree: tuple[Path, dict[str, dict[str, object]]],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    root, facts = tree
    code, out, err = run_cli(capsys, "usage", "--config", config(tmp_path, root, PRICED), "--json",
                             "--target", "eval/loss<1.0")
    assert code == 0, err
    rows = {r["dataset"]: r for r in json.loads(out)}
    now = time.time()
    this = dt.datetime.fromtimestamp(now, tz=dt.UTC).strftime("%Y-%m")
    for dataset, gpus in (("claims", 2), ("chat", 8)):
        runs = {k: v for k, v in facts.items() if k.startswith(dataset + "/")}
        hours = {k: float(v["busy"]) / 3600 * gpus for k, v in runs.items()}  # type: ignore[arg-type]
        row = rows[dataset]
        assert row["gpu_hours"] == pytest.approx(sum(hours.values()), abs=1e-3)
        assert row["compute_cost"] == pytest.approx(sum(h * 2.5 for h in hours.values()), rel=5e-4)
        in_month = [h for k, h in hours.items()
                    if dt.datetime.fromtimestamp(float(runs[k]["t0"]), tz=dt.UTC).strftime("%Y-%m") == this]  # type: ignore[arg-type]
        assert row["gpu_hours_this_month"] == pytest.approx(sum(in_month), abs=1e-3)
        assert row["gpu_hours_this_month"] + row["gpu_hours_last_month"] <= row["gpu_hours"] + 1e-3
        assert row["run_gpu_hours_median"] == pytest.approx(statistics.median(hours.values()), abs=1e-3)
        assert row["run_gpu_hours_max"] == pytest.approx(max(hours.values()), abs=1e-3)
        assert row["currency"] == "EUR" and row["price_note"] is None and row["busy_time_exact"] is True
        assert row["target"] == "eval/loss<1" and row["target_runs"] == len(runs)
        # eval/loss = base + 1/(s + 1) < 1.0 first at step s_hit, written dt (s_hit + 1) after the start:
        # the busy time until then, all gaps short
        to_target = []
        for r in runs.values():
            s_hit = next(s for s in range(1000) if float(r["base"]) + 1 / (s + 1) < 1.0)  # type: ignore[arg-type]
            to_target.append(float(r["dt"]) * (s_hit + 1) / 3600 * gpus)  # type: ignore[arg-type]
        assert row["target_gpu_hours_median"] == pytest.approx(statistics.median(to_target), abs=1e-4)
        assert row["target_compute_cost_median"] == pytest.approx(statistics.median(to_target) * 2.5, rel=1e-3)


def test_an_unset_price_is_reported_as_unset(tmp_path: Path, tree: tuple[Path, dict[str, dict[str, object]]],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = tree
    cfg = config(tmp_path, root, "")
    code, out, err = run_cli(capsys, "usage", "--config", cfg, "--json")
    assert code == 0, err
    for row in json.loads(out):
        assert row["gpu_hours"] > 0
        assert row["compute_cost"] is None and row["compute_cost_this_month"] is None
        assert row["price_note"] == "price not set: set [cost] gpu_hour"
        assert row["size_bytes"] > 0 and row["monthly_cost"] is None  # no storage price either: not 0.0
    code, out, err = run_cli(capsys, "usage", "--config", cfg)
    assert code == 0, err
    assert "not set" in out and "price not set: set [cost] gpu_hour" in out
    assert "storage cost: price not set: set [cost] storage_per_gb_month" in out and "0.00" not in out
    code, out, err = run_cli(capsys, "trends", "--config", cfg)
    assert code == 0, err
    assert "price not set: set [cost] gpu_hour" in out and "0.00" not in out


def test_trends_json_equals_a_hand_computation(tmp_path: Path, tree: tuple[Path, dict[str, dict[str, object]]],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    root, facts = tree
    code, out, err = run_cli(capsys, "trends", "--config", config(tmp_path, root, PRICED), "--json",
                             "--metric", "eval/loss", "--target", "eval/loss<0.6")
    assert code == 0, err
    trends = {t["dataset"]: t for t in json.loads(out)}
    assert trends["chat"]["by"] == "run" and trends["claims"]["by"] == "week"

    def expected(keys: list[str], gpus: int) -> dict[str, float]:
        runs = [facts[k] for k in keys]
        return {
            "steps_per_s": statistics.median(int(r["steps"]) / float(r["busy"]) for r in runs),  # type: ignore[call-overload, arg-type]
            "samples_per_s": statistics.median(float(r["samples"]) for r in runs),  # type: ignore[arg-type]
            "gpu_hours": statistics.median(float(r["busy"]) / 3600 * gpus for r in runs),  # type: ignore[arg-type]
            "cost": statistics.median(float(r["busy"]) / 3600 * gpus * 2.5 for r in runs),  # type: ignore[arg-type]
            "metric": min(float(r["best"]) for r in runs),  # type: ignore[arg-type]
        }

    weeks: dict[str, list[str]] = {}
    for key, f in facts.items():
        if key.startswith("claims/"):
            year, week, _ = dt.datetime.fromtimestamp(float(f["t0"]), tz=dt.UTC).isocalendar()  # type: ignore[arg-type]
            weeks.setdefault(f"{year}-W{week:02d}", []).append(key)
    points = trends["claims"]["points"]
    assert [p["label"] for p in points] == sorted(weeks)
    for p in points:
        assert sorted(r["relpath"] for r in p["runs"]) == sorted(weeks[p["label"]])
        assert all(r["href"] == f"/runs/lora/{r['relpath']}" for r in p["runs"])
        for measure, value in expected(weeks[p["label"]], 2).items():
            assert p[measure] == pytest.approx(value, rel=1e-4), (p["label"], measure)
        # eval/loss = 0.1 (i + 1) + 1/(s + 1) < 0.6: reached by the runs with 0.1 (i + 1) < 0.6 only
        reached = [k for k in weeks[p["label"]] if 0.1 * (int(k[-1]) + 1) + 1 / int(facts[k]["steps"]) < 0.6]  # type: ignore[call-overload]
        if not reached:
            assert p["target_hours"] is None and p["target_cost"] is None
        else:
            assert p["target_hours"] is not None and 0 < p["target_hours"] <= p["gpu_hours"] / 2
    chat = trends["chat"]["points"]
    assert [p["runs"][0]["relpath"] for p in chat] == ["chat/c1", "chat/c0"]  # oldest first
    for p in chat:
        for measure, value in expected([p["runs"][0]["relpath"]], 8).items():
            assert p[measure] == pytest.approx(value, rel=1e-4), measure
    code, out, err = run_cli(capsys, "trends", "--config", config(tmp_path, root, PRICED), "--csv", "--dataset", "chat")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].startswith("endpoint,dataset,by,label,at,steps_per_s") and len(lines) == 3


def test_bad_trends_input_is_one_line_and_exit_2(tmp_path: Path, tree: tuple[Path, dict[str, dict[str, object]]],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = tree
    cfg = config(tmp_path, root, "")
    code, _, err = run_cli(capsys, "trends", "--config", cfg, "--metric", "eval/loss:best")
    assert code == 2 and err.count("\n") == 1 and "--metric" in err
    code, _, err = run_cli(capsys, "usage", "--config", cfg, "--target", "loss=1")
    assert code == 2 and err.count("\n") == 1 and "--target" in err


def test_cost_rules_for_an_unknown_endpoint_or_a_bad_price_are_refused(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "logs"
    root.mkdir()
    for cost, words in (('[cost.endpoints.lroa]\ngpus = 2\n', "no endpoint named 'lroa'"),
                        ("[cost]\ngpu_hour = -1.0\n", "gpu_hour"), ("[cost]\ngpus = 0\n", "gpus")):
        code, _, err = run_cli(capsys, "usage", "--config", config(tmp_path, root, cost), "--json")
        assert code == 2 and err.count("\n") == 1 and words in err, (cost, err)


def test_storage_only_parses_no_event_file(tmp_path: Path, tree: tuple[Path, dict[str, dict[str, object]]],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = tree
    cfg = config(tmp_path, root, PRICED)
    code, out, err = run_cli(capsys, "usage", "--config", cfg, "--storage-only", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert rows and all(r["gpu_hours"] is None and r["compute_cost"] is None and r["size_bytes"] > 0 for r in rows)
    code, out, err = run_cli(capsys, "usage", "--config", cfg, "--storage-only")
    assert code == 0 and "GPU-h" not in out, out


def test_a_run_still_training_is_listed_but_not_costed_yet(
        tmp_path: Path, tree: tuple[Path, dict[str, dict[str, object]]], capsys: pytest.CaptureFixture[str]) -> None:
    """A run written to a moment ago that has not finished has spent only part of its cost: counting it
    would draw the newest point of every dataset as a drop. It stays in its point's runs, marked."""
    root, facts = tree
    t0 = float(facts["claims/r0"]["t0"]) + 3600  # type: ignore[arg-type]  # r0's day, so r0's week
    events = [file_version_event(t0), *(scalar_event(s, 1.0 / (s + 1), "eval/loss", wall_time=t0 + 2.0 * s)
                                         for s in range(30))]
    write_events(root / "claims" / "live" / "events.out.tfevents.1.host", events)  # no final tags: running
    code, out, err = run_cli(capsys, "trends", "--config", config(tmp_path, root, PRICED), "--json")
    assert code == 0, err
    (point,) = [p for t in json.loads(out) if t["dataset"] == "claims" for p in t["points"]
                if any(r["relpath"] == "claims/live" for r in p["runs"])]
    assert point["training"] == 1
    assert {r["relpath"]: r["training"] for r in point["runs"]}["claims/live"] is True
    stopped = [k for k in (r["relpath"] for r in point["runs"]) if k != "claims/live"]
    assert stopped and all(not r["training"] for r in point["runs"] if r["relpath"] != "claims/live")
    assert point["gpu_hours"] == pytest.approx(statistics.median(float(facts[k]["busy"]) / 3600 * 2 for k in stopped),  # type: ignore[arg-type]
                                               rel=1e-4)
    assert point["cost"] == pytest.approx(point["gpu_hours"] * 2.5, rel=1e-4)
    assert point["steps_per_s"] is not None  # a rate: the training run counts
    code, out, err = run_cli(capsys, "trends", "--config", config(tmp_path, root, PRICED), "--dataset", "claims")
    assert code == 0, err
    assert "(1 training)" in out
    # Usage: what it spent counts in the dataset's total (58 s busy on 2 GPUs), not among the per-run figures.
    code, out, err = run_cli(capsys, "usage", "--config", config(tmp_path, root, PRICED), "--json")
    assert code == 0, err
    claims = next(r for r in json.loads(out) if r["dataset"] == "claims")
    finished = [k for k in facts if k.startswith("claims/")]
    assert claims["gpu_hours"] == pytest.approx(sum(float(facts[k]["busy"]) for k in finished) / 3600 * 2  # type: ignore[arg-type]
                                                + 58 / 3600 * 2, rel=1e-4)
    per_run = [float(facts[k]["busy"]) / 3600 * 2 for k in finished]  # type: ignore[arg-type]
    assert claims["run_gpu_hours_median"] == pytest.approx(statistics.median(per_run), rel=1e-4)
    assert claims["run_gpu_hours_max"] == pytest.approx(max(per_run), rel=1e-4)


def test_busy_time_follows_the_hubs_stalled_after_override(
        tmp_path: Path, tree: tuple[Path, dict[str, dict[str, object]]], capsys: pytest.CaptureFixture[str]) -> None:
    """A dataset's ``stalled_after`` changed on the hub (/alerts/rules) bills what the hub's statuses go by:
    at 1 h, the gap over each run's 2,000 s pause (the pause and one step) is busy time too."""
    from tbhub.adapters.db.alert_rules import AlertRuleStore
    from tbhub.app.services import Services
    from tbhub.config import load_config

    root, facts = tree
    cfg = config(tmp_path, root, PRICED)
    with Services(load_config(Path(cfg))) as services:
        AlertRuleStore(services.state.engine).set("lora", "chat", {"stalled_after": "1h"}, "editor")
    code, out, err = run_cli(capsys, "usage", "--config", cfg, "--json")
    assert code == 0, err
    rows = {r["dataset"]: r for r in json.loads(out)}
    chat = [k for k in facts if k.startswith("chat/")]
    busy = sum(float(facts[k]["busy"]) + PAUSE + float(facts[k]["dt"]) for k in chat)  # type: ignore[arg-type]
    assert rows["chat"]["gpu_hours"] == pytest.approx(busy / 3600 * 8, rel=1e-4)
    claims = [k for k in facts if k.startswith("claims/")]
    assert rows["claims"]["gpu_hours"] == pytest.approx(sum(float(facts[k]["busy"]) for k in claims)  # type: ignore[arg-type]
                                                        / 3600 * 2, rel=1e-4)  # no override: as before
