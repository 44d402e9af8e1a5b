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
from tbhub.core.scalars import TagSummary

__all__ = [
    "COLUMNS",
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


#: Columns a compare table sorts by besides a tag's figures.
COLUMNS = ("run", "duration", "steps/s")


@dataclass(frozen=True, slots=True)
class SortSpec:
    """A tag's ``min``/``max``/``last`` (``tag:how``), or a column of ``COLUMNS`` (``how`` is
    ``"column"``), ascending or descending (``tag:how:desc``). The natural order of a tag figure is
    best first: ascending for ``min`` and ``last``, descending for ``max``."""

    tag: str
    how: str  # "min", "max", "last" or "column"
    descending: bool = False

    @property
    def column(self) -> bool:
        return self.how == "column"

    def __str__(self) -> str:
        natural = self.how == "max"
        base = self.tag if self.column else f"{self.tag}:{self.how}"
        if self.column:
            return base + (":desc" if self.descending else "")
        return base if self.descending == natural else base + (":desc" if self.descending else ":asc")

    def toggled(self) -> SortSpec:
        return SortSpec(self.tag, self.how, not self.descending)


def parse_target(text: str) -> Target:
    match = _TARGET.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a target like eval/loss<0.5 or accuracy>=0.9")
    return Target(match["tag"], match["op"], float(match["value"]))


def parse_sort(text: str) -> SortSpec:
    """``eval/loss:min``, ``eval/accuracy:max``, ``loss:last``, each optionally ``:asc`` or ``:desc``;
    or ``run``, ``duration``, ``steps/s`` (optionally ``:desc``)."""
    base, sep, direction = text.rpartition(":")
    if sep and direction in ("asc", "desc"):
        text, descending = base, direction == "desc"
    else:
        descending = None
    if text in COLUMNS:
        return SortSpec(text, "column", bool(descending))
    tag, sep, how = text.rpartition(":")
    if not sep or how not in ("min", "max", "last") or not tag:
        raise ValueError(
            f"{text!r} is not a sort like eval/loss:min, eval/accuracy:max, loss:last (:asc or :desc), "
            "run, duration or steps/s"
        )
    return SortSpec(tag, how, how == "max" if descending is None else descending)


@dataclass(frozen=True, slots=True)
class CompareRow:
    run: RunSummary
    tags: Mapping[str, TagSummary]
    target: TargetHit | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        return self.run.duration_s

    @property
    def steps_per_s(self) -> float | None:
        return self.run.steps_per_s

    def value(self, spec: SortSpec) -> float | None:
        if spec.column:
            return {"duration": self.duration_s, "steps/s": self.steps_per_s}.get(spec.tag)
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
    hits: Mapping[str, tuple[float, int]] | None = None,
) -> list[CompareRow]:
    """One row per run with the ``wanted`` tags (resolved per run; missing ones are left out).

    ``hits``: where a target first held, (wall time, step) by run relpath (``app.targets`` reads them).
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
        found = None if hits is None else hits.get(run.relpath)
        if found is not None:
            wall, step = found
            start = run.first_wall_time
            hit = TargetHit(step, wall, None if start is None else wall - start)
        rows.append(CompareRow(run, chosen, hit))
    return rows


def sort_rows(rows: list[CompareRow], spec: SortSpec | None) -> list[CompareRow]:
    """Best first by ``spec``; diverged rows (last value NaN/inf) after the finite ones, rows without
    the value last. Without a spec: by endpoint, dataset, run."""
    if spec is None or (spec.column and spec.tag == "run"):
        ordered = sorted(rows, key=lambda r: (r.run.endpoint, r.run.dataset, r.run.run))
        return ordered[::-1] if spec is not None and spec.descending else ordered
    sign = -1.0 if spec.descending else 1.0

    def key(row: CompareRow) -> tuple[int, float, str]:
        value = row.value(spec)
        rank = 2 if value is None else 1 if not spec.column and row.diverged(spec.tag) else 0
        return (rank, 0.0 if value is None else sign * value, row.run.relpath)

    return sorted(rows, key=key)


def best_index(rows: Sequence[CompareRow], spec: SortSpec | None) -> int | None:
    """The index of the best row by ``spec`` (None without a spec or without values).

    Only finite values count, and a diverged run (its last value of the tag is NaN or infinite) is
    never the best, even when its min or max before diverging would be.
    """
    if spec is None or spec.column:
        return None
    scored = [(i, r.value(spec)) for i, r in enumerate(rows) if not r.diverged(spec.tag)]
    valid = [(i, v) for i, v in scored if v is not None]
    if not valid:
        return None
    pick = max if spec.how == "max" else min
    return pick(valid, key=lambda iv: iv[1])[0]
