"""Header-only event-file scanning: record counts, first/last step and wall time, incrementally.

The scanner answers "how many events does this file hold, and where does it stand" without parsing
events. It reads record headers (12 bytes each), checks their CRC and jumps over payloads; it parses
only the first records (for the first step and wall time) and the last complete one, and reads the
steps of some records from their first bytes (for the highest step).

Invariants (what the rest of tbhub relies on):

* ``records`` equals the number of records TensorBoard's ``RawEventFileLoader`` yields for the same
  bytes (TensorBoard without TensorFlow: ``tensorflow_stub.pywrap_tensorflow.PyRecordReader_New``):
  it stops at the first short record (``truncated``) or bad header CRC (``corrupt``). Payload CRCs
  are checked only with ``verify=True``; without it a record with a damaged payload is counted (and
  the count can then exceed TensorBoard's).
* ``scanned_offset`` is the offset just past the last complete, valid record; a short final record
  is normal while a job writes and is read again from there by the next scan.
* A scan never reads past ``entry.size`` (discovery's snapshot), never allocates more than one read
  buffer or one record payload that actually exists in the file, and never raises on file content:
  damage is reported in the returned ``EventFileScan``. I/O errors propagate.
* A resumed scan (same inode, grown or same size, not corrupt) reads only bytes from
  ``previous.scanned_offset`` on.
* ``last_step`` is the highest step logged, not the last record's (``record_walk.Walk.max_step``
  says which records' steps are read); ``last_wall_time`` is the last record's.
"""

from __future__ import annotations

from multiprocessing.context import BaseContext
from typing import BinaryIO

from tbhub.core.file_pool import largest_first
from tbhub.core.models import EventFileScan, FileEntry
from tbhub.core.ports import Crc32c
from tbhub.core.record_walk import (
    BAD_HEADER_CRC,
    BAD_PAYLOAD_CRC,
    HEAD_PARSE_BYTES,
    OVERHEAD,
    READ_SIZE,
    Reader,
    Walk,
    skim,
    slow_step,
)
from tbhub.core.tfrecord import (
    HEADER_SIZE,
    crc32c_py,
    parse_event_head,
)

__all__ = [
    "BAD_HEADER_CRC",
    "BAD_PAYLOAD_CRC",
    "PARALLEL_MIN_BYTES",
    "READ_SIZE",
    "bytes_to_read",
    "can_reuse",
    "scan_event_file",
    "scan_many",
]
PARALLEL_MIN_BYTES = 64 * 1024 * 1024
"""``scan_many`` uses worker processes only above this many bytes to read: below it, starting the
processes costs more than it saves."""
def can_reuse(previous: EventFileScan | None, entry: FileEntry, verify: bool) -> bool:
    """True when ``previous`` still describes ``entry`` exactly, so the file need not be opened.

    Same inode, size and mtime, and verified if verification is asked for.
    """
    return (
        previous is not None
        and previous.inode == entry.inode
        and previous.size == entry.size
        and previous.mtime_ns == entry.mtime_ns
        and (previous.verified or not verify)
    )


def _can_resume(previous: EventFileScan | None, entry: FileEntry, verify: bool) -> bool:
    """True when the bytes ``previous`` scanned are (assumed) unchanged: same inode, not shrunk.

    A corrupt file is scanned from the start again (it may have been repaired); an unverified scan
    cannot be extended into a verified one.
    """
    return (
        previous is not None
        and previous.inode == entry.inode
        and entry.size >= previous.size
        and previous.scanned_offset <= entry.size
        and previous.corrupt is None
        and (previous.verified or not verify)
    )

def scan_event_file(
    f: BinaryIO,
    entry: FileEntry,
    previous: EventFileScan | None = None,
    *,
    verify: bool = False,
    crc32c: Crc32c = crc32c_py,
) -> EventFileScan:
    """Scan the event file ``f`` (opened by the caller, any position) described by ``entry``.

    Resumes from ``previous.scanned_offset`` when ``previous`` is a scan of the same inode that has
    not shrunk, was not corrupt and satisfies ``verify`` (then only the new bytes are read);
    otherwise scans from byte 0. With ``verify`` every payload CRC is checked as well (the first
    bad one stops the scan like TensorBoard does) and the result is marked ``verified``.
    """
    resume = _can_resume(previous, entry, verify)
    cache: dict[bytes, int] = {}
    reader = Reader(f, entry.size)
    if resume:
        assert previous is not None
        walk = Walk(pos=previous.scanned_offset)
        base_records = previous.records
        first_wall_time = previous.first_wall_time
        first_step = previous.first_step
        last_step, last_wall_time = previous.last_step, previous.last_wall_time
        need_first = base_records == 0
    else:
        walk = Walk(pos=0)
        base_records = 0
        first_wall_time = first_step = last_step = last_wall_time = None
        need_first = True
    need_step = first_step is None

    # Records are read one by one while the first step is unknown (usually one or two records:
    # the file_version record, then the first real event), or throughout when verifying.
    while not walk.done and (verify or need_step) and walk.corrupt is None:
        slow_step(walk, reader, cache, crc32c, verify, parse=need_step or need_first)
        if walk.first_step is not None and need_step:
            first_step = walk.first_step
            need_step = False
    if not walk.done:
        skim(walk, reader, cache, crc32c)

    if need_first and walk.first is not None:
        first_wall_time = _finite_or_none(walk.first.wall_time)
    if walk.last >= 0:
        step, last_wall_time = _read_last(reader, walk.last, cache)
        # The highest step, not the last record's: writers log text and hparams at step 0 after
        # training (tensorboardX's add_text).
        steps = [s for s in (last_step, walk.max_step, step) if s is not None]
        last_step = max(steps) if steps else None

    return EventFileScan(
        relpath=entry.relpath,
        inode=entry.inode,
        size=entry.size,
        mtime_ns=entry.mtime_ns,
        records=base_records + walk.records,
        scanned_offset=walk.pos,
        first_step=first_step,
        last_step=last_step,
        first_wall_time=first_wall_time,
        last_wall_time=last_wall_time,
        truncated=walk.truncated,
        corrupt=walk.corrupt,
        verified=verify,
    )


def _finite_or_none(value: float) -> float | None:
    return None if value != value else value


def _read_last(reader: Reader, pos: int, cache: dict[bytes, int]) -> tuple[int | None, float | None]:
    """Step and wall time of the (complete, header-checked) record at ``pos``."""
    header = reader.read(pos, HEADER_SIZE)
    length = cache[header] - OVERHEAD
    n = min(length, HEAD_PARSE_BYTES)
    head = parse_event_head(reader.read(pos + HEADER_SIZE, n), complete=n == length)
    if head is None:
        return None, None
    return head.step, head.wall_time


def _scan_path(
    path: str, entry: FileEntry, previous: EventFileScan | None, verify: bool, crc32c: Crc32c
) -> EventFileScan | None:
    # Unbuffered: every read is one system call straight into the bytes object we slice.
    try:
        with open(path, "rb", buffering=0) as f:
            return scan_event_file(f, entry, previous, verify=verify, crc32c=crc32c)
    except FileNotFoundError:
        return None  # deleted between discovery and scan (a cleanup, a job rotating its files)


def bytes_to_read(entry: FileEntry, previous: EventFileScan | None, verify: bool) -> int:
    """How many bytes ``scan_event_file(f, entry, previous, verify=verify)`` will read at most
    (for progress bars and for choosing between serial and parallel scanning)."""
    if _can_resume(previous, entry, verify):
        assert previous is not None
        return entry.size - previous.scanned_offset
    return entry.size


def scan_many(
    jobs: list[tuple[str, FileEntry, EventFileScan | None]],
    *,
    verify: bool,
    crc32c: Crc32c,
    workers: int,
    mp_context: BaseContext | None = None,
) -> list[EventFileScan | None]:
    """Scan many local files (``(absolute path, entry, previous scan)``), results in input order.

    Uses ``workers`` processes when there is more than ``PARALLEL_MIN_BYTES`` to read and more than
    one job, serially otherwise. ``crc32c`` must be picklable (a module-level function). Files are
    handed out largest first so one big file does not finish last on an otherwise idle pool.

    ``mp_context`` defaults to the platform's (``fork`` on Linux with Python 3.11: workers start in
    milliseconds). A caller with threads of its own may pass ``get_context("forkserver")`` instead
    (about 0.3 s more to start, and the main module must be import-safe). An ``OSError`` opening or
    reading a file propagates, except ``FileNotFoundError``: a file deleted since discovery gives ``None``.
    """
    return largest_first(
        _scan_path,
        [(path, entry, prev, verify, crc32c) for path, entry, prev in jobs],
        [bytes_to_read(entry, prev, verify) for _, entry, prev in jobs],
        workers=workers,
        min_bytes=PARALLEL_MIN_BYTES,
        mp_context=mp_context,
    )
