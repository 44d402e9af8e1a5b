"""Scalar series for charts: every point of a tag read once, at most ``max_points`` of them kept.

TensorBoard keeps 1,000 points per scalar series (reservoir sampling, ``--samples_per_plugin``); a
chart cannot show more than a few pixels' worth anyway. ``Thinner`` keeps evenly spaced points of a
series of unknown length in bounded memory: every ``stride``-th point, the stride doubling (and
every other kept point dropped) whenever ``2 * max_points`` are held. The first point is always
kept and the last point is always added at the end, so a chart starts and ends where the run does
(a divergence at the last step shows). ``thin`` then picks at most ``max_points`` of those, evenly.

``read_file_series`` reads one event file with the same CRC-checked reader as the scalar summaries
(``core.scalars.records``) and the injected decoder, and resumes where it stopped when the file has
only grown since (``FileSeries``); nothing here needs TensorBoard or protobuf.

The thinner keeps a few of a series' points (it slices the columns with its stride), so a decoder
may offer ``decode_sparse`` (``SparseEventDecoder``): ``decode_batch``'s contract, with columns that
may decode a point only when it is indexed or sliced. The reader prefers it: a 50,000-step run's
points then cost the framing and a template check each, and only the points kept are unpacked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from tbhub.core.ports import Crc32c
from tbhub.core.scalars.decoding import BatchEventDecoder, EventDecoder, Series, point_batches
from tbhub.core.scalars.records import Walk, read_payloads

__all__ = [
    "DEFAULT_POINTS",
    "FileSeries",
    "SeriesPoints",
    "SparseEventDecoder",
    "Thinner",
    "merge_series",
    "read_file_series",
    "thin",
]

#: Points per series, as TensorBoard's scalars plugin keeps by default.
DEFAULT_POINTS = 1000


class SparseEventDecoder(BatchEventDecoder, Protocol):
    """A ``BatchEventDecoder`` whose ``decode_sparse`` keeps ``decode_batch``'s contract (segments,
    ``plugins``), except that a column may be a lazy read-only sequence: indexing and slicing (with
    any stride) give what the list would, reading only those points."""

    def decode_sparse(self, payloads: Sequence[bytes], plugins: dict[str, str]) -> list[dict[str, Series]]: ...


@dataclass(frozen=True, slots=True)
class SeriesPoints:
    """One tag's points in file (or merged, step) order: equal-length columns; values may be NaN/inf."""

    steps: tuple[int, ...]
    wall_times: tuple[float, ...]
    values: tuple[float, ...]
    total: int  # how many points the series had before thinning

    def __len__(self) -> int:
        return len(self.steps)


def _pick(n: int, k: int) -> list[int]:
    """``k`` (<= n) evenly spaced indices of ``range(n)``, the first and the last included."""
    if k >= n:
        return list(range(n))
    if k <= 1:
        return [n - 1]
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def thin(points: SeriesPoints, max_points: int) -> SeriesPoints:
    """At most ``max_points`` evenly spaced points of ``points`` (the first and the last kept)."""
    if len(points) <= max_points:
        return points
    idx = _pick(len(points), max_points)
    return SeriesPoints(
        tuple(points.steps[i] for i in idx),
        tuple(points.wall_times[i] for i in idx),
        tuple(points.values[i] for i in idx),
        points.total,
    )


class Thinner:
    """Keeps evenly spaced points of one series in at most ``2 * max_points + 1`` slots."""

    __slots__ = ("_last", "max_points", "seen", "steps", "stride", "values", "walls")

    def __init__(self, max_points: int = DEFAULT_POINTS) -> None:
        if max_points < 2:
            raise ValueError("a series needs at least 2 points")
        self.max_points = max_points
        self.stride = 1
        self.seen = 0
        self.steps: list[int] = []
        self.walls: list[float] = []
        self.values: list[float] = []
        self._last: tuple[int, float, float] | None = None

    def copy(self) -> Thinner:
        twin = Thinner(self.max_points)
        twin.stride, twin.seen, twin._last = self.stride, self.seen, self._last
        twin.steps, twin.walls, twin.values = list(self.steps), list(self.walls), list(self.values)
        return twin

    def extend(self, steps: Sequence[int], walls: Sequence[float], values: Sequence[float]) -> None:
        """Add columns of points (in order)."""
        n = len(steps)
        if not n:
            return
        self._last = (steps[-1], walls[-1], values[-1])
        start = (-self.seen) % self.stride  # the next index (counted from ``seen``) the stride keeps
        self.seen += n
        while start < n:
            room = 2 * self.max_points - len(self.steps)
            stop = min(n, start + room * self.stride)
            self.steps.extend(steps[start:stop:self.stride])
            self.walls.extend(walls[start:stop:self.stride])
            self.values.extend(values[start:stop:self.stride])
            if len(self.steps) >= 2 * self.max_points:
                # Full: keep every other point and double the stride (indices kept stay multiples of it).
                del self.steps[1::2], self.walls[1::2], self.values[1::2]
                self.stride *= 2
            start = stop + (-stop - (self.seen - n)) % self.stride

    def result(self) -> SeriesPoints:
        steps, walls, values = list(self.steps), list(self.walls), list(self.values)
        # The last point of the series, if the stride skipped it.
        if self._last is not None and (self.seen - 1) % self.stride:
            steps.append(self._last[0])
            walls.append(self._last[1])
            values.append(self._last[2])
        return thin(SeriesPoints(tuple(steps), tuple(walls), tuple(values), self.seen), self.max_points)


@dataclass(slots=True)
class FileSeries:
    """Where reading one event file's series stands: resumable when the file grows (a live run)."""

    inode: int
    size: int
    walk: Walk
    plugins: dict[str, str]
    thinners: dict[str, Thinner]
    names: dict[str, str | None]

    def series(self) -> dict[str, SeriesPoints]:
        return {name: t.result() for name, t in self.thinners.items()}

    def resumable(self, inode: int, size: int) -> bool:
        """Whether the file (now ``inode``, ``size``) only grew since: then only new bytes are read.
        A replaced, shrunk or corrupt file is read again from byte 0."""
        return inode == self.inode and size >= self.size and not self.walk.corrupt and self.walk.offset <= size

    def copy(self) -> FileSeries:
        return FileSeries(self.inode, self.size, Walk(self.walk.offset, self.walk.records), dict(self.plugins),
                          {name: t.copy() for name, t in self.thinners.items()}, dict(self.names))


def read_file_series(
    f: BinaryIO,
    previous: FileSeries | None = None,
    *,
    inode: int = 0,
    size: int,
    decoder: EventDecoder,
    crc32c: Crc32c,
    keep: Callable[[str], str | None],
    max_points: int = DEFAULT_POINTS,
) -> FileSeries:
    """The thinned scalar series of one event file (read up to ``size`` bytes), by the name ``keep``
    gives each file tag (``None``: not wanted). Reading stops where TensorBoard's reader stops (a
    short or corrupt record). With ``previous`` (this file's state, as returned before; it is not
    modified) only the bytes after it are read when ``previous.resumable(inode, size)``; the result
    is the same as reading the whole file. The decoder's ``decode_sparse`` is used when it has one."""
    if previous is not None and previous.resumable(inode, size):
        state = previous.copy()
        state.size = size
    else:
        state = FileSeries(inode, size, Walk(0), {}, {}, {})
    thinners, names = state.thinners, state.names
    decode_batch = (getattr(decoder, "decode_sparse", None) or getattr(decoder, "decode_batch", None)
                    or point_batches(decoder.decode))
    for batch in read_payloads(f, state.walk, size, crc32c):
        for segment in decode_batch(batch, state.plugins):
            for tag, (steps, walls, values) in segment.items():
                if tag not in names:
                    names[tag] = keep(tag)
                name = names[tag]
                if name is None:
                    continue
                thinner = thinners.get(name)
                if thinner is None:
                    thinner = thinners[name] = Thinner(max_points)
                thinner.extend(steps, walls, values)
    return state


def merge_series(parts: Sequence[SeriesPoints], max_points: int = DEFAULT_POINTS) -> SeriesPoints:
    """One series from the series of several files of a run: points ordered by step (stable: file
    order within a step), thinned to ``max_points``."""
    if len(parts) == 1:
        return thin(parts[0], max_points)
    points = sorted(
        (p for part in parts for p in zip(part.steps, part.wall_times, part.values, strict=True)),
        key=lambda p: p[0],
    )
    merged = SeriesPoints(
        tuple(p[0] for p in points),
        tuple(p[1] for p in points),
        tuple(p[2] for p in points),
        sum(part.total for part in parts),
    )
    return thin(merged, max_points)
