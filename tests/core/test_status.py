from __future__ import annotations

from tbhub.core.models import EventFileScan, RunStatus, RunSummary
from tbhub.core.scalars import TagSummary
from tbhub.core.status import StatusRule, StatusRules, run_status

NOW = 1_800_000_000 * 10**9
NAN = float("nan")


def run(age_s: float, last_step: int = 100, dataset: str = "ds") -> RunSummary:
    scan = EventFileScan(f"{dataset}/r/events.out.tfevents.1", 1, 100, NOW - int(age_s * 1e9), 10, 100, 0, last_step)
    return RunSummary("lora", dataset, "r", f"{dataset}/r", (scan,))


def tag(name: str, last: float, *, low: float | None = 0.5, nonfinite_step: int | None = None) -> TagSummary:
    return TagSummary(
        name,
        10,
        1 if nonfinite_step is not None else 0,
        0,
        0,
        100,
        1.0,
        2.0,
        last,
        low,
        50,
        2.0,
        1,
        nonfinite_step,
        (last,),
    )


def test_running_then_stalled() -> None:
    rule = StatusRule(stalled_after_s=900)
    assert run_status(run(60), {}, rule, now_ns=NOW).status is RunStatus.RUNNING
    stalled = run_status(run(1000), {}, rule, now_ns=NOW)
    assert stalled.status is RunStatus.STALLED and stalled.evidence["idle_s"] == 1000


def test_diverged_by_nan_threshold_and_factor() -> None:
    nan = run_status(run(1), {"train/loss": tag("train/loss", NAN, nonfinite_step=42)}, StatusRule(), now_ns=NOW)
    assert nan.status is RunStatus.DIVERGED and nan.evidence["step"] == 42 and "NaN" in nan.reason
    assert nan.key == "lora/ds/r:diverged:train/loss:42"
    high = run_status(run(1), {"loss": tag("loss", 9.0)}, StatusRule(threshold=5.0), now_ns=NOW)
    assert high.status is RunStatus.DIVERGED and high.evidence["reason"] == "threshold"
    rose = run_status(run(1), {"loss": tag("loss", 2.6, low=0.5)}, StatusRule(factor=5.0), now_ns=NOW)
    assert rose.status is RunStatus.DIVERGED and rose.evidence["reason"] == "factor"
    calm = run_status(run(1), {"loss": tag("loss", 2.4, low=0.5)}, StatusRule(factor=5.0), now_ns=NOW)
    assert calm.status is RunStatus.RUNNING
    unwatched = run_status(run(1), {"grad_norm": tag("grad_norm", NAN, nonfinite_step=3)}, StatusRule(), now_ns=NOW)
    assert unwatched.status is RunStatus.RUNNING


def test_finished_by_steps_final_tag_or_marker_and_diverged_wins() -> None:
    assert (
        run_status(run(5000, last_step=1000), {}, StatusRule(max_steps=1000), now_ns=NOW).status is RunStatus.FINISHED
    )
    final = run_status(
        run(1),
        {"train/train_runtime": tag("train/train_runtime", 3.0)},
        StatusRule(final_tags=("train/train_runtime",)),
        now_ns=NOW,
    )
    assert final.status is RunStatus.FINISHED and "final tag" in final.reason
    marker = run_status(run(1), {}, StatusRule(marker_files=("DONE",)), now_ns=NOW, markers={"DONE"})
    assert marker.status is RunStatus.FINISHED
    both = run_status(
        run(1, last_step=1000), {"loss": tag("loss", NAN, nonfinite_step=999)}, StatusRule(max_steps=1000), now_ns=NOW
    )
    assert both.status is RunStatus.DIVERGED


def test_rules_per_dataset_glob() -> None:
    rules = StatusRules(
        StatusRule(stalled_after_s=900),
        (("claims-*", StatusRule(stalled_after_s=60)), ("claims-v2", StatusRule(stalled_after_s=5))),
    )
    assert rules.rule_for("chat").stalled_after_s == 900
    assert rules.rule_for("claims-v1").stalled_after_s == 60
    assert rules.rule_for("claims-v2").stalled_after_s == 5
