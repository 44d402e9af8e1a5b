"""The demo log roots, read back with TensorBoard's own loaders."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import (
    LegacyEventFileLoader,
    RawEventFileLoader,
)
from tensorboard.summary.writer.record_writer import RecordWriter

from ports import free_port
from tbhub.config import load_config
from tbhub.demo import MARKER, DemoLogs, DemoPorts, DemoRun, LiveWriter, write_demo_config, write_demo_logs

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
    assert 6 <= counts["lora"] <= 13  # with a few weeks of history per dataset, for the trends page
    assert 3 <= counts["router"] <= 7
    assert len({r.dataset for r in demo.runs if r.endpoint == "lora"}) >= 3
    for run in demo.runs:
        assert run.path == demo.roots[run.endpoint] / run.dataset / run.run
        folders = {f.parent.relative_to(run.path).as_posix() for f in event_files(run.path)}
        assert folders == ({"train", "eval"} if run.endpoint == "lora" else {"."})
    kinds = Counter(r.kind for r in demo.runs)
    assert kinds["diverged"] == 1 and kinds["stalled"] == 1 and kinds["old"] >= 2 and kinds["finished"] >= 2
    # Per endpoint one run that trains for the whole demo; a LoRA run diverges and a router run finishes.
    assert sorted((r.endpoint, r.kind) for r in demo.live) == [
        ("lora", "diverging"), ("lora", "live"), ("router", "finishing"), ("router", "live")]
    assert all(r in demo.runs for r in demo.live)
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
    # Beside the histogram, the plan as the Hugging Face Trainer writes it (docs/frameworks.md).
    assert sorted(acc.Tags()["tensors"]) == ["args/text_summary", "lora_A/weights"]
    assert acc.SummaryMetadata("args/text_summary").plugin_data.plugin_name == "text"
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
    gone, kept = the_run(logs, "live", "lora"), the_run(logs, "live", "router")
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


def test_finished_and_old_runs_carry_the_done_marker_dated_at_their_end(demo: DemoLogs) -> None:
    for run in demo.runs:
        marker = run.path / MARKER
        if run.kind in ("finished", "old"):
            newest = max(f.stat().st_mtime for f in event_files(run.path))
            assert marker.is_file() and marker.stat().st_mtime == pytest.approx(newest, abs=2.0), run
        else:
            assert not marker.exists(), run


def nan_steps(run: DemoRun) -> list[int]:
    return [step for step, value in scalars(run.path / "train")["train/loss"] if math.isnan(value)]


def test_while_you_watch_one_run_diverges_and_one_finishes(tmp_path: Path) -> None:
    """The diverging run's loss turns NaN after 8 live steps and its job stops 2 steps later; the
    finishing run logs up to its planned last step and drops DONE; the other live runs go on."""
    logs = write_demo_logs(tmp_path, now=time.time())
    diverging, finishing = the_run(logs, "diverging"), the_run(logs, "finishing", "router")
    keeps = [r for r in logs.live if r.kind == "live"]
    assert not nan_steps(diverging) and not (finishing.path / MARKER).exists()
    started = time.time()
    with LiveWriter(logs, interval=0.05):
        assert wait_for(lambda: (finishing.path / MARKER).exists() and len(nan_steps(diverging)) == 3, 20)
        ended = {r.path: record_count(r) for r in (diverging, finishing)}
        going = {r.path: record_count(r) for r in keeps}
        assert wait_for(lambda: all(record_count(r) > going[r.path] + 6 for r in keeps))
    assert {r.path: record_count(r) for r in (diverging, finishing)} == ended  # those jobs are over
    first_nan = nan_steps(diverging)[0]
    assert loss_steps(diverging)[-1] == first_nan + 20 and first_nan - loss_steps(diverging)[0] > 300
    assert loss_steps(finishing)[-1] == 1000  # its planned steps
    assert (finishing.path / MARKER).stat().st_mtime >= started - 1
    assert not (diverging.path / MARKER).exists()

    # A writer started again (the demo restarted on the same folder) does not revive ended jobs.
    with LiveWriter(logs, interval=0.05):
        time.sleep(0.3)
    assert {r.path: record_count(r) for r in (diverging, finishing)} == ended


def test_demo_config_is_read_by_the_cli_as_the_hub_reads_it(tmp_path: Path) -> None:
    logs = write_demo_logs(tmp_path, now=time.time())
    path = write_demo_config(tmp_path, logs, DemoPorts(hub=7105, lora=7106, router=7107, reload_interval=4))
    assert path == tmp_path / "tbhub.toml"
    config = load_config(path)
    assert (config.server.host, config.server.port) == ("127.0.0.1", 7105)
    assert config.state.dir == tmp_path / "state"
    assert config.auth.mode == "none"
    assert config.alerts.marker_files == [MARKER] and config.alerts.stalled_after == "2m"
    assert {n: (e.logdir, e.port, e.reload_interval) for n, e in config.endpoints.items()} == {
        "lora": (str(logs.roots["lora"]), 7106, 4), "router": (str(logs.roots["router"]), 7107, 4)}
    with pytest.raises(FileExistsError):  # never over a config that is there
        write_demo_config(tmp_path, logs, DemoPorts())

    # The CLI given this file agrees with the demo: DONE makes 8 runs finished, 1 is stalled (not 9).
    out = subprocess.run([sys.executable, "-m", "tbhub", "runs", "--config", str(path), "--status", "--json"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    records = json.loads(out)
    statuses = Counter(r["status"] for r in records)
    kinds = Counter(r.kind for r in logs.runs)
    assert statuses == {"finished": kinds["finished"] + kinds["old"], "stalled": 1, "diverged": 1,
                        "running": len(logs.live)}
    # Every run carries its plan (the Trainer's args text, Lightning's hparams.yaml): progress, the
    # running ones an ETA, the stalled one short of its plan the crashed hint.
    assert {r["framework"] for r in records} == {"transformers", "lightning"} and all(r["plan"] for r in records)
    assert all(r["eta"] for r in records if r["status"] == "running")
    assert [r["crashed"] for r in records if r["status"] == "stalled"] == [True]


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_tbhub_demo_serves_its_config_and_stops_with_a_closing_line(tmp_path: Path, stop: signal.Signals) -> None:
    """Without make or a terminal: the config is written before the hub answers, the printed commands
    name it, and SIGINT or SIGTERM end with exit 0, the closing line and every child gone."""
    folder, hub = tmp_path / "demo", free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tbhub", "demo", "--dir", str(folder), "--port", str(hub),
         "--lora-port", str(free_port()), "--router-port", str(free_port())],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    tree: list[psutil.Process] = []
    try:
        def answers() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"http://127.0.0.1:{hub}/healthz", timeout=5, trust_env=False).status_code == 200
            return False

        assert wait_for(answers, 120), "the demo's hub never answered"
        tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        assert (folder / "tbhub.toml").is_file() and (folder / "state").is_dir()
        endpoints = httpx.get(f"http://127.0.0.1:{hub}/api/endpoints", timeout=10, trust_env=False).json()
        assert sorted(e["name"] for e in endpoints) == ["lora", "router"]  # served from that file, auth off
        # The backdated runs come with the size history they imply: growth and the chart show at once.
        usage = httpx.get(f"http://127.0.0.1:{hub}/api/usage", timeout=10, trust_env=False).json()
        assert usage and all(r["growth_7d_bytes"] is not None and r["growth_30d_bytes"] is not None for r in usage)
        history = httpx.get(f"http://127.0.0.1:{hub}/api/usage/history", timeout=10, trust_env=False).json()
        assert len(history["times"]) >= 30
        proc.send_signal(stop)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        for child in tree:
            with contextlib.suppress(psutil.Error):
                child.kill()
    assert proc.returncode == 0, out
    config = str(folder / "tbhub.toml")
    # python -m tbhub: the commands name the console script beside this interpreter (tbhub if on PATH).
    program = str(Path(sys.executable).parent / "tbhub")
    if shutil.which("tbhub") and Path(shutil.which("tbhub") or "").resolve() == Path(program).resolve():
        program = "tbhub"
    assert f"  {program} runs --config {config} --status\n" in out
    assert f"  {program} clean --config {config} --dry-run --select old\n" in out
    assert "Sign-in is off in this demo" in out and "Try these in another terminal:" in out
    closing = f"Demo stopped. Its logs and config stay in {folder}; remove them with: rm -rf {folder}"
    assert out.rstrip().endswith(closing)
    assert "Traceback" not in out and "Aborted" not in out
    _, alive = psutil.wait_procs(tree, timeout=15)
    assert not alive


def test_a_port_in_use_is_one_line_before_any_log_is_written(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "tbhub", "demo", "--dir", str(tmp_path / "d"),
                               "--lora-port", str(port)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert f"port {port} for the lora TensorBoard is already in use" in done.stderr
    assert not (tmp_path / "d").exists()
