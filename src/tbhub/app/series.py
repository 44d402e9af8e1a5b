"""Scalar series of chosen runs for charts (compare's curves, the run page's sparklines).

The state database holds per-tag summaries and the last 10 values, not whole series, so a chart
reads the run's event files through the scalar reader (``core.series``) keeping at most
``max_points`` points per series, as TensorBoard keeps 1,000. Only the event files of the runs asked
for are read, never a whole endpoint; a file's series are cached by its identity (inode, size,
mtime), so the next request for an unchanged file reads nothing, and a growing file is read again.
``benchmarks/compare.py`` measures it.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence

from tbhub.adapters.crc import crc32c
from tbhub.app.decoders import DecoderPool
from tbhub.app.services import Services
from tbhub.core.models import RunSummary
from tbhub.core.scalars import EventDecoder, run_tag
from tbhub.core.series import DEFAULT_POINTS, FileSeries, SeriesPoints, merge_series, read_file_series

__all__ = ["SeriesCache", "run_series"]

_FileKey = tuple[str, str, int]  # endpoint, relpath, max_points
_Identity = tuple[int, int, int]  # inode, size, mtime_ns


class SeriesCache:
    """The thinned series of recently read event files and where reading each stopped, bounded by the
    number of points held (``max_held``; a point held costs about 80 bytes as Python numbers (measured), so the
    default bounds the cache near 40 MB: the curves of 10 runs x 2 tags hold at most 60,000). A file seen
    again unchanged is not read; one that grew is read from where it stopped. Thread-safe: the hub
    answers in threads."""

    def __init__(self, max_held: int = 500_000) -> None:
        self.max_held = max_held
        self.held = 0
        self.hits = 0
        self.misses = 0
        self.bytes_read = 0
        self._files: OrderedDict[_FileKey, tuple[_Identity, FileSeries, dict[str, SeriesPoints]]] = OrderedDict()
        self._lock = threading.Lock()
        self._decoders = DecoderPool()

    def borrow_decoder(self) -> contextlib.AbstractContextManager[EventDecoder]:
        """A decoder for one read, given back afterwards (``app.decoders``: never two threads on one)."""
        return self._decoders.borrow()

    def get(self, key: _FileKey, identity: _Identity) -> tuple[dict[str, SeriesPoints] | None, FileSeries | None]:
        """(the series, when the file is unchanged; the state to resume from otherwise, if any)."""
        with self._lock:
            found = self._files.get(key)
            if found is None:
                self.misses += 1
                return None, None
            self._files.move_to_end(key)
            if found[0] == identity:
                self.hits += 1
                return found[2], None
            self.misses += 1
            return None, found[1]

    def put(self, key: _FileKey, identity: _Identity, state: FileSeries, series: dict[str, SeriesPoints],
            read: int) -> None:
        size = sum(2 * t.max_points for t in state.thinners.values()) + sum(len(s) for s in series.values())
        with self._lock:
            self.bytes_read += read
            old = self._files.pop(key, None)
            if old is not None:
                self.held -= self._size(old[1], old[2])
            self._files[key] = (identity, state, series)
            self.held += size
            while self.held > self.max_held and len(self._files) > 1:
                _, (_, dropped, dropped_series) = self._files.popitem(last=False)
                self.held -= self._size(dropped, dropped_series)

    @staticmethod
    def _size(state: FileSeries, series: dict[str, SeriesPoints]) -> int:
        return sum(2 * t.max_points for t in state.thinners.values()) + sum(len(s) for s in series.values())


def _file_series(
    services: Services, run: RunSummary, cache: SeriesCache, max_points: int
) -> list[dict[str, SeriesPoints]]:
    store = services.store(run.endpoint)
    out = []
    for f in run.files:
        key, identity = (run.endpoint, f.relpath, max_points), (f.inode, f.size, f.mtime_ns)
        series, previous = cache.get(key, identity)
        if series is None:
            subdir = f.relpath[len(run.relpath) + 1 :].rpartition("/")[0] if f.relpath != run.relpath else ""
            start = previous.walk.offset if previous is not None and previous.resumable(f.inode, f.size) else 0
            try:
                with store.open(f.relpath) as fh, cache.borrow_decoder() as decoder:
                    state = read_file_series(fh, previous, inode=f.inode, size=f.size, decoder=decoder,
                                             crc32c=crc32c, keep=functools.partial(run_tag, subdir),
                                             max_points=max_points)
            except FileNotFoundError:
                continue  # removed since the last scan: the next scan drops it from the index
            series = state.series()
            cache.put(key, identity, state, series, state.walk.offset - start)
        out.append(series)
    return out


def run_series(
    services: Services,
    run: RunSummary,
    tags: Collection[str] | None,
    cache: SeriesCache,
    *,
    max_points: int = DEFAULT_POINTS,
) -> dict[str, SeriesPoints]:
    """The series of ``tags`` (run-level names, as the scalar summaries key them; ``None``: every
    scalar tag) of one run, each at most ``max_points`` points, ordered by step. A tag the run does
    not have is left out."""
    parts: dict[str, list[SeriesPoints]] = {}
    for series in _file_series(services, run, cache, max_points):
        for tag, points in series.items():
            if tags is None or tag in tags:
                parts.setdefault(tag, []).append(points)
    return {tag: merge_series(p, max_points) for tag, p in sorted(parts.items())}


def runs_series(
    services: Services,
    runs: Sequence[RunSummary],
    tags: Mapping[str, Collection[str]],
    cache: SeriesCache,
    *,
    max_points: int = DEFAULT_POINTS,
) -> list[dict[str, SeriesPoints]]:
    """``run_series`` of each run (in order), for the tags ``tags[run id]`` names (``endpoint/relpath``)."""
    return [
        run_series(services, run, tags.get(f"{run.endpoint}/{run.relpath}", ()), cache, max_points=max_points)
        for run in runs
    ]
