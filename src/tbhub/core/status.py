"""Run status from the logs alone: running, stalled, finished, diverged.

Rules (per endpoint and dataset glob in the config):

* ``diverged``: a watched scalar (tags matching ``watch``, default ``*loss*``) has a NaN or Inf, or its
  last value exceeds ``threshold``, or rises above ``factor`` x its minimum (minimum > 0);
* ``finished``: the last step reaches ``max_steps``, or a ``final_tags`` tag appears (Hugging Face's
  ``train/train_runtime``), or a ``marker_files`` file exists in the run folder;
* ``stalled``: no new events for longer than ``stalled_after`` and not finished;
* ``running``: otherwise.

Diverged wins over finished, finished over stalled. Pure functions over the scanner's and the scalar
reader's summaries.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tbhub.core.models import RunStatus, RunSummary
from tbhub.core.scalars import TagSummary

__all__ = ["StatusRule", "StatusRules", "StatusVerdict", "run_status"]


@dataclass(frozen=True, slots=True)
class StatusRule:
    stalled_after_s: float = 15 * 60
    max_steps: int | None = None
    final_tags: tuple[str, ...] = ()
    marker_files: tuple[str, ...] = ()
    watch: tuple[str, ...] = ("*loss*",)
    threshold: float | None = None
    factor: float | None = None


@dataclass(frozen=True, slots=True)
class StatusRules:
    """The default rule of an endpoint and its rules per dataset glob (most literal characters win)."""

    default: StatusRule = StatusRule()
    datasets: tuple[tuple[str, StatusRule], ...] = ()

    def rule_for(self, dataset: str) -> StatusRule:
        matches = [(glob, rule) for glob, rule in self.datasets if fnmatch.fnmatchcase(dataset, glob)]
        if not matches:
            return self.default
        exact = [m for m in matches if m[0] == dataset]
        return (exact or sorted(matches, key=lambda m: -len(m[0].strip("*?[]"))))[0][1]


@dataclass(frozen=True, slots=True)
class StatusVerdict:
    """A run's status with why; ``evidence`` is JSON-able (tag, step, value, idle_s ...).

    ``key`` names this particular state change: the same status reached by the same evidence gives
    the same key, so an alert engine fires once per change, across restarts too.
    """

    status: RunStatus
    reason: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    key: str = ""


def _watched(tag: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(tag, p) for p in patterns)


def _divergence(tags: Mapping[str, TagSummary], rule: StatusRule) -> StatusVerdict | None:
    for tag in sorted(tags):
        summary = tags[tag]
        if not _watched(tag, rule.watch):
            continue
        if summary.first_nonfinite_step is not None:
            value = summary.last_value if not math.isfinite(summary.last_value) else float("nan")
            word = "NaN" if math.isnan(value) else "Inf"
            step = summary.first_nonfinite_step
            return StatusVerdict(RunStatus.DIVERGED, f"{tag} is {word} at step {step}",
                                 {"tag": tag, "step": step, "value": str(value), "reason": "non-finite"})
        last = summary.last_value
        if rule.threshold is not None and last > rule.threshold:
            return StatusVerdict(RunStatus.DIVERGED, f"{tag} = {last:.4g} exceeds {rule.threshold:g}",
                                 {"tag": tag, "step": summary.last_step, "value": last, "reason": "threshold"})
        low = summary.min_value
        if rule.factor is not None and low is not None and low > 0 and last > rule.factor * low:
            return StatusVerdict(
                RunStatus.DIVERGED,
                f"{tag} = {last:.4g} rose above {rule.factor:g} x its minimum {low:.4g}",
                {"tag": tag, "step": summary.last_step, "value": last, "minimum": low, "reason": "factor"},
            )
    return None


def _finished(run: RunSummary, tags: Mapping[str, TagSummary], rule: StatusRule, markers: set[str]) -> str | None:
    if rule.max_steps is not None and run.last_step is not None and run.last_step >= rule.max_steps:
        return f"reached step {run.last_step:,} of {rule.max_steps:,}"
    for final in rule.final_tags:
        if final in tags or any(t.endswith("/" + final) for t in tags):
            return f"final tag {final} logged"
    for marker in rule.marker_files:
        if marker in markers:
            return f"marker file {marker} present"
    return None


def run_status(
    run: RunSummary,
    tags: Mapping[str, TagSummary],
    rule: StatusRule,
    *,
    now_ns: int,
    markers: set[str] | frozenset[str] = frozenset(),
) -> StatusVerdict:
    """The status of ``run`` now; ``markers``: which of ``rule.marker_files`` exist in the run folder."""
    base = f"{run.endpoint}/{run.relpath}"
    diverged = _divergence(tags, rule)
    if diverged is not None:
        return StatusVerdict(diverged.status, diverged.reason, diverged.evidence,
                             f"{base}:diverged:{diverged.evidence['tag']}:{diverged.evidence['step']}")
    finished = _finished(run, tags, rule, set(markers))
    if finished is not None:
        return StatusVerdict(RunStatus.FINISHED, finished, {"last_step": run.last_step},
                             f"{base}:finished:{run.last_step}")
    idle = run.age_seconds(now_ns)
    if idle > rule.stalled_after_s:
        return StatusVerdict(RunStatus.STALLED, f"no new events for {idle / 60:.0f} minutes",
                             {"idle_s": round(idle), "last_step": run.last_step},
                             f"{base}:stalled:{run.last_step}:{run.last_modified_ns}")
    return StatusVerdict(RunStatus.RUNNING, "new events recently", {"last_step": run.last_step},
                         f"{base}:running")
