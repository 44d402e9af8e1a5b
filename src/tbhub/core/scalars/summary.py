"""Per-tag scalar summaries: what they hold, and how points and summaries fold into them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["TAIL_SIZE", "ScalarFileState", "TagSummary", "combine", "summarize_series"]

TAIL_SIZE = 10
"""How many of the last values a ``TagSummary`` keeps (``mean_last`` is their finite mean)."""


@dataclass(frozen=True, slots=True)
class TagSummary:
    """What the scalars of one tag look like, from ``count`` points.

    Invariants: ``count >= 1``; ``nan_count`` counts the non-finite values (NaN *and* ±Inf),
    ``inf_count <= nan_count`` the infinite ones among them; ``min_value``/``max_value`` (and their
    steps) are over the finite values only, ``None`` when there is none, and on ties name the
    earliest point; ``first_*``/``last_*`` are the first and last points (file order within a
    file); ``last_value`` may be NaN; ``tail`` holds the last ``min(count, K)`` values, non-finite
    ones included; ``first_nonfinite_step`` is the step of the first non-finite value (where a
    divergence started), ``None`` if every value is finite.
    """

    tag: str
    count: int
    nan_count: int
    inf_count: int
    first_step: int
    last_step: int
    first_wall_time: float
    last_wall_time: float
    last_value: float
    min_value: float | None
    min_step: int | None
    max_value: float | None
    max_step: int | None
    first_nonfinite_step: int | None
    tail: tuple[float, ...]

    @property
    def finite_count(self) -> int:
        return self.count - self.nan_count

    @property
    def mean_last(self) -> float | None:
        """Mean of the finite values among the last K (``tail``), ``None`` if none is finite."""
        finite = [v for v in self.tail if math.isfinite(v)]
        return math.fsum(finite) / len(finite) if finite else None


@dataclass(frozen=True, slots=True)
class ScalarFileState:
    """The scalar summaries of one event file, valid for exactly (inode, size, mtime_ns).

    ``offset`` is the resume point (just past the last complete, valid record) and ``records`` the
    number of records before it. ``plugins`` (tag → plugin name) is the file's metadata memory: TF2
    writers put the plugin name on a tag's first value only. ``tags`` holds one summary per scalar
    tag, keyed by the tag as written in the file. ``truncated``: the file ends in a partial record;
    ``corrupt``: reading stopped at a bad CRC. Treat ``plugins`` and ``tags`` as read-only.
    """

    relpath: str
    inode: int
    size: int
    mtime_ns: int
    offset: int
    records: int = 0
    plugins: dict[str, str] = field(default_factory=dict)
    tags: dict[str, TagSummary] = field(default_factory=dict)
    truncated: bool = False
    corrupt: bool = False
    #: When the file was being written (``tbhub.core.scalars.activity``): sorted segments of its event
    #: wall times and the gap they were joined at; ``activity_gap == 0``: not tracked (a state stored
    #: before tbhub kept activity), the file is read again from the start.
    activity: tuple[tuple[float, float], ...] = ()
    activity_gap: float = 0.0
    #: The latest text of each text-summary tag (``tbhub.core.scalars.texts``); ``None``: a state stored
    #: before texts were kept, the file is read again from the start.
    texts: dict[str, str] | None = None


# --- folding points into summaries ------------------------------------------------------------------


def summarize_series(tag: str, steps: Sequence[int], wall_times: Sequence[float], values: Sequence[float],
                     tail_size: int) -> TagSummary:
    """The summary of one tag's points (non-empty columns of equal length, in order)."""
    total = sum(values)
    if total - total == 0.0:
        # Exact test, no per-value Python work: any NaN or ±Inf makes the sum NaN or ±Inf. (A sum
        # that overflows to Inf only sends us down the slow path below.)
        finite = values
        nan_count = inf_count = 0
        first_nonfinite_step = None
    else:
        isfinite = math.isfinite
        finite = [v for v in values if isfinite(v)]
        nan_count = len(values) - len(finite)
        inf_count = sum(1 for v in values if v in (math.inf, -math.inf))
        first_nonfinite_step = next((s for s, v in zip(steps, values, strict=True) if not isfinite(v)), None)
    min_value = max_value = None
    min_step = max_step = None
    if finite:
        # min()/max() return the first of equal extremes, and index() finds that same position;
        # NaN is never == to anything, so it cannot be found instead.
        min_value, max_value = min(finite), max(finite)
        min_step = steps[values.index(min_value)]
        max_step = steps[values.index(max_value)]
    return TagSummary(
        tag=tag,
        count=len(values),
        nan_count=nan_count,
        inf_count=inf_count,
        first_step=steps[0],
        last_step=steps[-1],
        first_wall_time=wall_times[0],
        last_wall_time=wall_times[-1],
        last_value=values[-1],
        min_value=min_value,
        min_step=min_step,
        max_value=max_value,
        max_step=max_step,
        first_nonfinite_step=first_nonfinite_step,
        tail=tuple(values[-tail_size:]) if tail_size > 0 else (),
    )


def combine(a: TagSummary, b: TagSummary, tail_size: int, *, tag: str | None = None) -> TagSummary:
    """``a`` followed by ``b``: first point from ``a``, last from ``b``, ties of min/max go to ``a``."""
    if a.min_value is None or (b.min_value is not None and b.min_value < a.min_value):
        min_value, min_step = b.min_value, b.min_step
    else:
        min_value, min_step = a.min_value, a.min_step
    if a.max_value is None or (b.max_value is not None and b.max_value > a.max_value):
        max_value, max_step = b.max_value, b.max_step
    else:
        max_value, max_step = a.max_value, a.max_step
    return TagSummary(
        tag=a.tag if tag is None else tag,
        count=a.count + b.count,
        nan_count=a.nan_count + b.nan_count,
        inf_count=a.inf_count + b.inf_count,
        first_step=a.first_step,
        last_step=b.last_step,
        first_wall_time=a.first_wall_time,
        last_wall_time=b.last_wall_time,
        last_value=b.last_value,
        min_value=min_value,
        min_step=min_step,
        max_value=max_value,
        max_step=max_step,
        first_nonfinite_step=a.first_nonfinite_step if a.first_nonfinite_step is not None
        else b.first_nonfinite_step,
        tail=(a.tail + b.tail)[-tail_size:] if tail_size > 0 else (),
    )
