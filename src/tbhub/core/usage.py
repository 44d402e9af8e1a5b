"""Storage usage per endpoint and dataset, its growth over time, and what it costs; and the compute
(GPU-hours and their cost, from ``tbhub.core.cost``) of the same datasets."""

from __future__ import annotations

import statistics
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from tbhub.core.cost import RunCompute, month_key, previous_month
from tbhub.core.models import RunSummary

__all__ = [
    "STORAGE_PRICE_NOT_SET",
    "ComputeUsage",
    "DatasetUsage",
    "Snapshot",
    "compute_by_dataset",
    "growth",
    "history_from_runs",
    "storage_cost",
    "usage_by_dataset",
]

GB = 1_000_000_000

#: What a storage cost says when ``[cost] storage_per_gb_month`` is 0 (its default): not a 0.00 that reads as free.
STORAGE_PRICE_NOT_SET = "price not set: set [cost] storage_per_gb_month"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Usage of one dataset at one moment (what the server records daily)."""

    at: float
    endpoint: str
    dataset: str
    size_bytes: int
    runs: int
    events: int


@dataclass(frozen=True, slots=True)
class DatasetUsage:
    endpoint: str
    dataset: str
    size_bytes: int
    runs: int
    events: int
    growth_7d: int | None = None
    growth_30d: int | None = None

    def monthly_cost(self, per_gb_month: float) -> float | None:
        return storage_cost(self.size_bytes, per_gb_month)


def storage_cost(size_bytes: int, per_gb_month: float) -> float | None:
    """A month's storage of ``size_bytes`` at ``per_gb_month``; ``None`` when no price is set (0, the default)."""
    return size_bytes / GB * per_gb_month if per_gb_month > 0 else None


def usage_by_dataset(runs: Iterable[RunSummary]) -> list[DatasetUsage]:
    """Bytes, runs and events per (endpoint, dataset), sorted by endpoint then dataset."""
    totals: dict[tuple[str, str], list[int]] = {}
    for run in runs:
        row = totals.setdefault((run.endpoint, run.dataset), [0, 0, 0])
        row[0] += run.size_bytes
        row[1] += 1
        row[2] += run.event_count
    return [DatasetUsage(e, d, size, n, events) for (e, d), (size, n, events) in sorted(totals.items())]


def history_from_runs(runs: Sequence[RunSummary], now: float, days: int) -> list[Snapshot]:
    """Daily snapshots for the ``days`` days before ``now`` as ``runs`` would have given them, each run
    counted from the day it started (its first record) at its present size: how ``tbhub demo`` gives
    its backdated runs a usage history. An estimate for real logs (a run grows while it trains, and
    runs deleted since are missing), so the hub records its own snapshots instead."""
    out: list[Snapshot] = []
    for day in range(days, 0, -1):
        moment = now - day * 86400
        started = [r for r in runs if r.first_wall_time is not None and r.first_wall_time <= moment]
        out.extend(Snapshot(moment, u.endpoint, u.dataset, u.size_bytes, u.runs, u.events)
                   for u in usage_by_dataset(started))
    return out


def _size_at(history: Sequence[Snapshot], endpoint: str, dataset: str, moment: float) -> int | None:
    """The dataset's size in the newest snapshot taken at or before ``moment``.

    A dataset absent from that snapshot round (but the round exists) had 0 bytes then; with no
    snapshot round that old at all, growth is unknown (``None``).
    """
    rounds = [s.at for s in history if s.at <= moment]
    if not rounds:
        return None
    newest = max(rounds)
    for s in history:
        if s.at == newest and s.endpoint == endpoint and s.dataset == dataset:
            return s.size_bytes
    return 0


def growth(current: Sequence[DatasetUsage], history: Sequence[Snapshot], now: float) -> list[DatasetUsage]:
    """``current`` with growth over the last 7 and 30 days, from snapshots ``history``."""
    out = []
    for u in current:
        week = _size_at(history, u.endpoint, u.dataset, now - 7 * 86400)
        month = _size_at(history, u.endpoint, u.dataset, now - 30 * 86400)
        out.append(
            DatasetUsage(
                u.endpoint,
                u.dataset,
                u.size_bytes,
                u.runs,
                u.events,
                None if week is None else u.size_bytes - week,
                None if month is None else u.size_bytes - month,
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class ComputeUsage:
    """The compute of one dataset's runs. Costs are ``None`` when a run of it has no price
    (``gpu_hour`` unset): never a 0 that reads as free. ``this_month``/``last_month`` are UTC months
    (``"2026-12"``); ``run_*`` are over the dataset's runs; ``target_*`` over the runs that reached the
    target (``target_runs`` of them), ``None`` when none did or no target was asked. ``exact``: every
    run's busy time is exact (``tbhub.core.cost``)."""

    endpoint: str
    dataset: str
    runs: int
    this_month: str
    last_month: str
    gpu_hours: float
    cost: float | None
    gpu_hours_this_month: float
    cost_this_month: float | None
    gpu_hours_last_month: float
    cost_last_month: float | None
    run_gpu_hours_median: float | None
    run_gpu_hours_max: float | None
    run_cost_median: float | None
    run_cost_max: float | None
    target_runs: int = 0
    target_gpu_hours_median: float | None = None
    target_cost_median: float | None = None
    exact: bool = True

    @property
    def priced(self) -> bool:
        return self.cost is not None or self.runs == 0


def _priced(computes: Sequence[RunCompute], hours: Sequence[float]) -> float | None:
    """The cost of ``hours`` (one figure per run of ``computes``): ``None`` if any run has no price."""
    if any(c.gpu_hour is None for c in computes):
        return None
    return sum(h * (c.gpu_hour or 0.0) for c, h in zip(computes, hours, strict=True))


def compute_by_dataset(computes: Iterable[RunCompute], now: float,
                       training: Collection[tuple[str, str]] = frozenset()) -> list[ComputeUsage]:
    """GPU-hours and cost per (endpoint, dataset), sorted like ``usage_by_dataset``: in all, this UTC
    month and last, per run (median, max) and to a target. A dataset's cost is the sum of its runs'.
    ``training``: the (endpoint, relpath) of runs still training: their spend counts in the totals (it
    was spent) but not per run, where a run's figure is its whole cost."""
    groups: dict[tuple[str, str], list[RunCompute]] = {}
    for c in computes:
        groups.setdefault((c.run.endpoint, c.run.dataset), []).append(c)
    this, last = month_key(now), month_key(previous_month(now))
    out = []
    for (endpoint, dataset), group in sorted(groups.items()):
        hours = [c.gpu_hours for c in group]
        costs = [c.cost for c in group]
        priced = all(x is not None for x in costs)
        stopped = [c for c in group if (c.run.endpoint, c.run.relpath) not in training]
        per_run = [c.gpu_hours for c in stopped]
        known = [c.cost for c in stopped if c.cost is not None]
        reached = [c for c in group if c.target_busy_s is not None]
        target_hours = [c.target_gpu_hours for c in reached if c.target_gpu_hours is not None]
        target_costs = [c.target_cost for c in reached if c.target_cost is not None]
        this_hours = [c.month_gpu_hours(this) for c in group]
        last_hours = [c.month_gpu_hours(last) for c in group]
        out.append(ComputeUsage(
            endpoint, dataset, len(group), this, last,
            sum(hours), _priced(group, hours),
            sum(this_hours), _priced(group, this_hours),
            sum(last_hours), _priced(group, last_hours),
            statistics.median(per_run) if per_run else None, max(per_run) if per_run else None,
            statistics.median(known) if priced and known else None, max(known) if priced and known else None,
            len(reached),
            statistics.median(target_hours) if target_hours else None,
            statistics.median(target_costs) if priced and target_costs else None,
            all(c.exact for c in group),
        ))
    return out
