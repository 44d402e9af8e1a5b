"""Cleanup plans: which runs a ``clean`` (or a retention policy) removes, and which it must not.

Pure decisions over ``RunSummary`` values; the storage adapters carry them out.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from tbhub.core.models import RunSummary

__all__ = ["CleanupLimits", "CleanupPlan", "PlanRefused", "RunFilter", "build_plan", "is_active"]

NS_PER_S = 1_000_000_000


class PlanRefused(ValueError):
    """A plan exceeds a safety limit; the message says which, in one line."""


@dataclass(frozen=True, slots=True)
class RunFilter:
    """Which runs a cleanup even considers: all given criteria must hold."""

    older_than_s: float | None = None
    dataset_glob: str | None = None
    match_glob: str | None = None  # matched against "dataset/run"

    def accepts(self, run: RunSummary, now_ns: int) -> bool:
        if self.older_than_s is not None and run.age_seconds(now_ns) < self.older_than_s:
            return False
        if self.dataset_glob is not None and not fnmatch.fnmatchcase(run.dataset, self.dataset_glob):
            return False
        return self.match_glob is None or fnmatch.fnmatchcase(f"{run.dataset}/{run.run}", self.match_glob)

    def apply(self, runs: Iterable[RunSummary], now_ns: int) -> list[RunSummary]:
        return [r for r in runs if self.accepts(r, now_ns)]


@dataclass(frozen=True, slots=True)
class CleanupLimits:
    max_delete: int | None = None
    max_bytes: int | None = None


def is_active(run: RunSummary, now_ns: int, active_minutes: float) -> bool:
    """Written to within the last ``active_minutes``: probably a job still running."""
    return run.age_seconds(now_ns) < active_minutes * 60


@dataclass(frozen=True, slots=True)
class CleanupPlan:
    """What a cleanup will remove (``runs``) and what it leaves although selected (``skipped``)."""

    runs: tuple[RunSummary, ...]
    skipped: tuple[tuple[RunSummary, str], ...] = field(default=())

    @property
    def total_bytes(self) -> int:
        return sum(r.size_bytes for r in self.runs)

    @property
    def endpoints(self) -> list[str]:
        return sorted({r.endpoint for r in self.runs})


def build_plan(
    selected: Sequence[RunSummary],
    *,
    now_ns: int,
    active_minutes: float = 10,
    force: bool = False,
    limits: CleanupLimits = CleanupLimits(),
) -> CleanupPlan:
    """The plan for ``selected`` runs: active ones are skipped unless ``force``.

    Raises ``PlanRefused`` when the plan exceeds ``limits``: a cleanup never deletes more than it
    was allowed to, not even partly.
    """
    runs: list[RunSummary] = []
    skipped: list[tuple[RunSummary, str]] = []
    for run in selected:
        if not force and is_active(run, now_ns, active_minutes):
            skipped.append((run, f"active: written to in the last {active_minutes:g} minutes"))
        else:
            runs.append(run)
    plan = CleanupPlan(tuple(runs), tuple(skipped))
    if limits.max_delete is not None and len(plan.runs) > limits.max_delete:
        raise PlanRefused(f"the plan deletes {len(plan.runs)} runs, more than the limit of {limits.max_delete}")
    if limits.max_bytes is not None and plan.total_bytes > limits.max_bytes:
        raise PlanRefused(
            f"the plan deletes {plan.total_bytes:,} bytes, more than the limit of {limits.max_bytes:,} bytes"
        )
    return plan
