"""Efficiency trends: per endpoint and dataset, how fast, how costly and how good runs are over time.

Each run gives its facts (``RunFacts``): steps per second of busy time, samples per second where the
writer logged them (the Trainer's ``train/train_samples_per_second``), GPU-hours and cost, the busy
time and cost until a target first held, and the best value of a chosen metric. A dataset's runs are
grouped by the ISO week (UTC) they started in, or, when the dataset has fewer than
``WEEKLY_MIN_RUNS`` runs or they all started in one week, one point per run. A point's figures are
the medians over its runs (the metric: the best of them), and a point lists the runs behind it.

Pure: built from ``RunCompute`` (``tbhub.core.cost``) and the scalar reader's ``TagSummary``s.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from tbhub.core.compare import matching_tags
from tbhub.core.cost import RunCompute
from tbhub.core.scalars import TagSummary

__all__ = [
    "MEASURES",
    "WEEKLY_MIN_RUNS",
    "MetricSpec",
    "RunFacts",
    "Trend",
    "TrendPoint",
    "build_trends",
    "iso_week",
    "parse_metric",
    "run_facts",
]

#: A dataset with fewer runs than this gets one point per run instead of one per week.
WEEKLY_MIN_RUNS = 8

#: The figures of a point, in the order tables show them.
MEASURES = ("steps_per_s", "samples_per_s", "gpu_hours", "cost", "target_hours", "target_cost", "metric")

#: Tags whose last value is the run's samples per second (the Trainer's final summary first).
SAMPLES_TAGS = ("train/train_samples_per_second", "train_samples_per_second", "samples_per_second")


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """``eval/loss`` (best = lowest), ``eval/accuracy:max`` (best = highest)."""

    tag: str
    how: str = "min"

    def __str__(self) -> str:
        return f"{self.tag}:{self.how}"


def parse_metric(text: str) -> MetricSpec:
    tag, sep, how = text.rpartition(":")
    if not sep:
        tag, how = text, "min"
    tag = tag.strip()
    if not tag or how not in ("min", "max"):
        raise ValueError(f"{text!r} is not a metric like eval/loss, eval/loss:min or eval/accuracy:max")
    return MetricSpec(tag, how)


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What one run contributes to its dataset's trend (``None``: not known for this run)."""

    endpoint: str
    dataset: str
    run: str
    relpath: str
    start: float | None
    busy_s: float
    gpu_hours: float
    cost: float | None
    steps_per_s: float | None
    samples_per_s: float | None
    target_hours: float | None
    target_cost: float | None
    metric: float | None
    training: bool = False


def run_facts(compute: RunCompute, tags: Mapping[str, TagSummary], metric: MetricSpec | None = None,
              *, training: bool = False) -> RunFacts:
    """The facts of one run from its compute and its (run-level) tag summaries. ``training``: the run is
    still being written, so its GPU-hours and cost are only what it has spent so far."""
    run = compute.run
    steps_per_s = None
    if run.first_step is not None and run.last_step is not None and compute.busy_s > 0:
        steps = run.last_step - run.first_step
        steps_per_s = steps / compute.busy_s if steps > 0 else None
    samples = None
    for name in SAMPLES_TAGS:
        found = matching_tags(tags, name)
        if found is not None and math.isfinite(tags[found].last_value) and tags[found].last_value > 0:
            samples = tags[found].last_value
            break
    value = None
    if metric is not None:
        found = matching_tags(tags, metric.tag)
        if found is not None:
            value = tags[found].min_value if metric.how == "min" else tags[found].max_value
    target_hours = None if compute.target_busy_s is None else compute.target_busy_s / 3600
    return RunFacts(run.endpoint, run.dataset, run.run, run.relpath, run.first_wall_time, compute.busy_s,
                    compute.gpu_hours, compute.cost, steps_per_s, samples, target_hours, compute.target_cost, value,
                    training)


@dataclass(frozen=True, slots=True)
class TrendPoint:
    """One point of a trend: a week (``label`` ``"2026-W49"``, ``at`` its Monday 00:00 UTC) or a run
    (``label`` the run, ``at`` its start); figures are medians over ``runs`` (``metric`` their best)
    among the runs that have them. GPU-hours and cost per run are over the runs that stopped: a run
    still training (``training`` of them) has spent only part of its total, and counting it would
    draw every dataset's newest point as a drop in cost."""

    label: str
    at: float
    runs: tuple[RunFacts, ...]
    steps_per_s: float | None
    samples_per_s: float | None
    gpu_hours: float | None
    cost: float | None
    target_hours: float | None
    target_cost: float | None
    metric: float | None
    training: int = 0

    def value(self, measure: str) -> float | None:
        return getattr(self, measure)  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class Trend:
    endpoint: str
    dataset: str
    by: str  # "week" or "run"
    points: tuple[TrendPoint, ...]


def iso_week(moment: float) -> tuple[str, float]:
    """``("2026-W49", Monday 00:00 UTC of that week)`` for the UTC moment ``moment``."""
    day = dt.datetime.fromtimestamp(moment, tz=dt.UTC)
    year, week, weekday = day.isocalendar()
    monday = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC) - dt.timedelta(days=weekday - 1)
    return f"{year}-W{week:02d}", monday.timestamp()


def _median(values: Iterable[float | None]) -> float | None:
    found = [v for v in values if v is not None]
    return statistics.median(found) if found else None


def _point(label: str, at: float, runs: Sequence[RunFacts], how: str) -> TrendPoint:
    metrics = [r.metric for r in runs if r.metric is not None and math.isfinite(r.metric)]
    best = (min(metrics) if how == "min" else max(metrics)) if metrics else None
    stopped = [r for r in runs if not r.training]
    costs = [r.cost for r in stopped]
    return TrendPoint(
        label, at, tuple(runs),
        _median(r.steps_per_s for r in runs),
        _median(r.samples_per_s for r in runs),
        _median(r.gpu_hours for r in stopped),
        None if any(c is None for c in costs) else _median(costs),
        _median(r.target_hours for r in runs),
        _median(r.target_cost for r in runs),
        best,
        len(runs) - len(stopped),
    )


def build_trends(facts: Iterable[RunFacts], metric: MetricSpec | None = None,
                 *, weekly_min_runs: int = WEEKLY_MIN_RUNS) -> list[Trend]:
    """One trend per (endpoint, dataset), sorted; points in time order. Runs without a start (no
    event with a wall time) are left out."""
    how = metric.how if metric is not None else "min"
    groups: dict[tuple[str, str], list[RunFacts]] = {}
    for f in facts:
        if f.start is not None:
            groups.setdefault((f.endpoint, f.dataset), []).append(f)
    out = []
    for (endpoint, dataset), runs in sorted(groups.items()):
        runs.sort(key=lambda r: (r.start or 0.0, r.relpath))
        weeks: dict[tuple[str, float], list[RunFacts]] = {}
        for r in runs:
            weeks.setdefault(iso_week(r.start or 0.0), []).append(r)
        if len(runs) >= weekly_min_runs and len(weeks) > 1:
            ordered = sorted(weeks.items(), key=lambda w: w[0][1])
            points = [_point(label, at, group, how) for (label, at), group in ordered]
            out.append(Trend(endpoint, dataset, "week", tuple(points)))
        else:
            out.append(Trend(endpoint, dataset, "run", tuple(_point(r.run, r.start or 0.0, [r], how) for r in runs)))
    return out
