"""Status, plan, progress and the crash hint with no configuration, on logs the Hugging Face Trainer
(transformers 5, LoRA via peft, a tiny random model) writes itself (issue 18)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hf_runs import trained_runs, view
from tbhub.core.frameworks import Plan, recognise
from tbhub.core.models import RunStatus
from tbhub.core.status import StatusRule, run_status

DEFAULT = StatusRule()  # stalled after 15 minutes, nothing else configured


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_runs(tmp_path_factory.getbasetemp())


def later(minutes: float) -> int:
    return time.time_ns() + int(minutes * 60e9)


def test_the_trainer_is_recognised_with_its_plan_from_args(root: Path) -> None:
    done = view(root, "hf/done")
    found = recognise(done.tags, done.texts)
    assert found.framework == "transformers"
    assert found.plan == Plan("steps", 12, "args/text_summary")
    assert found.facts["per_device_train_batch_size"] == 4
    epochs = view(root, "hf/epochs")
    assert recognise(epochs.tags, epochs.texts).plan == Plan("epochs", 2, "args/text_summary")


@pytest.mark.parametrize("relpath", ["hf/done", "hf/epochs"])
def test_a_completed_trainer_run_is_finished_with_the_default_config(root: Path, relpath: str) -> None:
    """The issue's complaint: it showed stalled after 15 minutes, like the crashed run."""
    v = view(root, relpath)
    verdict = run_status(v.run, v.tags, DEFAULT, now_ns=later(60), recognition=recognise(v.tags, v.texts))
    assert verdict.status is RunStatus.FINISHED, verdict.reason
    assert verdict.framework == "transformers" and not verdict.crashed
    assert verdict.progress is not None and verdict.progress.fraction == 1.0 and verdict.progress.eta is None


def test_final_tags_alone_finish_a_run_whose_plan_is_unknown(root: Path) -> None:
    v = view(root, "hf/done")
    found = recognise(v.tags, {})  # no args text: the final tags still say it ended
    assert found.framework == "transformers" and found.plan is None
    verdict = run_status(v.run, v.tags, DEFAULT, now_ns=later(60), recognition=found)
    assert verdict.status is RunStatus.FINISHED and verdict.reason == "final tag train/train_runtime logged"


def test_a_run_killed_short_of_its_plan_is_stalled_with_the_crashed_hint(root: Path) -> None:
    v = view(root, "hf/crash")
    assert v.run.last_step == 7
    found = recognise(v.tags, v.texts)
    fresh = run_status(v.run, v.tags, DEFAULT, now_ns=time.time_ns(), recognition=found)
    assert fresh.status is RunStatus.RUNNING and not fresh.crashed  # within stalled_after: may go on
    verdict = run_status(v.run, v.tags, DEFAULT, now_ns=later(20), recognition=found)
    assert verdict.status is RunStatus.STALLED and verdict.crashed
    assert verdict.progress is not None and verdict.progress.fraction == pytest.approx(7 / 20)
    assert "stopped at 35% of 20 steps" in verdict.reason


def test_a_finished_run_is_never_crashed(root: Path) -> None:
    v = view(root, "hf/done")
    verdict = run_status(v.run, v.tags, DEFAULT, now_ns=later(600), recognition=recognise(v.tags, v.texts))
    assert verdict.status is RunStatus.FINISHED and not verdict.crashed


def test_nan_weights_are_a_divergence_though_train_loss_is_filtered(root: Path) -> None:
    """logging_nan_inf_filter logs the NaN training loss as a finite number: eval/loss and grad_norm show it."""
    v = view(root, "hf/nan")
    assert all(x == x for x in v.tags["train/loss"].tail)  # no NaN in train/loss
    found = recognise(v.tags, v.texts)
    verdict = run_status(v.run, v.tags, DEFAULT, now_ns=later(60), recognition=found)
    assert verdict.status is RunStatus.DIVERGED
    # Without eval/loss watched, the framework's grad_norm rule still catches it.
    unwatched = run_status(v.run, v.tags, StatusRule(watch=("nothing",)), now_ns=later(60), recognition=found)
    assert unwatched.status is RunStatus.DIVERGED and unwatched.evidence["tag"] == "train/grad_norm"
    assert unwatched.evidence["step"] == 6


def test_configured_rules_win(root: Path) -> None:
    v = view(root, "hf/done")
    found = recognise(v.tags, v.texts)
    longer = run_status(v.run, v.tags, StatusRule(max_steps=100, final_tags=("never",)), now_ns=later(60),
                        recognition=found)
    assert longer.status is RunStatus.STALLED and longer.crashed
    assert longer.progress is not None and longer.progress.plan == Plan("steps", 100, "config")
    marker = run_status(v.run, v.tags, StatusRule(max_steps=100, final_tags=("never",), marker_files=("DONE",)),
                        now_ns=later(60), markers={"DONE"}, recognition=found)
    assert marker.status is RunStatus.FINISHED


def test_without_recognition_nothing_changes(root: Path) -> None:
    """What tbhub said before it knew frameworks: the completed run was stalled (the issue's report)."""
    v = view(root, "hf/done")
    verdict = run_status(v.run, v.tags, DEFAULT, now_ns=later(60))
    assert verdict.status is RunStatus.STALLED and verdict.framework is None and not verdict.crashed
