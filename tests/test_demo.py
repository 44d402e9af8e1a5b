"""The demo log roots, read back with TensorBoard's own loaders."""

from __future__ import annotations

import io
import math
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import (
    LegacyEventFileLoader,
    RawEventFileLoader,
)
from tensorboard.summary.writer.record_writer import RecordWriter

from tbhub.demo import DemoLogs, DemoRun, LiveWriter, write_demo_logs

DAY = 86400.0
# A fixed clock: ages, names and values below do not depend on when the tests run.
NOW = 1_795_900_000.0


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoLogs:
    """Written once per module: every test here only reads it."""
    return write_demo_logs(tmp_path_factory.mktemp("demo"), now=NOW, seed=0)


def event_files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file() and "tfevents" in p.name)


def record_count(run: DemoRun) -> int:
    """Records as TensorBoard's reader sees them (raw: no proto parsing, so it is cheap to poll)."""
    return sum(1 for f in event_files(run.path) for _ in RawEventFileLoader(str(f)).Load())


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the event files in ``folder``, through TensorBoard's EventAccumulator."""
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def the_run(logs: DemoLogs, kind: str, endpoint: str = "lora") -> DemoRun:
    (run,) = [r for r in logs.runs if r.kind == kind and r.endpoint == endpoint]
    return run


def test_layout_is_dataset_run_in_both_roots(demo: DemoLogs) -> None:
    assert set(demo.roots) == {"lora", "router"}
    counts = Counter(r.endpoint for r in demo.runs)
    assert 6 <= counts["lora"] <= 10
    assert 3 <= counts["router"] <= 5
    assert len({r.dataset for r in demo.runs if r.endpoint == "lora"}) >= 3
    for run in demo.runs:
        assert run.path == demo.roots[run.endpoint] / run.dataset / run.run
        folders = {f.parent.relative_to(run.path).as_posix() for f in event_files(run.path)}
        assert folders == ({"train", "eval"} if run.endpoint == "lora" else {"."})
    kinds = Counter(r.kind for r in demo.runs)
    assert kinds["diverged"] == 1 and kinds["stalled"] == 1 and kinds["old"] >= 2 and kinds["finished"] >= 2
    assert sorted(r.endpoint for r in demo.live) == ["lora", "router"]
    assert all(r.kind == "live" and r in demo.runs for r in demo.live)
    # Nothing but the two roots is written under base.
    base = demo.roots["lora"].parent
    assert sorted(p.name for p in base.iterdir()) == ["lora", "router"]
    total = sum(f.stat().st_size for r in demo.runs for f in event_files(r.path))
    assert total < 10 * 1024 * 1024


def test_lora_scalars_and_histogram(demo: DemoLogs) -> None:
    run = next(r for r in demo.runs if r.endpoint == "lora")
    train = scalars(run.path / "train")
    assert set(train) == {"train/loss", "train/learning_rate", "train/grad_norm"}
    assert set(scalars(run.path / "eval")) == {"eval/loss", "eval/accuracy"}
    loss = [v for _, v in train["train/loss"]]
    assert len(loss) >= 30 and sum(loss[-10:]) < sum(loss[:10])  # it learns
    lr = [v for _, v in train["train/learning_rate"]]
    assert lr[0] < max(lr) and lr[-1] < max(lr) / 10  # warmup, then cosine decay

    acc = EventAccumulator(str(run.path / "train"), size_guidance={"tensors": 0})
    acc.Reload()
    assert acc.Tags()["tensors"] == ["lora_A/weights"]
    assert acc.SummaryMetadata("lora_A/weights").plugin_data.plugin_name == "histograms"
    histograms = acc.Tensors("lora_A/weights")
    assert len(histograms) >= 5
    assert list(histograms[0].tensor_proto.tensor_shape.dim)[1].size == 3  # [bucket, (left, right, count)]


def test_records_are_framed_exactly_as_tensorboards_record_writer(demo: DemoLogs) -> None:
    for path in event_files(demo.runs[0].path):
        buffer = io.BytesIO()
        writer = RecordWriter(buffer)
        for record in RawEventFileLoader(str(path)).Load():
            writer.write(record)
        assert buffer.getvalue() == path.read_bytes()


def test_router_scalars(demo: DemoLogs) -> None:
    for run in (r for r in demo.runs if r.endpoint == "router"):
        tags = scalars(run.path)
        assert {"loss", "aux_loss", "tokens_per_sec", "expert_load/expert_0"} <= set(tags)
        experts = [t for t in tags if t.startswith("expert_load/")]
        assert len(experts) in (4, 8)
        last = [tags[t][-1][1] for t in experts]
        assert sum(last) == pytest.approx(1.0, abs=1e-3)  # loads are fractions of the tokens


def test_diverged_run_ends_in_nan(demo: DemoLogs) -> None:
    loss = [v for _, v in scalars(the_run(demo, "diverged").path / "train")["train/loss"]]
    assert all(math.isnan(v) for v in loss[-3:])
    assert not any(math.isnan(v) for v in loss[: len(loss) // 2])


def test_ages_show_in_mtimes_and_wall_times(demo: DemoLogs) -> None:
    def newest_mtime(run: DemoRun) -> float:
        return max(f.stat().st_mtime for f in event_files(run.path))

    def newest_wall_time(run: DemoRun) -> float:
        return max(
            float(e.wall_time) for f in event_files(run.path) for e in LegacyEventFileLoader(str(f)).Load()
        )

    old = [r for r in demo.runs if r.kind == "old"]
    assert {r.endpoint for r in old} == {"lora", "router"}
    for run in old:
        assert newest_mtime(run) <= NOW - 10 * DAY
        assert NOW - 40 * DAY <= newest_wall_time(run) <= NOW - 10 * DAY
        # Folders too: a weeks-old run must not look touched today in `ls -l` either.
        for folder in (run.path, *[p for p in run.path.rglob("*") if p.is_dir()]):
            assert folder.stat().st_mtime <= NOW - 10 * DAY
    ages = [(NOW - newest_mtime(r)) / DAY for r in demo.runs if r.kind == "finished"]
    assert any(2 <= a <= 5 for a in ages) and any(a < 1 for a in ages)

    stalled = the_run(demo, "stalled")
    assert 2.5 * 3600 <= NOW - newest_mtime(stalled) <= 4 * 3600
    assert newest_wall_time(stalled) == pytest.approx(newest_mtime(stalled))
    for run in demo.live:
        assert NOW - newest_mtime(run) < 60


def scalar_values(run: DemoRun) -> str:
    """(file, tag, step, value) of every scalar in a run, as a string: repr() makes NaN equal NaN."""
    return repr(
        [
            (f.relative_to(run.path).parent.as_posix(), v.tag, e.step, v.simple_value)
            for f in event_files(run.path)
            for e in LegacyEventFileLoader(str(f)).Load()
            for v in e.summary.value
            if v.HasField("simple_value")
        ]
    )


def test_same_seed_and_now_give_the_same_logs(tmp_path: Path, demo: DemoLogs) -> None:
    again = write_demo_logs(tmp_path / "again", now=NOW, seed=0)
    other = write_demo_logs(tmp_path / "other", now=NOW, seed=1)
    assert [(r.endpoint, r.dataset, r.run, r.kind) for r in again.runs] == [
        (r.endpoint, r.dataset, r.run, r.kind) for r in demo.runs
    ]
    for mine, theirs, different in zip(demo.runs, again.runs, other.runs, strict=True):
        assert scalar_values(mine) == scalar_values(theirs)
        mine_files = [(f.relative_to(mine.path), f.read_bytes()) for f in event_files(mine.path)]
        # Byte for byte, file names included; another seed changes every file (its noise at least).
        assert mine_files == [(f.relative_to(theirs.path), f.read_bytes()) for f in event_files(theirs.path)]
        different_files = [
            (f.relative_to(different.path), f.read_bytes()) for f in event_files(different.path)
        ]
        assert [name for name, _ in mine_files] == [name for name, _ in different_files]
        assert all(a != b for (_, a), (_, b) in zip(mine_files, different_files, strict=True))


def test_refuses_to_write_into_existing_logs(tmp_path: Path) -> None:
    (tmp_path / "lora" / "mine").mkdir(parents=True)
    with pytest.raises(FileExistsError):
        write_demo_logs(tmp_path, now=NOW)
    assert [p.name for p in (tmp_path / "lora").iterdir()] == ["mine"]


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def loss_steps(run: DemoRun) -> list[int]:
    folder, tag = ("train", "train/loss") if run.endpoint == "lora" else ("", "loss")
    return [step for step, _ in scalars(run.path / folder)[tag]]


def test_live_writer_appends_to_live_runs_and_stops_promptly(tmp_path: Path) -> None:
    logs = write_demo_logs(tmp_path, now=time.time())
    before_files = {p: p.stat().st_size for r in logs.runs for p in event_files(r.path)}
    before = {r.path: record_count(r) for r in logs.live}
    last_steps = {r.path: loss_steps(r)[-1] for r in logs.live}

    writer = LiveWriter(logs, interval=0.2)
    writer.start()
    try:
        assert wait_for(lambda: all(record_count(r) >= before[r.path] + 2 * 3 for r in logs.live))
    finally:
        started = time.monotonic()
        writer.stop()
        assert time.monotonic() - started < 1.0
    after = {r.path: record_count(r) for r in logs.live}
    time.sleep(0.4)  # two intervals
    assert {r.path: record_count(r) for r in logs.live} == after  # really stopped

    # Appended to the same files, continuing the steps; no other run or file was touched.
    assert {p for r in logs.runs for p in event_files(r.path)} == set(before_files)
    for path, size in before_files.items():
        if not any(path.is_relative_to(r.path) for r in logs.live):
            assert path.stat().st_size == size, path
        elif path.parent.name != "eval":  # eval is logged every 10th step only: it may not have grown yet
            assert path.stat().st_size > size, path
    for run in logs.live:
        steps = loss_steps(run)
        assert steps == sorted(steps) and steps[-1] > last_steps[run.path]
        assert steps[-1] - steps[-2] == steps[1] - steps[0]  # the same cadence as before


def test_live_writer_does_not_resurrect_a_deleted_run(tmp_path: Path) -> None:
    """Deleting a live run (as a retention demo would) while it is being written drops it for good."""
    logs = write_demo_logs(tmp_path, now=time.time())
    gone, kept = logs.live
    with LiveWriter(logs, interval=0.2):
        before = record_count(gone)
        assert wait_for(lambda: record_count(gone) > before)
        shutil.rmtree(gone.path)
        kept_before = record_count(kept)
        assert wait_for(lambda: record_count(kept) > kept_before + 11)  # a few ticks after the delete
    assert not gone.path.exists()


def test_live_writer_rejects_runs_it_did_not_write(tmp_path: Path, demo: DemoLogs) -> None:
    stranger = DemoRun("lora", "x", "y", tmp_path / "x" / "y", "live")
    with pytest.raises(ValueError):
        LiveWriter(DemoLogs(roots=demo.roots, runs=[stranger], live=[stranger]))
    with pytest.raises(ValueError):
        LiveWriter(demo, interval=0)
    assert os.listdir(tmp_path) == []
