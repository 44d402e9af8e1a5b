"""GPUs of a Hugging Face Trainer run from its own logs (args/text_summary and the final rates), on runs
the Trainer writes itself (``hf_runs``): on this CPU machine, one device; configured gpus win."""

from __future__ import annotations

from pathlib import Path

import pytest

from hf_runs import trained_runs, view
from tbhub.app.compute import plan_devices
from tbhub.core.cost import CostRule, run_compute, trainer_devices


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_runs(tmp_path_factory.getbasetemp())


@pytest.mark.parametrize("relpath", ["hf/done", "hf/epochs"])
def test_a_finished_trainer_run_says_it_trained_on_one_device(root: Path, relpath: str) -> None:
    v = view(root, relpath)
    assert plan_devices(v.tags, v.texts) == 1
    activity = [(((1.0e9, 1.0e9 + 3600.0),), 60.0)]
    planned = run_compute(v.run, activity, stalled_after=900, rule=CostRule(2.5, None),
                          plan_devices=plan_devices(v.tags, v.texts))
    assert (planned.gpus, planned.gpus_from, planned.cost) == (1, "plan", 2.5)
    configured = run_compute(v.run, activity, stalled_after=900, rule=CostRule(2.5, 8),
                             plan_devices=plan_devices(v.tags, v.texts))
    assert (configured.gpus, configured.gpus_from) == (8, "config")


def test_a_crashed_trainer_run_has_no_device_count(root: Path) -> None:
    v = view(root, "hf/crash")  # no final rates: nothing to divide
    assert plan_devices(v.tags, v.texts) is None


def test_devices_are_samples_per_step_over_the_per_device_batch() -> None:
    facts = {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 2}
    assert trainer_devices(facts, 16 * 3.0, 3.0) == 2
    assert trainer_devices(facts, 31.0 * 3.0, 3.0) == 4  # 31 of 32 samples a step: a partial last batch
    assert trainer_devices({"per_device_train_batch_size": 4}, 4.0, 1.0) == 1
    assert trainer_devices({}, 16.0, 1.0) is None and trainer_devices(facts, None, 1.0) is None
