"""PyTorch Lightning runs, written by Lightning itself: the plan from hparams.yaml, finished when the
epochs are done, the crashed hint when a run stops short (issue 18)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hf_runs import view
from tbhub.core.frameworks import Plan, Recognition, recognise
from tbhub.core.models import RunStatus
from tbhub.core.status import StatusRule, StatusVerdict, run_status

SCRIPT = Path(__file__).parents[1] / "pl_training.py"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    logs = tmp_path_factory.mktemp("lightning")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(logs), "done:epochs=3", "sparse:epochs=3,log_every=3",
         "crash:epochs=4,kill_at=12"],
        env=os.environ | {"OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}, capture_output=True, timeout=300,
    )
    assert proc.returncode == -9, proc.stderr.decode(errors="replace")[-3000:]  # the crash kills it
    return logs


def _verdict(root: Path, name: str, minutes: float = 60) -> tuple[Recognition, StatusVerdict]:
    v = view(root, f"lightning/{name}")
    found = recognise(v.tags, v.texts, {"hparams.yaml": (root / "lightning" / name / "hparams.yaml").read_text()})
    return found, run_status(v.run, v.tags, StatusRule(), now_ns=time.time_ns() + int(minutes * 60e9),
                             recognition=found)


@pytest.mark.parametrize("name", ["done", "sparse"])
def test_a_run_that_trained_its_epochs_is_finished(root: Path, name: str) -> None:
    found, verdict = _verdict(root, name)
    assert found.framework == "lightning" and found.plan == Plan("epochs", 3, "hparams.yaml")
    assert verdict.status is RunStatus.FINISHED, verdict.reason
    assert verdict.progress is not None and verdict.progress.fraction == 1.0


def test_a_run_killed_in_its_second_epoch_is_crashed(root: Path) -> None:
    _, verdict = _verdict(root, "crash")
    assert verdict.status is RunStatus.STALLED and verdict.crashed
    assert verdict.progress is not None and 0.3 < verdict.progress.fraction < 0.5  # 12 or 13 of 32 steps
    assert "of 4 epochs" in verdict.reason
