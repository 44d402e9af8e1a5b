"""Retention policies: which runs a policy removes, which it keeps and why, and when it runs next.

Per endpoint a default rule and rules per dataset glob; the most specific rule that matches a
dataset wins (an exact name beats any glob; among globs, the one with more literal characters), and
what it leaves unset comes from the endpoint's default. Within a dataset the ``keep_last`` newest
runs are always kept; of the rest, runs older than ``keep_days`` go. Pinned and active runs are never
removed by a policy. Pure decisions; ``tbhub.app.cleanup`` carries them out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from tbhub.core.cleanup import is_active
from tbhub.core.dataset_globs import most_specific
from tbhub.core.models import RunSummary

__all__ = [
    "RetentionDecision",
    "RetentionPlan",
    "RetentionPolicy",
    "RetentionRule",
    "Schedule",
    "plan_retention",
]


@dataclass(frozen=True, slots=True)
class RetentionRule:
    keep_days: float | None = None
    keep_last: int | None = None
    archive_to: str | None = None

    def under(self, default: RetentionRule) -> RetentionRule:
        """This rule with what it leaves unset taken from ``default``."""
        return RetentionRule(
            self.keep_days if self.keep_days is not None else default.keep_days,
            self.keep_last if self.keep_last is not None else default.keep_last,
            self.archive_to if self.archive_to is not None else default.archive_to,
        )


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    endpoint: str
    default: RetentionRule = RetentionRule()
    datasets: tuple[tuple[str, RetentionRule], ...] = ()
    max_delete: int | None = None
    max_bytes: int | None = None

    def rule_for(self, dataset: str) -> tuple[str, RetentionRule]:
        """(name of the rule, the effective rule) for ``dataset``."""
        found = most_specific(dataset, self.datasets)
        if found is None:
            return self.endpoint, self.default
        glob, rule = found
        return f'{self.endpoint}.datasets."{glob}"', rule.under(self.default)


@dataclass(frozen=True, slots=True)
class RetentionDecision:
    run: RunSummary
    rule: str
    reason: str
    archive_to: str | None = None


@dataclass(frozen=True, slots=True)
class RetentionPlan:
    """``delete``: runs the policies remove; ``keep``: every other run with the reason it stays.

    ``refused`` is set (and nothing may be deleted) when an endpoint's plan exceeds its limits.
    """

    delete: tuple[RetentionDecision, ...] = ()
    keep: tuple[RetentionDecision, ...] = ()
    refused: tuple[str, ...] = field(default=())

    @property
    def bytes_freed(self) -> int:
        return sum(d.run.size_bytes for d in self.delete)


def _days(age_s: float) -> str:
    return f"{age_s / 86400:.1f} days"


def plan_retention(
    runs: Iterable[RunSummary],
    policies: Mapping[str, RetentionPolicy],
    *,
    pinned: set[tuple[str, str]],
    now_ns: int,
    active_minutes: float = 10,
) -> RetentionPlan:
    """Decide every run of the endpoints that have a policy; runs of other endpoints are ignored."""
    by_dataset: dict[tuple[str, str], list[RunSummary]] = {}
    for run in runs:
        if run.endpoint in policies:
            by_dataset.setdefault((run.endpoint, run.dataset), []).append(run)
    delete: list[RetentionDecision] = []
    keep: list[RetentionDecision] = []
    for (endpoint, dataset), group in sorted(by_dataset.items()):
        name, rule = policies[endpoint].rule_for(dataset)
        newest_first = sorted(group, key=lambda r: (-r.last_modified_ns, r.relpath))
        for rank, run in enumerate(newest_first):
            age = run.age_seconds(now_ns)
            if (endpoint, run.relpath) in pinned:
                keep.append(RetentionDecision(run, name, "pinned"))
            elif is_active(run, now_ns, active_minutes):
                keep.append(RetentionDecision(run, name, "active"))
            elif rule.keep_last is not None and rank < rule.keep_last:
                keep.append(RetentionDecision(run, name, f"one of the {rule.keep_last} newest of {dataset or '·'}"))
            elif rule.keep_days is None:
                keep.append(RetentionDecision(run, name, "no keep_days"))
            elif age <= rule.keep_days * 86400:
                keep.append(RetentionDecision(run, name, f"younger than {rule.keep_days:g} days"))
            else:
                reason = f"{_days(age)} old, keep_days = {rule.keep_days:g}"
                delete.append(RetentionDecision(run, name, reason, rule.archive_to))
    refused = []
    for endpoint, policy in sorted(policies.items()):
        mine = [d for d in delete if d.run.endpoint == endpoint]
        size = sum(d.run.size_bytes for d in mine)
        if policy.max_delete is not None and len(mine) > policy.max_delete:
            refused.append(f"{endpoint}: would delete {len(mine)} runs, more than max_delete = {policy.max_delete}")
        if policy.max_bytes is not None and size > policy.max_bytes:
            refused.append(f"{endpoint}: would delete {size:,} bytes, more than max_bytes = {policy.max_bytes:,}")
    return RetentionPlan(tuple(delete), tuple(keep), tuple(refused))


@dataclass(frozen=True, slots=True)
class Schedule:
    """When ``serve`` applies the policies: daily at ``at`` (HH:MM, local time) or ``every`` seconds."""

    daily_at: dt.time | None = None
    every_s: float | None = None

    def next_after(self, last: dt.datetime | None, now: dt.datetime) -> dt.datetime:
        """The next application after ``last``; timezone-aware datetimes.

        Never applied: an interval schedule is due at once, a daily one at its next slot after
        ``now``. A slot missed while the server was down is due at once.
        """
        if self.every_s is not None:
            if last is None:
                return now
            return last + dt.timedelta(seconds=self.every_s)
        if self.daily_at is None:
            raise ValueError("a schedule needs a daily time or an interval")
        base = last or now
        slot = base.replace(hour=self.daily_at.hour, minute=self.daily_at.minute, second=0, microsecond=0)
        if slot <= base:
            slot += dt.timedelta(days=1)
        return slot


