"""When an event file was being written: its *activity segments*, kept incrementally.

A run's busy time (what it is billed for, ``tbhub.core.cost``) is the sum of the gaps between its
consecutive events, across all its event files, that are shorter than the status rule's
``stalled_after``. Keeping every wall time would make the state as large as the file, so each file
keeps its *segments* instead: the maximal intervals of its sorted wall times whose internal gaps are
shorter than the file's ``gap`` (``ACTIVITY_GAP``, 60 s). ``merge_segments`` joins the segments of a
run's files with the rule's threshold.

Why that is exact for ``threshold >= gap``: inside a file's segment every gap between the file's
events is shorter than ``gap``, and another file's events there only split those gaps further; so in
the merged timeline every gap inside the union of the segments is shorter than ``threshold``, and the
gaps between neighbouring union intervals are exactly the merged timeline's remaining gaps (their
ends are events, and no event lies between them). Summing the union's lengths and its gaps shorter
than ``threshold`` is therefore the sum over the merged timeline. For ``threshold < gap`` the result
may count pauses between ``threshold`` and ``gap`` long (``merge_segments`` reports ``exact=False``).

A file with a very irregular rhythm (one event every 90 s for a week) would keep one segment per
event: past ``MAX_SEGMENTS`` the file's ``gap`` climbs ``GAP_LADDER`` (segments closer than the new
gap are joined), which keeps the state small and stays exact for thresholds at least that large.

The wall time of an event is read from its serialized bytes: field 1 (``wall_time``, a fixed64
double), which every writer serializes first (protobuf writes fields in field-number order). Events
without a wall time (or a non-positive or non-finite one) are left out. In the common case
(every event starts with its wall time) a batch's times are cut out in C (``map``/``itemgetter``/
``array``), and segments are found by jumping ``gap`` at a time with ``bisect``: about 6 % of a
first pass's parse time.
"""

from __future__ import annotations

import math
import struct
import sys
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from operator import itemgetter

from tbhub.core.tfrecord import read_varint, skip_field

__all__ = [
    "ACTIVITY_GAP",
    "GAP_LADDER",
    "MAX_SEGMENTS",
    "Segment",
    "add_times",
    "event_wall_times",
    "merge_segments",
]

Segment = tuple[float, float]
"""``(first, last)`` wall time of a stretch of activity (equal for a lone event)."""

#: Seconds: a file's events closer than this belong to one segment. The smallest ``stalled_after`` for
#: which busy times are exact (a status rule's ``stalled_after`` is minutes in practice).
ACTIVITY_GAP = 60.0
#: Segments a file keeps at most before its ``gap`` climbs the ladder.
MAX_SEGMENTS = 256
#: The gaps a file may use, smallest first (seconds).
GAP_LADDER = (60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0, math.inf)

_FIRST = itemgetter(0)
_WALL = itemgetter(slice(1, 9))
_DOUBLE = struct.Struct("<d")


def _wall_time(payload: bytes) -> float | None:
    """Field 1 of an ``Event`` (wire type 1) wherever it is among the top-level fields; ``None``
    without it or when the bytes do not parse."""
    i, n = 0, len(payload)
    try:
        while i < n:
            key, i = read_varint(payload, i)
            if key == 0x09:
                return float(_DOUBLE.unpack_from(payload, i)[0])
            i = skip_field(payload, i, key & 7)
    except (IndexError, ValueError, struct.error):
        return None
    return None


def event_wall_times(batch: Sequence[bytes]) -> list[float]:
    """The wall times of the events in ``batch``, sorted, only the positive finite ones."""
    if not batch:
        return []
    try:
        firsts = bytes(map(_FIRST, batch))
    except IndexError:  # an empty payload (an empty Event) among them
        firsts = b""
    if firsts.count(0x09) == len(batch):
        times = array("d", b"".join(map(_WALL, batch)))
        if sys.byteorder == "big":
            times.byteswap()
        found: list[float] = sorted(times)
    else:
        found = sorted(t for t in map(_wall_time, batch) if t is not None)
    total = sum(found)  # NaN or inf anywhere makes it non-finite (wall times cannot overflow it)
    if not math.isfinite(total) or (found and found[0] <= 0):
        found = [t for t in found if math.isfinite(t) and t > 0]
    return found


def _segments_of(times: Sequence[float], gap: float) -> list[Segment]:
    """The segments of sorted ``times`` at ``gap``.

    Jumps a ``gap`` at a time with ``bisect`` instead of looking at every difference: the events
    within ``gap`` of ``times[i]`` all belong to its segment, so a steady writer costs one C bisect
    per ``gap`` of wall time, not Python work per event."""
    if not times:
        return []
    n = len(times)
    out: list[Segment] = []
    start = times[0]
    i = 0
    while True:
        j = bisect_left(times, times[i] + gap, i + 1) - 1  # the last event within gap of times[i]
        if j + 1 >= n:
            out.append((start, times[-1]))
            return out
        if j == i:  # the next event is gap or more later: a break
            out.append((start, times[i]))
            start = times[i + 1]
            i += 1
        else:
            i = j


def _join(segments: Iterable[Segment], gap: float) -> list[Segment]:
    """Sorted, overlapping-or-closer-than-``gap`` segments joined."""
    out: list[Segment] = []
    for start, end in sorted(segments):
        if out and start - out[-1][1] < gap:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def add_times(segments: Sequence[Segment], gap: float, times: Sequence[float]) -> tuple[tuple[Segment, ...], float]:
    """``segments`` (at ``gap``) with the sorted wall times ``times`` added; the new segments and gap
    (raised along ``GAP_LADDER`` while there are more than ``MAX_SEGMENTS``)."""
    if not times:
        return tuple(segments), gap
    joined = _join([*segments, *_segments_of(times, gap)], gap)
    while len(joined) > MAX_SEGMENTS:
        gap = next(g for g in GAP_LADDER if g > gap)
        joined = _join(joined, gap)
    return tuple(joined), gap


def merge_segments(files: Iterable[tuple[Sequence[Segment], float]], threshold: float,
                   until: float | None = None) -> tuple[float, bool]:
    """The busy seconds of a run from its files' ``(segments, gap)``: the total length of the merged
    timeline's gaps shorter than ``threshold``, counting only time up to ``until`` when given; and
    whether that figure is exact (every file's ``gap`` is at most ``threshold``)."""
    exact = True
    pieces: list[Segment] = []
    for segments, gap in files:
        exact = exact and gap <= threshold
        pieces.extend(segments)
    busy = 0.0
    previous_end: float | None = None
    for start, end in _join(pieces, 0.0):  # overlapping and touching pieces become one interval
        if until is not None:
            if start > until:
                break
            end = min(end, until)
        if previous_end is not None and start - previous_end < threshold:
            busy += start - previous_end
        busy += end - start
        previous_end = end
    return busy, exact
