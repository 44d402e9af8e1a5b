"""Storage usage per endpoint and dataset, its growth over time, and what it costs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tbhub.core.models import RunSummary

__all__ = ["DatasetUsage", "Snapshot", "growth", "usage_by_dataset"]

GB = 1_000_000_000


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

    def monthly_cost(self, per_gb_month: float) -> float:
        return self.size_bytes / GB * per_gb_month


def usage_by_dataset(runs: Iterable[RunSummary]) -> list[DatasetUsage]:
    """Bytes, runs and events per (endpoint, dataset), sorted by endpoint then dataset."""
    totals: dict[tuple[str, str], list[int]] = {}
    for run in runs:
        row = totals.setdefault((run.endpoint, run.dataset), [0, 0, 0])
        row[0] += run.size_bytes
        row[1] += 1
        row[2] += run.event_count
    return [DatasetUsage(e, d, size, n, events) for (e, d), (size, n, events) in sorted(totals.items())]


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
