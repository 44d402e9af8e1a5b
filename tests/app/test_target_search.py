"""The time and cost to a target (``tbhub.app.targets``): what the hub computes from its stored states,
bounded per request and cached, equals what ``tbhub usage|trends --target`` prints for the same tree,
and the busy time until the first point TensorBoard's own loader reads that met the target (issue 18)."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

import pytest
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboardX import SummaryWriter

from tbhub.app.compute import compute_runs
from tbhub.app.services import Services
from tbhub.app.targets import TargetCache, TargetSearch
from tbhub.app.trends import trends_report
from tbhub.config import load_config
from tbhub.core.compare import parse_target
from tbhub.errors import UsageError
from tbhub.interfaces.cli.main import main

STALLED = 900.0  # the default status rule's stalled_after
GOAL = "eval/loss<0.5"


def write_run(run: Path, t0: float, steps: int, base: float) -> None:
    """A run as a trainer writes it with tensorboardX: train/ and eval/ writers side by side, an eval
    every 10 steps (eval/loss = base + 3/(step + 1): reaches 0.5 only when base < 0.5), a pause."""
    train, evaluation = SummaryWriter(str(run / "train")), SummaryWriter(str(run / "eval"))
    t = t0
    for step in range(steps):
        t += 2.0 if step != steps // 2 else 1500.0  # one pause longer than stalled_after: not billed
        train.add_scalar("loss", 1 / (step + 1), step, walltime=t)
        if step % 10 == 9:
            t += 5.0
            evaluation.add_scalar("loss", base + 3 / (step + 1), step, walltime=t)
    train.close()
    evaluation.close()


def scalar(value: Any) -> float:
    """A summary value's scalar: tensorboardX 2.6 writes TF2 tensors (``float_val``), older writers
    ``simple_value``."""
    return float(value.tensor.float_val[0]) if value.HasField("tensor") else float(value.simple_value)


def direct_target_busy(run: Path, goal: str) -> float | None:
    """The definition: every event's wall time and every eval/loss point by TensorBoard's loader; the busy
    time (gaps shorter than stalled_after) up to the first point that met the goal."""
    target = parse_target(goal)
    events = [e for p in sorted(run.rglob("*tfevents*")) for e in EventFileLoader(str(p)).Load()]
    hits = [e.wall_time for p in sorted((run / "eval").glob("*tfevents*")) for e in EventFileLoader(str(p)).Load()
            for v in e.summary.value if v.tag == "loss" and target.met(scalar(v))]
    if not hits:
        return None
    times = sorted(e.wall_time for e in events if 0 < e.wall_time <= min(hits))
    return sum(b - a for a, b in itertools.pairwise(times) if b - a < STALLED)


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "logs"
    t0 = time.time() - 3 * 86400
    for i, base in enumerate((0.1, 0.2, 0.3, 0.45, 0.7)):  # the last never reaches eval/loss<0.5
        write_run(root / "claims" / f"r{i}", t0 + i * 3600, 60 + 20 * i, base)
    write_run(root / "chat" / "c0", t0, 40, 0.1)
    config = tmp_path / "tbhub.toml"
    config.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n[endpoints.lora]\nlogdir = "{root}"\n'
                      '[cost]\ngpu_hour = 2.0\ngpus = 4\n')
    return root, config


def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, object]]:
    try:
        main(list(args))
    except SystemExit as done:
        assert not done.code, capsys.readouterr().err
    out: list[dict[str, object]] = json.loads(capsys.readouterr().out)
    return out


def test_the_hubs_target_equals_the_clis_and_the_definition(tree: tuple[Path, Path],
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    root, config = tree
    cli = cli_json(capsys, "trends", "--config", str(config), "--json", "--target", GOAL)  # also stores the states
    cli_usage = cli_json(capsys, "usage", "--config", str(config), "--json", "--target", GOAL)
    with Services(load_config(config)) as services:
        # The hub's way: the stored states, no scan, a bounded search over a cache kept between requests.
        cache = TargetCache()
        search = TargetSearch(parse_target(GOAL), cache, limit=1 << 30)
        hub = {r.run.relpath: r.compute for r in compute_runs(services, target=search, scan=False)}
        assert search.runs == 6 and search.pending == 0 and search.files_read == 12 and search.bytes_read > 0
        for relpath, compute in hub.items():
            expected = direct_target_busy(root / relpath, GOAL)
            if expected is None:
                assert compute.target_busy_s is None, relpath
            else:
                assert compute.target_busy_s == pytest.approx(expected, abs=1e-3), relpath
                assert compute.target_cost == pytest.approx(expected / 3600 * 4 * 2.0, rel=1e-6)
        assert hub["claims/r4"].target_busy_s is None  # base 0.7: never below 0.5
        assert 0 < (hub["claims/r3"].target_busy_s or 0) < hub["claims/r3"].busy_s
        # The same figures as the CLI's, through the same use cases.
        again = TargetSearch(parse_target(GOAL), cache, limit=1 << 30)
        trends = trends_report(services, target=again, scan=False)
        assert again.files_read == 0 and again.bytes_read == 0 and again.files_cached == 12  # nothing read twice
        hub_points = {(t.dataset, p.label): (p.target_hours, p.target_cost) for t in trends for p in t.points}
        cli_points = {(t["dataset"], p["label"]): (p["target_hours"], p["target_cost"])  # type: ignore[index]
                      for t in cli for p in t["points"]}  # type: ignore[attr-defined]
        assert hub_points.keys() == cli_points.keys() and len(hub_points) == 6
        for key, (hours, cost) in hub_points.items():
            cli_hours, cli_cost = cli_points[key]
            assert (hours is None) == (cli_hours is None), key
            if hours is not None:
                assert hours == pytest.approx(cli_hours, rel=1e-5) and cost == pytest.approx(cli_cost, abs=0.01)
        claims = next(r for r in cli_usage if r["dataset"] == "claims")
        assert claims["target"] == GOAL and claims["target_runs"] == 4


def test_a_bounded_search_reads_on_across_requests_and_only_appended_bytes(tree: tuple[Path, Path],
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    root, config = tree
    cli_json(capsys, "trends", "--config", str(config), "--json")  # the states, as the alert engine keeps them
    with Services(load_config(config)) as services:
        full = {r.run.relpath: r.compute.target_busy_s
                for r in compute_runs(services, target=TargetSearch(parse_target(GOAL)), scan=False)}
        cache, limit, rounds = TargetCache(), 3000, []
        while True:
            search = TargetSearch(parse_target(GOAL), cache, limit=limit)
            found = {r.run.relpath: r.compute.target_busy_s for r in compute_runs(services, target=search, scan=False)}
            assert search.bytes_read <= limit
            rounds.append(search.pending)
            if not search.pending:
                break
            assert len(rounds) < 100
        assert rounds[0] > 0 and len(rounds) > 3 and found == full
        # A live run that has not reached the target yet: the next request reads only what it appended.
        writer, start = SummaryWriter(str(root / "live" / "l0" / "eval")), time.time() - 3600
        for step in range(200):
            writer.add_scalar("loss", 0.9, step, walltime=start + step)
        writer.flush()
        compute_runs(services, scan=True)  # what the scanner and the alert engine do in the background
        search = TargetSearch(parse_target(GOAL), cache, limit=1 << 30)
        compute_runs(services, target=search, scan=False, dataset_glob="live")
        (live,) = (root / "live" / "l0" / "eval").glob("*tfevents*")
        size = live.stat().st_size
        assert search.files_read == 1 and search.bytes_read == size
        for step in range(200, 300):
            writer.add_scalar("loss", 0.9 if step < 250 else 0.4, step, walltime=start + step)
        writer.close()
        compute_runs(services, scan=True)
        search = TargetSearch(parse_target(GOAL), cache, limit=1 << 30)
        (run,) = compute_runs(services, target=search, scan=False, dataset_glob="live")
        assert search.files_read == 1 and 0 < search.bytes_read <= live.stat().st_size - size
        assert run.compute.target_busy_s == pytest.approx(250.0, abs=1e-3)  # 1 s apart, hit at step 250


def test_an_unknown_tag_says_no_run_logged_it(tree: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    _, config = tree
    cli_json(capsys, "trends", "--config", str(config), "--json")
    with Services(load_config(config)) as services, pytest.raises(UsageError, match=r"no run logged eval/los$"):
        compute_runs(services, target=TargetSearch(parse_target("eval/los<0.5")), scan=False)
    with pytest.raises(SystemExit) as done:
        main(["usage", "--config", str(config), "--target", "eval/los<0.5"])
    assert done.value.code == 2 and "no run logged eval/los" in capsys.readouterr().err
