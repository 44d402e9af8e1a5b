"""When a target first held in a run: ``tbhub usage|trends|compare --target`` and the target field of ``/usage``
and ``/trends`` (and ``/api/usage``, ``/api/trends``), one implementation.

The busy time until ``eval/loss<0.5`` first held needs the wall time of the first point of the tag
that met it, which the stored summaries (each tag's figures and last 10 values) do not hold: it is
read from the run's event files with the scalar reader (``core.scalars.iter_points``). Within a file
reading stops at the first hit (a file's later points are later); a run's hit is the earliest of its
files'. Only the runs whose stored summaries have the tag are read.

``TargetCache`` keeps, per event file and target, the answer and where reading stopped, by the file's
identity (inode, size, mtime): an unchanged file is not read again, a file that grew (a live run that
has not reached the target yet) is read from where reading stopped, and a file with a hit is not read
again while it only grows. The hub keeps one per app; the CLI starts with an empty one each command.
``TargetSearch`` is one request: it counts what it read and reads at most ``limit`` bytes (the hub's
bound); a run not read to the end is *pending* (its hit unknown, shown as such), and the next request
reads on where this one stopped.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from tbhub.adapters.crc import crc32c
from tbhub.app.decoders import DecoderPool
from tbhub.app.services import Services
from tbhub.core.compare import Target
from tbhub.core.models import EventFileScan, RunSummary
from tbhub.core.scalars import EventDecoder, run_tag
from tbhub.core.scalars.decoding import point_batches
from tbhub.core.scalars.records import Walk, read_payloads

__all__ = ["HUB_TARGET_READ_LIMIT", "TargetCache", "TargetSearch"]

#: Event-file bytes one hub request reads for a target, beyond what earlier requests read: the reader
#: decodes 28 to 48 MB/s here (tensorboardX scalars, 2 shared cores), so a few seconds at most.
HUB_TARGET_READ_LIMIT = 128 * 1024 * 1024

_Key = tuple[str, str, str, str, float]  # endpoint, file relpath, run-level tag, op, threshold


@dataclass(slots=True)
class _FileHit:
    """One file's answer for one target: the first hit's wall time (``None``: none up to ``walk``)."""

    inode: int
    size: int
    mtime_ns: int
    walk: Walk
    plugins: dict[str, str]
    hit: tuple[float, int] | None  # (wall time, step)


class TargetCache:
    """Answers per (event file, target), at most ``max_files`` of them (least recently used dropped).
    Thread-safe: the hub answers in threads (two requests may read the same file at once; the later
    answer is kept, and both are right)."""

    def __init__(self, max_files: int = 100_000) -> None:
        self.max_files = max_files
        self._files: OrderedDict[_Key, _FileHit] = OrderedDict()
        self._lock = threading.Lock()
        self._decoders = DecoderPool()

    def borrow_decoder(self) -> contextlib.AbstractContextManager[EventDecoder]:
        """A decoder for one read, given back afterwards (``app.decoders``: never two threads on one)."""
        return self._decoders.borrow()

    def get(self, key: _Key) -> _FileHit | None:
        with self._lock:
            found = self._files.get(key)
            if found is not None:
                self._files.move_to_end(key)
            return found

    def put(self, key: _Key, entry: _FileHit) -> None:
        with self._lock:
            self._files[key] = entry
            self._files.move_to_end(key)
            while len(self._files) > self.max_files:
                self._files.popitem(last=False)


def _subdir(run: RunSummary, f: EventFileScan) -> str:
    """The folder of ``f`` below its run folder ("" for a file in it, or a loose file)."""
    return f.relpath[len(run.relpath) + 1 :].rpartition("/")[0] if f.relpath != run.relpath else ""


@dataclass(slots=True)
class TargetSearch:
    """One request's search for ``target``. ``limit``: the most bytes it reads (``None``: no bound, the
    CLI); a file is read up to it, and the next search with the same cache reads on from there.

    After ``first_hits``: ``runs`` (runs that logged the tag), ``pending`` (of them, runs not read to
    the end: the limit was reached; their hit is unknown), ``files_read``, ``bytes_read``,
    ``files_cached`` (answered without reading) and ``bytes_left`` (what the pending runs still need)."""

    target: Target
    cache: TargetCache = field(default_factory=TargetCache)
    limit: int | None = None
    runs: int = 0
    pending: int = 0
    files_read: int = 0
    files_cached: int = 0
    bytes_read: int = 0
    bytes_left: int = 0

    def _key(self, run: RunSummary, f: EventFileScan, tag: str) -> _Key:
        return run.endpoint, f.relpath, tag, self.target.op, self.target.threshold

    def first_hits(self, services: Services, plan: Sequence[tuple[RunSummary, str]]) -> dict[tuple[str, str], float]:
        """The wall time the target first held in each run of ``plan`` (a run and its run-level tag that
        names the target's tag), by (endpoint, run relpath); runs that never met it, and pending runs,
        are left out."""
        return {key: wall for key, (wall, _step) in self.first_points(services, plan).items()}

    def first_points(
        self, services: Services, plan: Sequence[tuple[RunSummary, str]]
    ) -> dict[tuple[str, str], tuple[float, int]]:
        """``first_hits`` with the step of each first hit: (wall time, step)."""
        out: dict[tuple[str, str], tuple[float, int]] = {}
        for run, tag in plan:
            self.runs += 1
            hits, done = [], True
            for f in run.files:
                found, complete = self._file_hit(services, run, f, tag)
                done = done and complete
                if found is not None:
                    hits.append(found)
            if not done:
                self.pending += 1
            elif hits:
                out[run.endpoint, run.relpath] = min(hits)
        return out

    def _known(self, entry: _FileHit | None, f: EventFileScan) -> tuple[bool, tuple[float, int] | None, int]:
        """(answered without reading, that answer, where reading would start)."""
        if entry is None:
            return False, None, 0
        if (entry.inode, entry.size, entry.mtime_ns) == (f.inode, f.size, f.mtime_ns):
            return True, entry.hit, 0
        grown = entry.inode == f.inode and f.size >= entry.size
        if grown and entry.hit is not None:
            return True, entry.hit, 0  # the first hit stays the first while the file only grows
        if grown and not entry.walk.corrupt and entry.walk.offset <= f.size:
            return False, None, entry.walk.offset  # grown, or read only part of the way: read on
        return False, None, 0  # replaced, shrunk or corrupt: read again from byte 0

    def _file_hit(
        self, services: Services, run: RunSummary, f: EventFileScan, tag: str
    ) -> tuple[tuple[float, int] | None, bool]:
        """(the file's first hit, whether that answer is complete)."""
        key = self._key(run, f, tag)
        entry = self.cache.get(key)
        known, hit, start = self._known(entry, f)
        if known:
            self.files_cached += 1
            return hit, True
        end = f.size
        if self.limit is not None:
            end = min(f.size, start + max(0, self.limit - self.bytes_read))
            if end <= start:
                self.bytes_left += f.size - start
                return None, False
        walk = Walk(start)
        plugins = dict(entry.plugins) if start and entry is not None else {}
        subdir, met, names = _subdir(run, f), self.target.met, {}
        try:
            with services.store(run.endpoint).open(f.relpath) as fh, self.cache.borrow_decoder() as decoder:
                decode_batch = getattr(decoder, "decode_batch", None) or point_batches(decoder.decode)
                for batch in read_payloads(fh, walk, end, crc32c):
                    # Segments keep each tag's points in file order, and come in file order.
                    for segment in decode_batch(batch, plugins):
                        for file_tag, (steps, walls, values) in segment.items():
                            if file_tag not in names:
                                names[file_tag] = run_tag(subdir, file_tag) == tag
                            if names[file_tag] and hit is None:
                                points = zip(walls, steps, values, strict=True)
                                hit = next(((w, s) for w, s, v in points if met(v)), None)
                        if hit is not None:
                            break
                    if hit is not None:
                        break
        except FileNotFoundError:
            return None, True  # removed since the last scan: the next scan drops it from the index
        self.files_read += 1
        self.bytes_read += walk.offset - start
        complete = hit is not None or end == f.size
        # A file read part of the way is kept under the size read up to: the next search reads on.
        self.cache.put(key, _FileHit(f.inode, f.size if complete else end, f.mtime_ns, walk, plugins, hit))
        if not complete:
            self.bytes_left += f.size - walk.offset
        return hit, complete
