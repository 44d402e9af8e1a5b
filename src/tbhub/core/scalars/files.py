"""One event file's scalars: summarized (resumable from the previous pass), or point by point."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from tbhub.core.models import FileEntry
from tbhub.core.ports import Crc32c
from tbhub.core.scalars.activity import ACTIVITY_GAP, add_times, event_wall_times
from tbhub.core.scalars.decoding import EventDecoder, ScalarPoint, point_batches
from tbhub.core.scalars.records import Walk, read_payloads
from tbhub.core.scalars.summary import TAIL_SIZE, ScalarFileState, combine, summarize_series
from tbhub.core.scalars.texts import TextDecoder, keep_texts

__all__ = ["bytes_to_parse", "iter_points", "resume_offset", "summarize_file"]


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
        and previous.activity_gap > 0  # a state from before activity was kept: read it all again
        and previous.texts is not None  # nor texts
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
        walk = Walk(start, previous.records)
        activity, gap = previous.activity, previous.activity_gap
        texts = previous.texts or {}
    else:
        plugins, tags, walk = {}, {}, Walk(0)
        activity, gap = (), ACTIVITY_GAP
        texts = {}
    decode_batch = getattr(decoder, "decode_batch", None) or point_batches(decoder.decode)
    pop_texts = decoder.pop_texts if isinstance(decoder, TextDecoder) else None
    for batch in read_payloads(f, walk, size, crc32c):
        activity, gap = add_times(activity, gap, event_wall_times(batch))
        for segment in decode_batch(batch, plugins):
            for tag, (steps, wall_times, values) in segment.items():
                summary = summarize_series(tag, steps, wall_times, values, tail_size)
                before = tags.get(tag)
                tags[tag] = summary if before is None else combine(before, summary, tail_size)
        if pop_texts is not None:
            texts = keep_texts(texts, pop_texts())
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
        activity=activity,
        activity_gap=gap,
        texts=texts,
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
    for batch in read_payloads(f, Walk(start), size, crc32c):
        for payload in batch:
            yield from decode(payload, plugins)
