"""Run status from the logs alone: running, stalled, finished, diverged; with progress and a crash hint.

Rules (per endpoint and dataset glob in the config), and what ``tbhub.core.frameworks`` recognises
with no configuration:

* ``diverged``: a watched scalar (tags matching ``watch``, default ``*loss*``) has a NaN or Inf, or its
  last value exceeds ``threshold``, or rises above ``factor`` x its minimum (minimum > 0); or the last
  value of a framework's divergence tag is NaN or Inf (the Trainer's ``train/grad_norm``);
* ``finished``: the run reached its plan (``max_steps`` configured, else the plan its framework wrote:
  the Trainer's ``max_steps`` or ``num_train_epochs``), or a final tag appears (``final_tags``
  configured, else the framework's: the Trainer's ``train/train_runtime`` ...), or a ``marker_files``
  file exists in the run folder;
* ``stalled``: no new events for longer than ``stalled_after`` and not finished;
* ``running``: otherwise.

Diverged wins over finished, finished over stalled. A configured ``max_steps`` or ``final_tags``
replaces what the framework says (configured rules win).

``crashed`` is a *hint* on a stalled run, not a status of its own: the run stopped short of a known
plan without its framework's final tags. A stalled run may still resume (a long evaluation, a job
requeued from its checkpoint into the same folder): then it is running again and the hint is gone;
alerts and the alert engine's state changes stay those of ``stalled``.

Pure functions over the scanner's and the scalar reader's summaries.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from tbhub.core.dataset_globs import most_specific
from tbhub.core.frameworks import Plan, Progress, Recognition, Span, progress
from tbhub.core.models import RunStatus, RunSummary
from tbhub.core.scalars import TagSummary

__all__ = ["StatusRule", "StatusRules", "StatusVerdict", "run_plan", "run_status"]


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
        found = most_specific(dataset, self.datasets)
        return self.default if found is None else found[1]


@dataclass(frozen=True, slots=True)
class StatusVerdict:
    """A run's status with why; ``evidence`` is JSON-able (tag, step, value, idle_s ...).

    ``key`` names this particular state change: the same status reached by the same evidence gives
    the same key, so an alert engine fires once per change, across restarts too. ``framework``,
    ``progress`` and ``crashed`` (the hint on a stalled run, see the module docstring) are what the
    run's logs tell beyond its status; ``progress.eta`` is set only while the run is running.
    """

    status: RunStatus
    reason: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    key: str = ""
    framework: str | None = None
    progress: Progress | None = None
    crashed: bool = False


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


def _nonfinite_last(tags: Mapping[str, TagSummary], recognition: Recognition) -> StatusVerdict | None:
    for tag in recognition.nonfinite_tags:
        summary = tags.get(tag)
        if summary is None or math.isfinite(summary.last_value):
            continue
        value = summary.last_value
        word = "NaN" if math.isnan(value) else "Inf"
        step = summary.first_nonfinite_step if summary.first_nonfinite_step is not None else summary.last_step
        return StatusVerdict(RunStatus.DIVERGED, f"{tag} is {word} since step {step}",
                             {"tag": tag, "step": step, "value": str(value), "reason": "non-finite"})
    return None


def _finished(run: RunSummary, tags: Mapping[str, TagSummary], rule: StatusRule, markers: set[str],
              recognition: Recognition, where: Progress | None) -> str | None:
    if where is not None and where.reached:
        plan = where.plan
        if plan.unit == "steps":
            return f"reached step {run.last_step or 0:,} of {plan.total:,.0f}"
        return f"reached epoch {where.done:g} of {plan.total:g}"
    for final in rule.final_tags or recognition.final_tags:
        if final in tags or any(t.endswith("/" + final) for t in tags):
            return f"final tag {final} logged"
    for marker in rule.marker_files:
        if marker in markers:
            return f"marker file {marker} present"
    return None


def run_plan(rule: StatusRule, recognition: Recognition) -> Plan | None:
    """The plan a run is held to: the configured ``max_steps`` (epochs for Keras), else the one its
    framework wrote."""
    if rule.max_steps is not None:
        return recognition.configured_plan(rule.max_steps)
    return recognition.plan


def run_status(
    run: RunSummary,
    tags: Mapping[str, TagSummary],
    rule: StatusRule,
    *,
    now_ns: int,
    markers: set[str] | frozenset[str] = frozenset(),
    recognition: Recognition | None = None,
    spans: Sequence[Span] | None = None,
) -> StatusVerdict:
    """The status of ``run`` now; ``markers``: which of ``rule.marker_files`` exist in the run folder;
    ``recognition``: what ``tbhub.core.frameworks.recognise`` found in its logs (nothing by default);
    ``spans``: its files' step spans for the ETA (``frameworks.file_spans``). The verdict carries the
    framework, the progress along the plan and the ``crashed`` hint."""
    known = recognition or Recognition()
    where = progress(run, tags, known, run_plan(rule, known), spans)
    base = f"{run.endpoint}/{run.relpath}"
    diverged = _divergence(tags, rule) or _nonfinite_last(tags, known)
    if diverged is not None:
        return StatusVerdict(diverged.status, diverged.reason, diverged.evidence,
                             f"{base}:diverged:{diverged.evidence['tag']}:{diverged.evidence['step']}",
                             known.framework, _no_eta(where))
    finished = _finished(run, tags, rule, set(markers), known, where)
    if finished is not None:
        return StatusVerdict(RunStatus.FINISHED, finished, {"last_step": run.last_step},
                             f"{base}:finished:{run.last_step}", known.framework, _no_eta(where))
    idle = run.age_seconds(now_ns)
    if idle > rule.stalled_after_s:
        reason = f"no new events for {idle / 60:.0f} minutes"
        crashed = where is not None
        if where is not None:
            reason += f"; stopped at {where.fraction:.0%} of {where.plan.text()}"
        return StatusVerdict(RunStatus.STALLED, reason,
                             {"idle_s": round(idle), "last_step": run.last_step},
                             f"{base}:stalled:{run.last_step}:{run.last_modified_ns}",
                             known.framework, _no_eta(where), crashed)
    return StatusVerdict(RunStatus.RUNNING, "new events recently", {"last_step": run.last_step},
                         f"{base}:running", known.framework, where)


def _no_eta(where: Progress | None) -> Progress | None:
    """A run that stopped (diverged, finished, stalled) has no ETA."""
    return where if where is None or where.eta is None else replace(where, eta=None)
