"""When a target first held in a run: ``tbhub usage|trends --target`` and the target field of ``/usage``
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
``TargetSearch`` is one request: it counts what it read and refuses (``UsageError``, HTTP 400) to read
more than ``limit`` bytes that no earlier request read.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from tbhub.adapters.crc import crc32c
from tbhub.app.services import Services
from tbhub.core.compare import Target
from tbhub.core.models import EventFileScan, RunSummary
from tbhub.core.scalars import EventDecoder, iter_points, run_tag
from tbhub.core.scalars.records import Walk
from tbhub.core.units import format_size
from tbhub.errors import UsageError

__all__ = ["HUB_TARGET_READ_LIMIT", "TargetCache", "TargetSearch"]

#: Event-file bytes one hub request may read for a target, beyond what earlier requests read
#: (the scalar reader decodes about 40 MB/s here: a few seconds' wait at most).
HUB_TARGET_READ_LIMIT = 256 * 1024 * 1024

_Key = tuple[str, str, str, str, float]  # endpoint, file relpath, run-level tag, op, threshold


@dataclass(slots=True)
class _FileHit:
    """One file's answer for one target: the first hit's wall time (``None``: none up to ``walk``)."""

    inode: int
    size: int
    mtime_ns: int
    walk: Walk
    plugins: dict[str, str]
    hit: float | None


class TargetCache:
    """Answers per (event file, target), at most ``max_files`` of them (least recently used dropped).
    Thread-safe: the hub answers in threads (two requests may read the same file at once; the later
    answer is kept, and both are right)."""

    def __init__(self, max_files: int = 100_000) -> None:
        self.max_files = max_files
        self._files: OrderedDict[_Key, _FileHit] = OrderedDict()
        self._lock = threading.Lock()
        self._decoder: EventDecoder | None = None

    def decoder(self) -> EventDecoder:
        if self._decoder is None:
            from tbhub.adapters.scalar_decoder import ProtobufDecoder  # protobuf: only when a target is asked

            self._decoder = ProtobufDecoder()
        return self._decoder

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
    """One request's search for ``target``: ``runs`` read (runs whose summaries have the tag),
    ``files_read`` and ``bytes_read`` (bytes not read before), ``files_cached`` (answered without reading).
    ``limit``: the most bytes it may read (``None``: no bound, the CLI)."""

    target: Target
    cache: TargetCache = field(default_factory=TargetCache)
    limit: int | None = None
    runs: int = 0
    files_read: int = 0
    files_cached: int = 0
    bytes_read: int = 0

    def _key(self, run: RunSummary, f: EventFileScan, tag: str) -> _Key:
        return run.endpoint, f.relpath, tag, self.target.op, self.target.threshold

    def _known(self, entry: _FileHit | None, f: EventFileScan) -> tuple[bool, float | None, int]:
        """(answered without reading, that answer, where reading would start)."""
        if entry is None:
            return False, None, 0
        if (entry.inode, entry.size, entry.mtime_ns) == (f.inode, f.size, f.mtime_ns):
            return True, entry.hit, 0
        grown = entry.inode == f.inode and f.size >= entry.size
        if grown and entry.hit is not None:
            return True, entry.hit, 0  # the first hit stays the first while the file only grows
        if grown and not entry.walk.corrupt and entry.walk.offset <= f.size:
            return False, None, entry.walk.offset
        return False, None, 0  # replaced, shrunk or corrupt: read again from byte 0

    def pending_bytes(self, plan: Sequence[tuple[RunSummary, str]]) -> int:
        """The bytes ``first_hits(plan)`` would read."""
        total = 0
        for run, tag in plan:
            for f in run.files:
                known, _, start = self._known(self.cache.get(self._key(run, f, tag)), f)
                total += 0 if known else max(0, f.size - start)
        return total

    def first_hits(self, services: Services, plan: Sequence[tuple[RunSummary, str]]) -> dict[tuple[str, str], float]:
        """The wall time the target first held in each run of ``plan`` (run, its run-level tag that
        names the target's tag), by (endpoint, run relpath); runs that never met it are left out.

        Raises ``UsageError`` when the plan would read more than ``limit`` new bytes."""
        if self.limit is not None and (pending := self.pending_bytes(plan)) > self.limit:
            raise UsageError(
                f"the target {self.target} would read {format_size(pending)} of event files not read before "
                f"(at most {format_size(self.limit)} a request): choose fewer datasets"
            )
        out: dict[tuple[str, str], float] = {}
        for run, tag in plan:
            self.runs += 1
            hits = [h for f in run.files if (h := self._file_hit(services, run, f, tag)) is not None]
            if hits:
                out[run.endpoint, run.relpath] = min(hits)
        return out

    def _file_hit(self, services: Services, run: RunSummary, f: EventFileScan, tag: str) -> float | None:
        key = self._key(run, f, tag)
        entry = self.cache.get(key)
        known, hit, start = self._known(entry, f)
        if known:
            self.files_cached += 1
            return hit
        walk = Walk(start)
        plugins = dict(entry.plugins) if start and entry is not None else {}
        subdir, target = _subdir(run, f), self.target
        try:
            with services.store(run.endpoint).open(f.relpath) as fh:
                for point_tag, _step, wall, value in iter_points(fh, None, inode=f.inode, size=f.size,
                                                                 decoder=self.cache.decoder(), crc32c=crc32c,
                                                                 walk=walk, plugins=plugins):
                    if run_tag(subdir, point_tag) == tag and target.met(value):
                        hit = wall
                        break
        except FileNotFoundError:
            return None  # removed since the last scan: the next scan drops it from the index
        self.files_read += 1
        self.bytes_read += walk.offset - start
        self.cache.put(key, _FileHit(f.inode, f.size, f.mtime_ns, walk, plugins, hit))
        return hit
