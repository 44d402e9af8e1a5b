"""Compare runs: one row per run with its figures for chosen tags, the best run, efficiency.

Pure: rows are built from the scanner's ``RunSummary`` and the scalar reader's ``TagSummary``s.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tbhub.core.models import RunSummary
from tbhub.core.scalars import ScalarPoint, TagSummary

__all__ = [
    "CompareRow",
    "SortSpec",
    "Target",
    "TargetHit",
    "best_index",
    "build_rows",
    "matching_tags",
    "parse_sort",
    "parse_target",
    "sort_rows",
]

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
_TARGET = re.compile(r"^\s*(?P<tag>[^<>=\s][^<>=]*?)\s*(?P<op><=|>=|<|>)\s*(?P<value>[-+0-9.eE]+|nan|inf)\s*$")


@dataclass(frozen=True, slots=True)
class Target:
    """``eval/loss<0.5``: the first point of ``tag`` for which ``value op threshold`` holds."""

    tag: str
    op: str
    threshold: float

    def met(self, value: float) -> bool:
        return math.isfinite(value) and _OPS[self.op](value, self.threshold)

    def __str__(self) -> str:
        return f"{self.tag}{self.op}{self.threshold:g}"


@dataclass(frozen=True, slots=True)
class TargetHit:
    step: int
    wall_time: float
    seconds: float | None  # since the run's first event


@dataclass(frozen=True, slots=True)
class SortSpec:
    tag: str
    how: str  # "min", "max" or "last"


def parse_target(text: str) -> Target:
    match = _TARGET.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a target like eval/loss<0.5 or accuracy>=0.9")
    return Target(match["tag"], match["op"], float(match["value"]))


def parse_sort(text: str) -> SortSpec:
    tag, sep, how = text.rpartition(":")
    if not sep or how not in ("min", "max", "last") or not tag:
        raise ValueError(f"{text!r} is not a sort like eval/loss:min, eval/accuracy:max or loss:last")
    return SortSpec(tag, how)


@dataclass(frozen=True, slots=True)
class CompareRow:
    run: RunSummary
    tags: Mapping[str, TagSummary]
    target: TargetHit | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        first, last = self.run.first_wall_time, self.run.last_wall_time
        return None if first is None or last is None else max(0.0, last - first)

    @property
    def steps_per_s(self) -> float | None:
        duration = self.duration_s
        first, last = self.run.first_step, self.run.last_step
        if not duration or first is None or last is None:
            return None
        return (last - first) / duration

    def value(self, spec: SortSpec) -> float | None:
        summary = self.tags.get(spec.tag)
        if summary is None:
            return None
        value = {"min": summary.min_value, "max": summary.max_value, "last": summary.last_value}[spec.how]
        return value if value is not None and math.isfinite(value) else None

    def diverged(self, tag: str) -> bool:
        """Whether ``tag``'s last value is NaN or infinite: the run diverged, it is never the best."""
        summary = self.tags.get(tag)
        return summary is not None and not math.isfinite(summary.last_value)


def matching_tags(tags: Mapping[str, TagSummary], wanted: str) -> str | None:
    """``wanted`` itself, or the single run tag that ends with ``/wanted`` (``loss`` finds ``train/loss``)."""
    if wanted in tags:
        return wanted
    found = [t for t in tags if t.endswith("/" + wanted)]
    return found[0] if len(found) == 1 else None


def build_rows(
    runs: Iterable[RunSummary],
    tags: Mapping[str, Mapping[str, TagSummary]],
    wanted: Sequence[str],
    *,
    target: Target | None = None,
    target_points: Callable[[RunSummary, str], Iterable[ScalarPoint]] | None = None,
) -> list[CompareRow]:
    """One row per run with the ``wanted`` tags (resolved per run; missing ones are left out).

    ``target_points(run, tag)`` yields the run's points of a tag in order; it is called only with a
    ``target``, to find when the target was first met.
    """
    rows = []
    for run in runs:
        run_tags = tags.get(run.relpath, {})
        chosen = {}
        for name in wanted:
            real = matching_tags(run_tags, name)
            if real is not None:
                chosen[name] = run_tags[real]
        hit = None
        if target is not None and target_points is not None:
            real = matching_tags(run_tags, target.tag)
            if real is not None:
                for _tag, step, wall, value in target_points(run, real):
                    if target.met(value):
                        start = run.first_wall_time
                        hit = TargetHit(step, wall, None if start is None else wall - start)
                        break
        rows.append(CompareRow(run, chosen, hit))
    return rows


def sort_rows(rows: list[CompareRow], spec: SortSpec | None) -> list[CompareRow]:
    """Best first by ``spec``; diverged rows (last value NaN/inf) after the finite ones, rows without
    the value last. Without a spec: by endpoint, dataset, run."""
    if spec is None:
        return sorted(rows, key=lambda r: (r.run.endpoint, r.run.dataset, r.run.run))
    sign = -1.0 if spec.how == "max" else 1.0

    def key(row: CompareRow) -> tuple[int, float, str]:
        value = row.value(spec)
        rank = 2 if value is None else 1 if row.diverged(spec.tag) else 0
        return (rank, 0.0 if value is None else sign * value, row.run.relpath)

    return sorted(rows, key=key)


def best_index(rows: Sequence[CompareRow], spec: SortSpec | None) -> int | None:
    """The index of the best row by ``spec`` (None without a spec or without values).

    Only finite values count, and a diverged run (its last value of the tag is NaN or infinite) is
    never the best, even when its min or max before diverging would be.
    """
    if spec is None:
        return None
    scored = [(i, r.value(spec)) for i, r in enumerate(rows) if not r.diverged(spec.tag)]
    valid = [(i, v) for i, v in scored if v is not None]
    if not valid:
        return None
    pick = max if spec.how == "max" else min
    return pick(valid, key=lambda iv: iv[1])[0]
