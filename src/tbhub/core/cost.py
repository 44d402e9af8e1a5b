"""Compute cost of runs: busy time, GPU-hours, and their price.

A run's **busy time** is the sum of the gaps between its consecutive events (all its event files on
one timeline) that are shorter than the status rule's ``stalled_after``: a pause long enough to make
the run stalled is not billed, and neither is the time before a resumption. It is computed from the
activity segments every event file's scalar state keeps (``tbhub.core.scalars.activity``), exactly
when ``stalled_after`` is at least ``ACTIVITY_GAP`` (60 s) and the files kept their segments at that
gap (``RunCompute.exact`` says when not).

GPU-hours are busy hours times the run's GPUs: the configured ``gpus`` (the most specific of
``[cost]``, ``[cost.endpoints.NAME]`` and its ``datasets.GLOB`` that sets it), else the device count
of the run's plan where its logs give one, else 1. The price is ``gpu_hour`` the same way; unset, a
cost is ``None`` (reported as "price not set"), never 0.

Months are calendar months in UTC; busy time is split at their boundaries (a pause that is still
billed, because it is shorter than ``stalled_after``, counts in the month where it ends).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from tbhub.core.dataset_globs import most_specific
from tbhub.core.models import RunSummary
from tbhub.core.scalars.activity import Segment, merge_segments

__all__ = [
    "PRICE_NOT_SET",
    "CostRule",
    "CostRules",
    "RunActivity",
    "RunCompute",
    "busy_seconds",
    "month_key",
    "month_start",
    "previous_month",
    "run_compute",
    "total_cost",
    "trainer_devices",
]

#: What a cost without a price says, in the CLI and on the pages.
PRICE_NOT_SET = "price not set: set [cost] gpu_hour"

#: The activity of one event file: its segments and the gap they were kept at.
RunActivity = Sequence[tuple[Sequence[Segment], float]]


@dataclass(frozen=True, slots=True)
class CostRule:
    """Compute prices for runs: ``gpu_hour`` (``None``: not set) and ``gpus`` (``None``: not set)."""

    gpu_hour: float | None = None
    gpus: int | None = None


@dataclass(frozen=True, slots=True)
class CostRules:
    """An endpoint's default rule and its rules per dataset glob (an exact name wins, then the glob
    with the most literal characters, as for the status rules)."""

    default: CostRule = CostRule()
    datasets: tuple[tuple[str, CostRule], ...] = ()

    def rule_for(self, dataset: str) -> CostRule:
        found = most_specific(dataset, self.datasets)
        return self.default if found is None else found[1]


def trainer_devices(facts: Mapping[str, object], samples_per_s: float | None, steps_per_s: float | None) -> int | None:
    """The devices a finished Hugging Face Trainer run trained on, ``None`` when its logs cannot say.

    The Trainer's ``args/text_summary`` holds no device count (``TrainingArguments.to_json_string``
    leaves out ``n_gpu`` and ``world_size``, transformers 5.25), but it holds the per-device batch size
    and the gradient accumulation, and a finished run logs ``train_samples_per_second`` and
    ``train_steps_per_second``: samples per optimizer step = per-device batch x accumulation x devices
    (a partial last batch of an epoch-planned run makes the ratio a little low; rounding absorbs it).
    """
    batch, accumulation = facts.get("per_device_train_batch_size"), facts.get("gradient_accumulation_steps", 1)
    if not isinstance(batch, int) or not isinstance(accumulation, int) or batch < 1 or accumulation < 1:
        return None
    if not samples_per_s or not steps_per_s or samples_per_s <= 0 or steps_per_s <= 0:
        return None
    devices = round(samples_per_s / steps_per_s / (batch * accumulation))
    return devices if devices >= 1 else None


def month_start(moment: float) -> float:
    """The first second (UTC) of the month holding ``moment``."""
    day = dt.datetime.fromtimestamp(moment, tz=dt.UTC)
    return dt.datetime(day.year, day.month, 1, tzinfo=dt.UTC).timestamp()


def previous_month(moment: float) -> float:
    """The first second (UTC) of the month before the one holding ``moment``."""
    return month_start(month_start(moment) - 1)


def month_key(moment: float) -> str:
    """``"2026-12"``: the UTC month holding ``moment``."""
    return dt.datetime.fromtimestamp(moment, tz=dt.UTC).strftime("%Y-%m")


def busy_seconds(activity: RunActivity, stalled_after: float, until: float | None = None) -> tuple[float, bool]:
    """A run's busy seconds (up to the wall time ``until`` when given) and whether the figure is exact."""
    return merge_segments(activity, stalled_after, until)


@dataclass(frozen=True, slots=True)
class RunCompute:
    """What one run cost in compute.

    ``busy_s``: its busy time; ``months``: that time per UTC month (``"2026-12"``), summing to
    ``busy_s``; ``gpus`` and where they come from (``"config"``, ``"plan"`` or ``"default"``);
    ``gpu_hour``: the price (``None``: not set); ``target_busy_s``: the busy time until a target first
    held (``None``: not asked, not reached or not known).
    """

    run: RunSummary
    busy_s: float
    exact: bool
    gpus: int
    gpus_from: str
    gpu_hour: float | None
    months: Mapping[str, float] = field(default_factory=dict)
    target_busy_s: float | None = None

    @property
    def gpu_hours(self) -> float:
        return self.busy_s / 3600 * self.gpus

    @property
    def cost(self) -> float | None:
        return None if self.gpu_hour is None else self.gpu_hours * self.gpu_hour

    def month_gpu_hours(self, key: str) -> float:
        return self.months.get(key, 0.0) / 3600 * self.gpus

    @property
    def target_gpu_hours(self) -> float | None:
        return None if self.target_busy_s is None else self.target_busy_s / 3600 * self.gpus

    @property
    def target_cost(self) -> float | None:
        hours = self.target_gpu_hours
        return None if hours is None or self.gpu_hour is None else hours * self.gpu_hour


def _months(activity: RunActivity, stalled_after: float, total: float) -> dict[str, float]:
    """Busy seconds per UTC month: the busy time up to each month boundary, differenced."""
    starts = sorted(s for segments, _ in activity for s, _ in segments)
    ends = [e for segments, _ in activity for _, e in segments]
    if not starts:
        return {}
    out: dict[str, float] = {}
    boundary = month_start(starts[0])
    last = max(ends)
    before = 0.0
    while boundary <= last:
        key = month_key(boundary)
        following = month_start(boundary + 32 * 86400)
        upto = total if following > last else busy_seconds(activity, stalled_after, following)[0]
        if upto - before > 0:
            out[key] = upto - before
        before = upto
        boundary = following
    return out


def run_compute(
    run: RunSummary,
    activity: RunActivity,
    *,
    stalled_after: float,
    rule: CostRule,
    plan_devices: int | None = None,
    target_wall_time: float | None = None,
) -> RunCompute:
    """The compute of ``run`` from its files' ``activity``; ``target_wall_time``: when a target first
    held (its busy time until then becomes ``target_busy_s``)."""
    busy, exact = busy_seconds(activity, stalled_after)
    if rule.gpus is not None:
        gpus, source = rule.gpus, "config"
    elif plan_devices is not None and plan_devices >= 1:
        gpus, source = plan_devices, "plan"
    else:
        gpus, source = 1, "default"
    target = None
    if target_wall_time is not None:
        target = busy_seconds(activity, stalled_after, target_wall_time)[0]
    return RunCompute(run, busy, exact, gpus, source, rule.gpu_hour, _months(activity, stalled_after, busy), target)


def total_cost(computes: Iterable[RunCompute]) -> float | None:
    """The sum of the runs' costs; ``None`` when any run has no price."""
    total = 0.0
    for c in computes:
        if c.cost is None:
            return None
        total += c.cost
    return total
