"""Incremental scalar extraction: per event file and tag, what the scalars look like.

``summarize_file`` reads every record of an event file (or only the records appended since the
previous call), hands each payload to an injected ``EventDecoder`` (protobuf lives in
``tbhub.adapters.scalar_decoder``) and folds the scalar points into one ``TagSummary`` per tag.
``merge_tags`` combines the files of one run into per-run tag summaries. The alert engine and
``tbhub compare`` read these summaries; nothing here needs TensorBoard.

Invariants (what the rest of tbhub relies on):

* Records are read like TensorBoard's reader reads them: in file order, stopping at the first short
  record (``truncated``, normal while a job writes) or at the first bad header or payload CRC
  (``corrupt``). ``records`` then equals the number of records TensorBoard's ``RawEventFileLoader``
  yields for the same bytes, and ``offset`` is the byte just past the last complete, valid record.
* A file is never read past ``size`` (the caller's snapshot of it); no buffer larger than the bytes
  that actually exist is allocated, whatever a damaged header claims. File content never raises
  (damage is reported in the state; a payload the decoder cannot parse is skipped); I/O errors
  propagate.
* Resuming (same inode, not shrunk, not corrupt) reads only the bytes from ``previous.offset`` on
  and gives exactly the state a full pass over the file would give. Anything else (another inode:
  the file was replaced; a smaller size: it was truncated; a previous pass that stopped at a bad
  CRC: it may have been repaired) starts from byte 0 with a fresh state.
* Scalars are what TensorBoard's scalars dashboard shows: every ``simple_value`` (PyTorch,
  tensorboardX, TF1, Keras v1), and TF2 tensor summaries of a tag whose plugin is ``scalars``
  holding one float, double or half. The plugin of a tag is taken from the first value of that tag
  carrying ``metadata`` in the file (TF2 writers write it only on a tag's first occurrence); the
  memory (``plugins``) is part of the state, so a resumed file still knows its scalar tags.
  TensorBoard remembers plugins per run folder rather than per file; the two agree on what writers
  produce, since every writer (a new file) repeats the metadata on its first value of each tag.
* Within a file "first" and "last" follow file order (TensorBoard's order), whatever the steps.
  NaN and ±Inf are counted (``nan_count``, ``inf_count``) but never enter ``min``/``max``/``mean``;
  ``last_value`` is whatever came last, NaN included: that is how a divergence shows.

Tag naming in a run (``merge_tags``): a run is the ``{dataset}/{run}`` folder, but Keras and many
trainers write ``train/`` and ``validation/`` sub-folders with the same tags (``epoch_loss`` in
both). TensorBoard shows those as separate runs; tbhub keys them ``"{subdir}/{tag}"``
(``train/epoch_loss``, ``validation/epoch_loss``), or keeps the tag as is when it already starts with
that sub-folder (tag ``train/loss`` written in ``train/`` stays ``train/loss``). Files directly in the
run folder keep their bare tags. See ``run_tag``.
"""

from __future__ import annotations

import io
import math
import os
import struct
import sys
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import chain, takewhile
from multiprocessing.context import BaseContext
from typing import BinaryIO, Protocol

from tbhub.core.models import FileEntry
from tbhub.core.ports import Crc32c
from tbhub.core.tfrecord import FOOTER_SIZE, HEADER_SIZE, record_length
from tbhub.core.tfrecord import repeat_period as _period

__all__ = [
    "PARALLEL_MIN_BYTES",
    "READ_SIZE",
    "TAIL_SIZE",
    "BatchEventDecoder",
    "EventDecoder",
    "ScalarFileState",
    "ScalarPoint",
    "Series",
    "TagSummary",
    "bytes_to_parse",
    "iter_points",
    "merge_tags",
    "resume_offset",
    "run_tag",
    "summarize_file",
    "summarize_many",
]

ScalarPoint = tuple[str, int, float, float]
"""One scalar: ``(tag, step, wall_time, value)``. A plain tuple: the decoder builds millions."""

Series = tuple[Sequence[int], Sequence[float], Sequence[float]]
"""The points of one tag as columns: ``(steps, wall_times, values)``, in file order."""

TAIL_SIZE = 10
"""How many of the last values a ``TagSummary`` keeps (``mean_last`` is their finite mean)."""

READ_SIZE = 1 << 20
"""Bytes per read. Every byte is parsed, so large reads are cheapest; a record longer than this is
read in one piece of its own size (only once its header shows it lies within the file)."""

PARALLEL_MIN_BYTES = 32 * 1024 * 1024
"""``summarize_many`` uses worker processes only above this many bytes to parse (about 0.3 s of
work): below it, starting the processes costs more than it saves."""

_OVERHEAD = HEADER_SIZE + FOOTER_SIZE
_U32 = 0xFFFFFFFF
_MASK_DELTA = 0xA282EAD8


class EventDecoder(Protocol):
    """Turns one serialized ``tensorboard.Event`` into the scalar points it holds.

    Contract:

    * Returns the points in the order of ``summary.value`` in the event: ``simple_value`` values,
      and tensor values of a tag whose plugin in ``plugins`` is ``"scalars"`` with exactly one
      float, double or half element. Everything else (no summary, histograms, images, other
      plugins, other dtypes) gives no point.
    * Updates ``plugins`` (tag → plugin name of that tag's first value carrying ``metadata``;
      ``""`` when the metadata names no plugin) before deciding whether that value is a scalar;
      an existing entry is never overwritten.
    * Never raises on content: a payload that is not a valid ``Event`` gives ``[]``.
    * Callers do not mutate the returned sequence, so a decoder may return a shared empty one.
    * Picklable (``summarize_many`` sends it to worker processes).
    """

    def decode(self, payload: bytes, plugins: dict[str, str]) -> Sequence[ScalarPoint]: ...


class BatchEventDecoder(EventDecoder, Protocol):
    """An ``EventDecoder`` that can also decode many payloads at once, into columns.

    ``summarize_file`` uses ``decode_batch`` when the decoder has it: building one tuple per point
    and sorting points by tag in Python costs more than decoding them when events hold many values.

    Contract: ``decode_batch(payloads, plugins)`` returns *segments*; concatenating, segment after
    segment, the series of a tag gives exactly the points ``decode`` would return for that tag over
    ``payloads`` in order, and ``plugins`` ends up exactly as after those ``decode`` calls. Within a
    segment every series is non-empty and the three columns have equal lengths.
    """

    def decode_batch(self, payloads: Sequence[bytes], plugins: dict[str, str]) -> list[dict[str, Series]]: ...


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


# --- folding points into summaries ------------------------------------------------------------------


def _summarize_series(tag: str, steps: Sequence[int], wall_times: Sequence[float], values: Sequence[float],
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


def _point_batches(decode: Callable[[bytes, dict[str, str]], Sequence[ScalarPoint]]
                   ) -> Callable[[Sequence[bytes], dict[str, str]], list[dict[str, Series]]]:
    """``decode_batch`` for a decoder that only has ``decode``: one segment, grouped in Python."""

    def decode_batch(payloads: Sequence[bytes], plugins: dict[str, str]) -> list[dict[str, Series]]:
        groups: dict[str, list[ScalarPoint]] = {}
        for payload in payloads:
            points = decode(payload, plugins)
            if points:
                for point in points:
                    try:
                        groups[point[0]].append(point)
                    except KeyError:
                        groups[point[0]] = [point]
        segment: dict[str, Series] = {}
        for tag, group in groups.items():
            _, steps, wall_times, values = zip(*group, strict=True)
            segment[tag] = (steps, wall_times, values)
        return [segment]

    return decode_batch


def _combine(a: TagSummary, b: TagSummary, tail_size: int, *, tag: str | None = None) -> TagSummary:
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


# --- reading records ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Walk:
    """Where reading stands: ``offset`` is just past the last complete, valid record."""

    offset: int
    records: int = 0
    truncated: bool = False
    corrupt: bool = False


def _payloads(f: BinaryIO, walk: _Walk, size: int, crc32c: Crc32c) -> Iterator[list[bytes]]:
    """The CRC-checked payloads from ``walk.offset`` on, in batches (one per read), in file order.

    ``walk`` is advanced as each batch is handed out and says at the end why reading stopped.
    """
    limit = min(size, f.seek(0, io.SEEK_END))  # exact even if the file shrank since its stat
    base = walk.offset  # file offset of buf[0]
    filepos = base  # file offset just past buf
    f.seek(base)
    buf = b""
    rel = 0
    lengths: dict[bytes, int] = {}  # header bytes -> record size, headers whose CRC was checked
    while True:
        batch: list[bytes] = []
        footers: list[bytes] = []
        append = batch.append
        append_footer = footers.append
        start = rel
        blen = len(buf)
        pending = 0  # size of the record at rel when its header is complete but its body is not
        stop = done = False
        probe = _PROBE_MIN
        while not done:
            # A probe: records one by one. 12 and 4 are HEADER_SIZE and FOOTER_SIZE, as literals.
            seen: list[bytes] = []
            note = seen.append
            for _ in range(probe):
                if rel + 12 > blen:
                    done = True
                    break
                header = buf[rel : rel + 12]
                n = lengths.get(header)
                if n is None:
                    length = record_length(header, crc32c)
                    if length is None:
                        walk.corrupt = stop = done = True
                        break
                    n = lengths[header] = length + _OVERHEAD
                end = rel + n
                if end > blen:
                    pending = n
                    done = True
                    break
                append(buf[rel + 12 : end - 4])
                append_footer(buf[end - 4 : end])
                rel = end
                note(header)
            if done:
                break
            matched = _periods(buf, rel, seen, lengths, batch, footers)
            rel += matched
            probe = _PROBE_MIN if matched else min(probe * 2, _PROBE_MAX)
        bad = _first_bad_payload(batch, footers, crc32c)
        if bad is not None:
            del batch[bad:]
            rel = start
            for _ in range(bad):
                rel += lengths[buf[rel : rel + HEADER_SIZE]]
            walk.corrupt = stop = True
        walk.records += len(batch)
        walk.offset = base + rel
        if batch:
            yield batch
        if stop:
            return
        if pending and walk.offset + pending > limit:
            # The record does not fit in the file (still being written, or an absurd length
            # with a valid CRC): nothing more is read or allocated.
            walk.truncated = True
            return
        want = min(max(READ_SIZE, pending - (blen - rel)), limit - filepos)
        data = f.read(want) if want > 0 else b""
        if not data:
            walk.truncated = rel < blen
            return
        filepos += len(data)
        buf = buf[rel:] + data if rel < blen else data
        base += rel
        rel = 0


_PROBE_MIN = 16
_PROBE_MAX = 1024
_UNIT_MIN = 8
_SHAPES: dict[tuple[int, ...], tuple[struct.Struct, struct.Struct, struct.Struct]] = {}


def _periods(
    buf: bytes, rel: int, seen: list[bytes], lengths: dict[bytes, int], batch: list[bytes], footers: list[bytes]
) -> int:
    """Consume whole repetitions of the period the last headers in ``seen`` show, from ``rel`` on;
    returns the bytes consumed (0 without a period, or when the next unit breaks it).

    Event files are very regular: every step logs the same tags, and a scalar event's size depends
    only on its tag and the step's varint length. As in the scanner (``scanner._skim``), one
    ``struct`` covers a *unit* (the period repeated to at least ``_UNIT_MIN`` records): the
    headers of all units in the buffer are compared with the period's, already checked ones in C
    (``takewhile``), then the payloads and footers of the matching units are cut out in C. The
    Python work is per unit, not per record.
    """
    period = _period(seen)
    if not period:
        return 0
    unit = period * -(-_UNIT_MIN // period)
    pattern = tuple(seen[-period:]) * (unit // period)
    sizes = tuple(lengths[h] for h in pattern)
    shapes = _SHAPES.get(sizes)
    if shapes is None:
        if len(_SHAPES) > 4096:  # bounded: a long-lived process sees many files
            _SHAPES.clear()
        shapes = _SHAPES[sizes] = (
            struct.Struct("<" + "".join(f"12s{n - 12}x" for n in sizes)),
            struct.Struct("<" + "".join(f"12x{n - 16}s4x" for n in sizes)),
            struct.Struct("<" + "".join(f"{n - 4}x4s" for n in sizes)),
        )
    headers, payloads, footer_shape = shapes
    stride = headers.size
    n = (len(buf) - rel) // stride  # whole units left in the buffer
    if n < 1:
        return 0
    view = memoryview(buf)[rel : rel + n * stride]
    matched = sum(map(bool, takewhile(pattern.__eq__, headers.iter_unpack(view))))
    if matched:
        region = view[: matched * stride]
        batch.extend(chain.from_iterable(payloads.iter_unpack(region)))
        footers.extend(chain.from_iterable(footer_shape.iter_unpack(region)))
    return matched * stride


_U32_CODE = "I" if array("I").itemsize == 4 else "L"  # an array typecode of exactly 4 bytes
_LANE_MASK = struct.pack("<Q", _U32)
_LANE_DELTA = struct.pack("<Q", _MASK_DELTA)


def _first_bad_payload(payloads: list[bytes], footers: list[bytes], crc32c: Crc32c) -> int | None:
    """Index of the first payload whose masked CRC-32C differs from its footer, or None.

    Checked for the whole batch at once: the CRCs go into 64-bit lanes of one integer, masked there
    (``tfrecord.mask_crc`` per lane: a lane's carry cannot reach the next) and compared with the
    footers in one go, so the per-record work is the C CRC call alone.
    """
    count = len(payloads)
    if not count:
        return None
    lanes = int.from_bytes(array("Q", map(crc32c, payloads)).tobytes(), sys.byteorder)
    low = int.from_bytes(_LANE_MASK * count, "little")
    masked = ((((lanes >> 15) | (lanes << 17)) & low) + int.from_bytes(_LANE_DELTA * count, "little")) & low
    expected = array(_U32_CODE, array("Q", masked.to_bytes(8 * count, sys.byteorder)))
    stored = array(_U32_CODE, b"".join(footers))
    if sys.byteorder == "big":
        stored.byteswap()
    if expected == stored:
        return None
    return next(i for i, (a, b) in enumerate(zip(expected, stored, strict=True)) if a != b)


def resume_offset(previous: ScalarFileState | None, *, inode: int, size: int) -> int:
    """Where ``summarize_file`` starts reading: ``previous.offset`` when ``previous`` describes the
    same inode, not shrunk, and did not stop at a bad CRC; 0 (with a fresh state) otherwise.

    A corrupt file is read from the start again, as the scanner does: it may have been repaired.
    """
    if (
        previous is not None
        and previous.inode == inode
        and size >= previous.size
        and previous.offset <= size
        and not previous.corrupt
    ):
        return previous.offset
    return 0


def bytes_to_parse(entry: FileEntry, previous: ScalarFileState | None) -> int:
    """How many bytes ``summarize_file`` reads at most for ``entry`` (progress, serial vs parallel)."""
    return entry.size - resume_offset(previous, inode=entry.inode, size=entry.size)


def summarize_file(
    f: BinaryIO,
    previous: ScalarFileState | None,
    *,
    relpath: str,
    inode: int,
    size: int,
    mtime_ns: int,
    decoder: EventDecoder,
    crc32c: Crc32c,
    tail_size: int = TAIL_SIZE,
) -> ScalarFileState:
    """Summarize the scalars of the event file ``f`` (opened by the caller, any position).

    ``relpath``, ``inode``, ``size`` and ``mtime_ns`` are the caller's stat of the file; at most
    ``size`` bytes are considered. Resumes from ``previous`` when ``resume_offset`` allows (only the
    new bytes are read), otherwise reads from byte 0. Uses ``decoder.decode_batch`` if the decoder
    has one (``BatchEventDecoder``), ``decoder.decode`` otherwise. ``tail_size`` must be the same across calls
    for one file. ``crc32c`` should be the C implementation: every payload is checked.
    """
    start = resume_offset(previous, inode=inode, size=size)
    if start and previous is not None:
        plugins = dict(previous.plugins)
        tags = dict(previous.tags)
        walk = _Walk(start, previous.records)
    else:
        plugins, tags, walk = {}, {}, _Walk(0)
    decode_batch = getattr(decoder, "decode_batch", None) or _point_batches(decoder.decode)
    for batch in _payloads(f, walk, size, crc32c):
        for segment in decode_batch(batch, plugins):
            for tag, (steps, wall_times, values) in segment.items():
                summary = _summarize_series(tag, steps, wall_times, values, tail_size)
                before = tags.get(tag)
                tags[tag] = summary if before is None else _combine(before, summary, tail_size)
    return ScalarFileState(
        relpath=relpath,
        inode=inode,
        size=size,
        mtime_ns=mtime_ns,
        offset=walk.offset,
        records=walk.records,
        plugins=plugins,
        tags=tags,
        truncated=walk.truncated,
        corrupt=walk.corrupt,
    )


def iter_points(
    f: BinaryIO,
    previous: ScalarFileState | None,
    *,
    inode: int,
    size: int,
    decoder: EventDecoder,
    crc32c: Crc32c,
) -> Iterator[ScalarPoint]:
    """The points ``summarize_file(f, previous, ...)`` would fold in, one by one in file order.

    For consumers that need every new point (an alert rule looking at each value). Reads the same
    bytes as ``summarize_file`` with the same ``previous``; ``previous`` is not modified.
    """
    start = resume_offset(previous, inode=inode, size=size)
    plugins = dict(previous.plugins) if start and previous is not None else {}
    decode = decoder.decode
    for batch in _payloads(f, _Walk(start), size, crc32c):
        for payload in batch:
            yield from decode(payload, plugins)


# --- runs -------------------------------------------------------------------------------------------


def run_tag(subdir: str, tag: str) -> str:
    """The run-level key of ``tag`` written by a file in ``subdir`` (relative to the run folder,
    ``""`` for the run folder itself): ``"{subdir}/{tag}"``, unless ``subdir`` is empty or the tag
    already starts with ``"{subdir}/"`` (or is exactly ``subdir``)."""
    if not subdir or tag == subdir or tag.startswith(subdir + "/"):
        return tag
    return f"{subdir}/{tag}"


def merge_tags(
    run_relpath: str, files: Iterable[ScalarFileState], *, tail_size: int = TAIL_SIZE
) -> dict[str, TagSummary]:
    """Per-run tag summaries from the states of the run's files, keyed (and ``tag`` set) by
    ``run_tag``, sorted by key.

    Files are combined in order of their points' wall time: for each key the ``first_*`` fields
    come from the file whose first point is earliest, ``last_*`` (and the end of ``tail``) from the
    one whose last point is latest (a resumed job's new file wins over the old one even if its
    steps went back). Ties go to the file that sorts first by ``relpath`` (TensorBoard's order).
    Raises ``ValueError`` if a file does not lie below ``run_relpath`` (``""`` is the log root).
    """
    prefix = run_relpath.strip("/")
    found: dict[str, list[tuple[str, TagSummary]]] = {}
    for state in sorted(files, key=lambda s: s.relpath):
        if prefix:
            if not state.relpath.startswith(prefix + "/"):
                raise ValueError(f"{state.relpath!r} is not below the run folder {run_relpath!r}")
            inner = state.relpath[len(prefix) + 1 :]
        else:
            inner = state.relpath
        subdir = inner.rpartition("/")[0]
        for tag, summary in state.tags.items():
            found.setdefault(run_tag(subdir, tag), []).append((state.relpath, summary))
    merged: dict[str, TagSummary] = {}
    for key in sorted(found):
        parts = [s for _, s in found[key]]  # relpath order; sorted() below is stable
        by_start = sorted(parts, key=lambda s: s.first_wall_time)
        by_end = sorted(parts, key=lambda s: s.last_wall_time)
        result = by_end[0]
        for summary in by_end[1:]:
            result = _combine(result, summary, tail_size)
        first = by_start[0]
        nonfinite = [s for s in by_start if s.first_nonfinite_step is not None]
        merged[key] = TagSummary(
            tag=key,
            count=result.count,
            nan_count=result.nan_count,
            inf_count=result.inf_count,
            first_step=first.first_step,
            last_step=result.last_step,
            first_wall_time=first.first_wall_time,
            last_wall_time=result.last_wall_time,
            last_value=result.last_value,
            min_value=result.min_value,
            min_step=result.min_step,
            max_value=result.max_value,
            max_step=result.max_step,
            first_nonfinite_step=nonfinite[0].first_nonfinite_step if nonfinite else None,
            tail=result.tail,
        )
    return merged


# --- many files ---------------------------------------------------------------------------------


def _summarize_path(
    path: str,
    entry: FileEntry,
    previous: ScalarFileState | None,
    decoder: EventDecoder,
    crc32c: Crc32c,
    tail_size: int,
) -> ScalarFileState | None:
    if (
        previous is not None
        and (previous.inode, previous.size, previous.mtime_ns) == (entry.inode, entry.size, entry.mtime_ns)
        and previous.relpath == entry.relpath
    ):
        return previous  # unchanged since the last pass: not even opened
    try:
        # Unbuffered: each read is one system call into the bytes object that gets sliced.
        with open(path, "rb", buffering=0) as f:
            return summarize_file(
                f,
                previous,
                relpath=entry.relpath,
                inode=entry.inode,
                size=entry.size,
                mtime_ns=entry.mtime_ns,
                decoder=decoder,
                crc32c=crc32c,
                tail_size=tail_size,
            )
    except FileNotFoundError:
        return None  # deleted between discovery and now


def summarize_many(
    jobs: Sequence[tuple[str, FileEntry, ScalarFileState | None]],
    *,
    decoder: EventDecoder,
    crc32c: Crc32c,
    workers: int,
    mp_context: BaseContext | None = None,
    tail_size: int = TAIL_SIZE,
) -> list[ScalarFileState | None]:
    """Summarize many local files (``(absolute path, entry, previous state)``), results in input
    order; a file deleted since discovery gives ``None``, other ``OSError``s propagate.

    A file whose inode, size and mtime match its previous state is not opened. Uses ``workers``
    processes when more than ``PARALLEL_MIN_BYTES`` are to be parsed (largest files first, so one big
    file does not finish last), serially otherwise. ``decoder`` and ``crc32c`` must be picklable.
    ``mp_context`` as for ``tbhub.core.scanner.scan_many`` (default: the platform's, ``fork`` on
    Linux; pass ``forkserver`` from a threaded process).
    """
    sizes = [bytes_to_parse(entry, prev) for _, entry, prev in jobs]
    if workers <= 1 or len(jobs) <= 1 or sum(sizes) <= PARALLEL_MIN_BYTES:
        return [_summarize_path(p, e, prev, decoder, crc32c, tail_size) for p, e, prev in jobs]
    order = sorted(range(len(jobs)), key=lambda i: -sizes[i])
    results: list[ScalarFileState | None] = [None] * len(jobs)
    n_workers = min(workers, len(jobs), os.cpu_count() or 1)
    with ProcessPoolExecutor(max_workers=n_workers, mp_context=mp_context) as pool:
        futures = {
            i: pool.submit(_summarize_path, jobs[i][0], jobs[i][1], jobs[i][2], decoder, crc32c, tail_size)
            for i in order
        }
        for i, future in futures.items():
            results[i] = future.result()
    return results
