"""Keras runs written by Keras itself (its ``TensorBoard`` callback, TensorFlow 2 on the CPU), read
through ``tbhub runs --status --json`` and the status use cases (issue 18).

Keras writes no epoch count, so the plans come from the config: ``max_steps`` counts epochs for a
Keras run. Its ``validation/`` folder logs ``evaluation_loss_vs_iterations`` at the optimizer step
(3 an epoch here), and with ``update_freq`` a number ``train/`` logs ``batch_loss`` at it too: a run
killed after 2 of 5 epochs has logged step 6, which a plan in steps would call finished.

Training runs in child processes (``keras_training.py``): TensorFlow stays out of the test process.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hf_runs import stop, view, wait_for
from tbhub.app.inventory import scan_endpoints
from tbhub.app.services import Services
from tbhub.app.status import current_statuses
from tbhub.config import load_config
from tbhub.core.models import RunStatus
from tbhub.core.status import StatusVerdict
from tbhub.interfaces.cli.main import main

SCRIPT = Path(__file__).with_name("keras_training.py")
# Keras trains in its own venv (`make keras-venv`, part of `make test`; tests/keras-requirements.txt):
# TensorFlow stays out of the dev venv, where it would change the TensorBoard every other test runs.
KERAS_PYTHON = Path(os.environ.get("TBHUB_KERAS_PYTHON", Path(__file__).parents[1] / ".venv-keras" / "bin" / "python"))

pytestmark = pytest.mark.skipif(
    not KERAS_PYTHON.exists(), reason=f"no Keras venv at {KERAS_PYTHON} (`make keras-venv`: TensorFlow did not install)"
)

EPOCH_TAG = "train/epoch_loss"


def _start(root: Path, *specs: str, go: Path | None = None) -> subprocess.Popen[bytes]:
    env = os.environ | {"OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore",
                        "CUDA_VISIBLE_DEVICES": ""} | ({"KERAS_TEST_GO_FILE": str(go)} if go else {})
    return subprocess.Popen([str(KERAS_PYTHON), str(SCRIPT), str(root), *specs], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _config(tmp: Path, logs: Path, stalled_after: str, plans: dict[str, int]) -> Path:
    cfg = tmp / "tbhub.toml"
    rules = "".join(f'[alerts.endpoints.k.datasets.{name}]\nmax_steps = {epochs}\n' for name, epochs in plans.items())
    cfg.write_text(f'[state]\ndir = "{tmp / "state"}"\n[endpoints.k]\nlogdir = "{logs}"\n'
                   f'[alerts]\nstalled_after = "{stalled_after}"\n{rules}')
    return cfg


def _runs_json(capsys: pytest.CaptureFixture[str], cfg: Path) -> dict[str, dict[str, object]]:
    """``tbhub runs --status --json``, in process: the records by run relpath."""
    capsys.readouterr()
    try:
        main(["runs", "--config", str(cfg), "--status", "--json"])
    except SystemExit as exit_:
        assert not exit_.code, capsys.readouterr().err
    return {f'{r["dataset"]}/{r["run"]}': r for r in json.loads(capsys.readouterr().out)}


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Trained once, in one process: 3 epochs; 3 epochs with batch_loss every 3 steps, and every 2
    steps; 3 epochs at a learning rate of 1e6 (the loss goes Inf then NaN); 5 planned, killed after
    the second."""
    root = tmp_path_factory.mktemp("keras") / "logs"
    proc = _start(root, "three/done:epochs=3", "three/batches:epochs=3,update_freq=3",
                  "three/gaps:epochs=3,update_freq=2", "three/nan:epochs=3,lr=1e6",
                  "five/crash:epochs=5,kill_at=1")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == -9, out.decode(errors="replace")[-3000:]  # the crash kills it
    # The crashed run must have been quiet for longer than stalled_after (1 s below).
    newest = max(p.stat().st_mtime for p in root.rglob("events.out.tfevents.*"))
    time.sleep(max(0.0, newest + 1.5 - time.time()))
    return root


def test_what_keras_wrote(logs: Path) -> None:
    """The layout the other tests rely on: epoch_* at the epoch index, the rest at optimizer steps."""
    done, batches = view(logs, "three/done"), view(logs, "three/batches")
    assert [(done.tags[t].first_step, done.tags[t].last_step) for t in (EPOCH_TAG, "validation/epoch_loss")] == \
        [(0, 2), (0, 2)]
    assert "train/epoch_learning_rate" in done.tags
    assert done.tags["validation/evaluation_loss_vs_iterations"].last_step == 9 == done.run.last_step
    assert batches.tags["train/batch_loss"].last_step == 9 and batches.tags[EPOCH_TAG].count == 3
    # update_freq=2 and 3 steps an epoch: Keras records the epoch summaries only when the batch count
    # is even at the end of an epoch (its record_if covers them too), so epochs 0 and 2 are not logged.
    gaps = view(logs, "three/gaps").tags[EPOCH_TAG]
    assert (gaps.count, gaps.first_step, gaps.last_step) == (1, 1, 1)


def test_runs_status_with_epochs_configured(logs: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    runs = _runs_json(capsys, _config(tmp_path, logs, "1s", {"three": 3, "five": 5}))
    for name in ("three/done", "three/batches"):
        run = runs[name]
        assert (run["status"], run["framework"], run["plan"], run["progress"], run["crashed"], run["eta"]) == \
            ("finished", "keras", "3 epochs", 1.0, False, None), run
    crash = runs["five/crash"]
    assert (crash["status"], crash["framework"], crash["plan"], crash["progress"], crash["crashed"]) == \
        ("stalled", "keras", "5 epochs", 0.4, True), crash
    assert crash["last_step"] == 6 and crash["eta"] is None  # evaluation_loss_vs_iterations' step
    gaps = runs["three/gaps"]  # its last epoch not logged (test_what_keras_wrote): short of its plan
    assert (gaps["status"], gaps["progress"], gaps["crashed"]) == ("stalled", 0.6667, True), gaps
    nan = runs["three/nan"]
    assert (nan["status"], nan["framework"]) == ("diverged", "keras"), nan


def test_without_a_plan_keras_is_recognised_but_not_finished(logs: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    done = _runs_json(capsys, _config(tmp_path, logs, "1s", {}))["three/done"]
    assert (done["status"], done["framework"], done["plan"], done["progress"], done["crashed"]) == \
        ("stalled", "keras", None, None, False)


def test_a_nan_loss_is_a_divergence(logs: Path, tmp_path: Path) -> None:
    with Services(load_config(_config(tmp_path, logs, "1s", {"three": 3}))) as services:
        verdict = current_statuses(services, scan_endpoints(services), time.time_ns())[("k", "three/nan")]
    assert verdict.status is RunStatus.DIVERGED and verdict.progress is not None and verdict.progress.reached
    assert verdict.evidence["tag"].endswith("loss") and verdict.evidence["value"] in ("inf", "nan")


# Runs watched while Keras trains them: each in its own process, started together (imports side by
# side); each test lets its run train (go-NAME) when it is ready to watch.


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, subprocess.Popen[bytes]]]]:
    base = tmp_path_factory.mktemp("keras-live")
    procs = {
        "eta": _start(base / "logs", "ten/eta:epochs=10,sleep=0.5", go=base / "go-eta"),
        "pause": _start(base / "logs", "six/pause:epochs=6,sleep=0.2,pause_at=1,pause=5", go=base / "go-pause"),
        # Killed after its third epoch, then requeued: on from epoch 3 into the same folder (new files).
        "crash": _start(base / "logs", "ten/requeued:epochs=10,kill_at=2"),
        "requeued": _start(base / "logs", "ten/requeued:epochs=10,initial=3,sleep=0.5", go=base / "go-requeued"),
    }
    try:
        yield base, procs
    finally:
        for proc in procs.values():
            stop(proc)


def _status(services: Services, relpath: str) -> StatusVerdict:
    return current_statuses(services, scan_endpoints(services), time.time_ns())[("k", relpath)]


def _epochs_done(logs: Path, relpath: str) -> int:
    if not list((logs / relpath).rglob("events.out.tfevents.*")):
        return 0
    tag = view(logs, relpath).tags.get(EPOCH_TAG)
    return 0 if tag is None else tag.last_step + 1


def test_progress_and_eta_of_a_run_still_training(live: tuple[Path, dict[str, subprocess.Popen[bytes]]],
                                                  tmp_path: Path) -> None:
    base, procs = live
    logs, proc = base / "logs", procs["eta"]
    (base / "go-eta").touch()
    wait_for(lambda: _epochs_done(logs, "ten/eta") >= 4, 120, "epoch 4", proc)
    cfg = _config(tmp_path, logs, "15m", {"ten": 10})
    with Services(load_config(cfg)) as services:
        verdict = _status(services, "ten/eta")
    asked = time.time()
    assert verdict.status is RunStatus.RUNNING and verdict.framework == "keras" and not verdict.crashed
    where = verdict.progress
    assert where is not None and where.plan.text() == "10 epochs" and where.eta is not None
    assert 0.4 <= where.fraction < 1
    assert proc.wait(timeout=120) == 0
    truth = view(logs, "ten/eta").tags[EPOCH_TAG]
    assert truth.last_step == 9  # the tenth epoch, the plan
    error = abs(where.eta - truth.last_wall_time) / (truth.last_wall_time - asked)
    assert error <= 0.2, (f"ETA off by {error:.0%}: predicted {where.eta - asked:.2f} s, "
                          f"took {truth.last_wall_time - asked:.2f} s")
    with Services(load_config(cfg)) as services:
        done = _status(services, "ten/eta")
    assert done.status is RunStatus.FINISHED and done.reason == "reached epoch 10 of 10"


def test_eta_of_a_job_resumed_after_a_crash(live: tuple[Path, dict[str, subprocess.Popen[bytes]]],
                                            tmp_path: Path) -> None:
    """The pace is the new files' (epochs since the requeue), not one over the crash and the wait."""
    base, procs = live
    logs, proc = base / "logs", procs["requeued"]
    assert procs["crash"].wait(timeout=120) == -9
    time.sleep(3)  # the job waits in the queue
    (base / "go-requeued").touch()
    wait_for(lambda: _epochs_done(logs, "ten/requeued") >= 6, 120, "epoch 6", proc)
    with Services(load_config(_config(tmp_path, logs, "15m", {"ten": 10}))) as services:
        verdict = _status(services, "ten/requeued")
    asked = time.time()
    assert verdict.status is RunStatus.RUNNING and verdict.progress is not None and verdict.progress.eta is not None
    assert len(list((logs / "ten/requeued/train").glob("events.out.tfevents.*"))) == 2
    assert proc.wait(timeout=120) == 0
    truth = view(logs, "ten/requeued").tags[EPOCH_TAG]
    assert truth.last_step == 9
    eta = verdict.progress.eta
    error = abs(eta - truth.last_wall_time) / (truth.last_wall_time - asked)
    took = truth.last_wall_time - asked
    assert error <= 0.2, f"ETA off by {error:.0%}: predicted {eta - asked:.2f} s, took {took:.2f} s"


def test_a_stall_that_resumes(live: tuple[Path, dict[str, subprocess.Popen[bytes]]], tmp_path: Path) -> None:
    base, procs = live
    logs, proc = base / "logs", procs["pause"]
    (base / "go-pause").touch()
    wait_for(lambda: _epochs_done(logs, "six/pause") >= 2, 120, "epoch 2", proc)
    with Services(load_config(_config(tmp_path, logs, "2s", {"six": 6}))) as services:
        seen: list[StatusVerdict] = []
        wait_for(lambda: seen.append(_status(services, "six/pause")) or seen[-1].status is RunStatus.STALLED, 10,
                 "the stall")
        stalled = seen[-1]
        assert stalled.crashed and stalled.progress is not None and stalled.progress.eta is None
        assert stalled.progress.done == 2 and "stopped at 33% of 6 epochs" in stalled.reason
        # Training goes on: running again, the hint gone.
        wait_for(lambda: _epochs_done(logs, "six/pause") > 2, 30, "the resumption", proc)
        resumed = _status(services, "six/pause")
        assert resumed.status is RunStatus.RUNNING and not resumed.crashed
        assert proc.wait(timeout=120) == 0
        finished = _status(services, "six/pause")
        assert finished.status is RunStatus.FINISHED and not finished.crashed
