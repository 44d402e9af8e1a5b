"""``best`` in compare: only among finite values; a diverged run (last value NaN/inf) is flagged, never best."""

from __future__ import annotations

import math

from tbhub.core.compare import CompareRow, SortSpec, best_index, sort_rows
from tbhub.core.models import RunSummary
from tbhub.core.scalars.summary import TagSummary

NAN = float("nan")


def summary(values: list[float]) -> TagSummary:
    finite = [(i, v) for i, v in enumerate(values) if math.isfinite(v)]
    lo = min(finite, key=lambda iv: iv[1]) if finite else None
    hi = max(finite, key=lambda iv: iv[1]) if finite else None
    bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
    return TagSummary(
        tag="loss",
        count=len(values),
        nan_count=len(bad),
        inf_count=sum(1 for v in values if math.isinf(v)),
        first_step=0,
        last_step=len(values) - 1,
        first_wall_time=0.0,
        last_wall_time=float(len(values)),
        last_value=values[-1],
        min_value=None if lo is None else lo[1],
        min_step=None if lo is None else lo[0],
        max_value=None if hi is None else hi[1],
        max_step=None if hi is None else hi[0],
        first_nonfinite_step=bad[0] if bad else None,
        tail=tuple(values[-10:]),
    )


def row(name: str, values: list[float]) -> CompareRow:
    return CompareRow(RunSummary("lora", "ds", name, f"ds/{name}"), {"loss": summary(values)})


def test_a_diverged_run_is_never_best_even_with_the_lowest_min() -> None:
    rows = [row("ok", [2.0, 0.5, 0.4]), row("diverged", [2.0, 0.1, NAN]), row("inf", [2.0, 0.05, math.inf])]
    for how in ("min", "max", "last"):
        spec = SortSpec("loss", how)
        ordered = sort_rows(rows, spec)
        best = best_index(ordered, spec)
        assert best is not None and ordered[best].run.run == "ok", how
        assert ordered[0].run.run == "ok", how
    assert [r.diverged("loss") for r in rows] == [False, True, True]
    assert not rows[0].diverged("missing")


def test_no_best_when_every_run_diverged() -> None:
    rows = [row("a", [1.0, NAN]), row("b", [0.5, math.inf])]
    spec = SortSpec("loss", "min")
    assert best_index(sort_rows(rows, spec), spec) is None
    assert [r.run.run for r in sort_rows(rows, spec)] == ["b", "a"]  # still ordered by their finite min
