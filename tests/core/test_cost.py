"""Busy time and compute cost: from event files written by tensorboardX with explicit wall times,
checked against a direct computation over every event TensorBoard's own loader reads."""

from __future__ import annotations

import itertools
import random
import time
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboardX import SummaryWriter

from eventfiles import file_version_event, scalar_event, write_events
from tbhub.adapters.crc import crc32c
from tbhub.adapters.scalar_decoder import ProtobufDecoder
from tbhub.core.cost import CostRule, CostRules, month_key, run_compute, total_cost
from tbhub.core.models import RunSummary
from tbhub.core.scalars import ScalarFileState, summarize_file
from tbhub.core.scalars.activity import MAX_SEGMENTS, event_wall_times, merge_segments


def direct_busy(paths: list[Path], threshold: float, until: float | None = None) -> float:
    """The definition itself: every event's wall time (TensorBoard's loader), one sorted timeline, the
    sum of the gaps shorter than ``threshold``."""
    times = sorted(e.wall_time for p in paths for e in EventFileLoader(str(p)).Load() if e.wall_time > 0)
    if until is not None:
        times = [t for t in times if t <= until]
    return sum(b - a for a, b in itertools.pairwise(times) if b - a < threshold)


def summarize(path: Path, previous: ScalarFileState | None = None) -> ScalarFileState:
    st = path.stat()
    with open(path, "rb") as f:
        return summarize_file(f, previous, relpath=path.name, inode=st.st_ino, size=st.st_size,
                              mtime_ns=st.st_mtime_ns, decoder=ProtobufDecoder(), crc32c=crc32c)


def write_run(logdir: Path, seed: int, start: float) -> list[Path]:
    """A run as a trainer writes it with tensorboardX: train/ and eval/ writers side by side, steps a
    few seconds apart, evaluations, text at the end, pauses of every length (some beyond any
    stalled_after) and a restart whose new writer overlaps the old one's time."""
    rng = random.Random(seed)
    train = SummaryWriter(str(logdir / "train"))
    evaluation = SummaryWriter(str(logdir / "eval"))
    t = start
    for step in range(1500):
        t += rng.choice([0.5, 1.0, 2.0, 3.0]) if rng.random() > 0.02 else rng.choice([45, 61, 200, 700, 1000, 4000])
        train.add_scalar("loss", 1 / (step + 1), step, walltime=t)
        train.add_scalar("lr", 0.001, step, walltime=t)
        if step % 100 == 99:
            t += rng.uniform(30, 200)  # the evaluation takes a while
            evaluation.add_scalar("loss", 2 / (step + 1), step, walltime=t)
    train.add_text("done", "ok", 0, walltime=t + 5)
    train.close()
    evaluation.close()
    resumed = SummaryWriter(str(logdir / "train"), filename_suffix=".resumed")
    for step in range(1500, 1700):
        resumed.add_scalar("loss", 1 / (step + 1), step, walltime=t - 500 + step - 1500)
    resumed.close()
    return sorted(p for p in logdir.rglob("*") if "tfevents" in p.name)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_busy_time_equals_the_direct_computation_over_every_event(tmp_path: Path, seed: int) -> None:
    paths = write_run(tmp_path / "run", seed, time.time() - 86400)
    assert len(paths) == 3
    activity = [(s.activity, s.activity_gap) for s in (summarize(p) for p in paths)]
    for threshold in (60.0, 300.0, 900.0, 3600.0, 86400.0):
        busy, exact = merge_segments(activity, threshold)
        assert exact
        assert busy == pytest.approx(direct_busy(paths, threshold), rel=1e-9, abs=1e-6)
    all_times = sorted(e.wall_time for p in paths for e in EventFileLoader(str(p)).Load())
    until = all_times[len(all_times) // 2]
    assert merge_segments(activity, 900.0, until)[0] == pytest.approx(direct_busy(paths, 900.0, until), abs=1e-6)


def test_busy_time_is_the_same_when_the_file_is_read_in_pieces(tmp_path: Path) -> None:
    """Incremental: a file parsed, appended to, parsed again from its state gives the activity a full
    pass gives (the appended bytes only are read)."""
    path = tmp_path / "events.out.tfevents.1.host"
    base = 1_800_000_000.0
    first = [file_version_event(base)] + [scalar_event(s, 1.0, wall_time=base + s * (1 if s % 50 else 120))
                                          for s in range(1, 400)]
    write_events(path, first)
    state = summarize(path)
    write_events(path, [scalar_event(s, 1.0, wall_time=base + 90_000 + s) for s in range(400, 900)], append=True)
    resumed = summarize(path, state)
    full = summarize(path)
    assert resumed.activity == full.activity and resumed.activity_gap == full.activity_gap
    assert merge_segments([(full.activity, full.activity_gap)], 900.0)[0] == pytest.approx(direct_busy([path], 900.0))


def test_events_without_a_leading_wall_time_are_read_or_left_out(tmp_path: Path) -> None:
    """An empty record and an event without a wall time carry no time; the rest still count."""
    path = tmp_path / "events.out.tfevents.2.host"
    base = 1_800_000_000.0
    write_events(path, [file_version_event(base), b"", scalar_event(1, 1.0, wall_time=0.0),
                        scalar_event(2, 1.0, wall_time=base + 10), scalar_event(3, 1.0, wall_time=base + 20)])
    state = summarize(path)
    assert state.activity == ((base, base + 20),)
    assert event_wall_times([scalar_event(1, 1.0, wall_time=base + 5), b""]) == [base + 5]


def test_an_irregular_file_keeps_few_segments_and_says_below_which_threshold_it_is_approximate(tmp_path: Path) -> None:
    path = tmp_path / "events.out.tfevents.3.host"
    base = 1_800_000_000.0
    events = [scalar_event(s, 1.0, wall_time=base + 90 * s) for s in range(1, 700)]
    write_events(path, [file_version_event(base), *events])
    state = summarize(path)
    assert len(state.activity) <= MAX_SEGMENTS and state.activity_gap == 120.0
    busy, exact = merge_segments([(state.activity, state.activity_gap)], 60.0)
    assert not exact and busy == pytest.approx(90 * 699)  # the true figure at 60 s is 0: said to be approximate
    busy, exact = merge_segments([(state.activity, state.activity_gap)], 900.0)
    assert exact and busy == pytest.approx(direct_busy([path], 900.0))


def _run(dataset: str = "ds", name: str = "r") -> RunSummary:
    return RunSummary(endpoint="lora", dataset=dataset, run=name, relpath=f"{dataset}/{name}", files=())


def test_gpus_and_price_come_from_the_most_specific_rule_then_the_plan() -> None:
    rules = CostRules(CostRule(2.5, None), (("claims-*", CostRule(2.5, 8)), ("claims-v2", CostRule(4.0, 2))))
    assert rules.rule_for("chat") == CostRule(2.5, None)
    assert rules.rule_for("claims-v1") == CostRule(2.5, 8)
    assert rules.rule_for("claims-v2") == CostRule(4.0, 2)
    day = 1_800_000_000.0
    activity = [(((day, day + 3600.0),), 60.0)]
    planned = run_compute(_run(), activity, stalled_after=900, rule=rules.rule_for("chat"), plan_devices=4)
    assert (planned.gpus, planned.gpus_from, planned.gpu_hours, planned.cost) == (4, "plan", 4.0, 10.0)
    configured = run_compute(_run(), activity, stalled_after=900, rule=rules.rule_for("claims-v2"), plan_devices=4)
    assert (configured.gpus, configured.gpus_from, configured.cost) == (2, "config", 8.0)
    alone = run_compute(_run(), activity, stalled_after=900, rule=CostRule())
    assert (alone.gpus, alone.gpus_from, alone.cost, alone.gpu_hours) == (1, "default", None, 1.0)
    assert total_cost([planned, alone]) is None and total_cost([planned, configured]) == 18.0


def test_busy_time_is_split_by_month_and_the_months_add_up() -> None:
    import datetime as dt

    end_of_nov = dt.datetime(2026, 11, 30, 23, 0, tzinfo=dt.UTC).timestamp()
    activity = [(((end_of_nov, end_of_nov + 7200.0), (end_of_nov + 7500.0, end_of_nov + 9000.0)), 60.0)]
    c = run_compute(_run(), activity, stalled_after=900, rule=CostRule(1.0, 1))
    assert c.busy_s == pytest.approx(9000.0)
    assert c.months == pytest.approx({"2026-11": 3600.0, "2026-12": 5400.0})
    assert month_key(end_of_nov) == "2026-11"
