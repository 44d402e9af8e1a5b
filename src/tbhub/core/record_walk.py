"""Walking an event file record by record, header by header: the scanner's machinery.

``Walk`` is where a scan stands (offset, records, the first event's head, damage); ``slow_step``
reads one record (its payload too, when verifying or when the first step is still unknown) and
``skim`` jumps from header to header, reading in growing windows while records are small and seeking
over large payloads. Nothing here parses more than an event's first bytes.

``Walk.max_step`` is the highest step a scan saw, file versions excluded. Records read one by one
(the first ones, all of them when verifying) each count. ``skim`` reads the step of the last record
of each probe and of each run of records whose headers repeat with one period: a training loop's
steps do not go down, so that record carries the highest step so far. When it does not (its step is
lower than the highest before it, as tensorboardX's ``add_text`` at step 0 after training is, or
lower than the probe's first record's), every record of the probe is read (``_probe_high``). So a
run's last step is the step its curves end at, not the step of its last record; steps that go down
and up again *within* a probe or a periodic run are the blind spot. A record whose first bytes lie
beyond the read buffer (a large image or histogram payload being seeked over) is not looked at.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from itertools import takewhile
from typing import BinaryIO

from tbhub.core.models import CorruptRecord
from tbhub.core.ports import Crc32c
from tbhub.core.tfrecord import (
    FOOTER_SIZE,
    HEADER_SIZE,
    EventHead,
    masked_crc32c,
    parse_event_head,
    read_varint,
    record_length,
)
from tbhub.core.tfrecord import (
    repeat_period as _period,
)

__all__ = [
    "BAD_HEADER_CRC",
    "BAD_PAYLOAD_CRC",
    "HEAD_PARSE_BYTES",
    "OVERHEAD",
    "READ_SIZE",
    "Reader",
    "Walk",
    "skim",
    "slow_step",
    "step_at",
]

BAD_HEADER_CRC = "bad header crc"
BAD_PAYLOAD_CRC = "bad payload crc"

READ_SIZE = 64 * 1024
"""Bytes per read. Small enough that files with large payloads (images, histograms) are mostly
seeked over rather than read; measured to halve the bytes read compared with 256 KiB. While records
are small (every byte is needed anyway) the header-only scan doubles its reads up to ``_READ_MAX``."""

HEAD_PARSE_BYTES = 4096
"""How much of a payload is read to find ``wall_time``/``step``/``file_version``: serializers write
fields in number order, so these three (fields 1-3) sit at the very start of an event."""
OVERHEAD = HEADER_SIZE + FOOTER_SIZE



class Reader:
    """Random reads through one ``READ_SIZE`` buffer, never past ``limit`` (the scan's snapshot of
    the file size, lowered when the file turns out shorter)."""

    __slots__ = ("_base", "_buf", "_f", "_pos", "bytes_read", "limit")

    def __init__(self, f: BinaryIO, size: int) -> None:
        self._f = f
        # One lseek tells where the file really ends, so "does this record end before EOF" is exact
        # even when the file shrank after discovery.
        end = f.seek(0, io.SEEK_END)
        self.limit = min(size, end)
        self._buf = b""
        self._base = 0  # file offset of _buf[0]
        self._pos = end  # the file's current position
        self.bytes_read = 0

    def raw(self, pos: int, n: int) -> bytes:
        """Up to ``n`` bytes at ``pos`` straight from the file (fewer only at the limit / EOF)."""
        n = min(n, self.limit - pos)
        if n <= 0:
            return b""
        if self._pos != pos:
            self._f.seek(pos)
        data = self._f.read(n)
        self.bytes_read += len(data)
        self._pos = pos + len(data)
        if len(data) < n:
            # The file is shorter than discovery said (replaced or truncated meanwhile).
            self.limit = pos + len(data)
        return data

    def read(self, pos: int, n: int) -> bytes:
        """Up to ``n`` bytes at ``pos`` (fewer only at the limit / EOF), buffered."""
        # Clamped first, so that asking at the end of the file keeps the buffer (which usually
        # still holds the last record, read again at the end of the scan).
        n = min(n, self.limit - pos)
        if n <= 0:
            return b""
        rel = pos - self._base
        buf = self._buf
        if rel >= 0 and rel + n <= len(buf):
            return buf[rel : rel + n]
        if n > READ_SIZE:
            return self.raw(pos, n)
        self._buf = buf = self.raw(pos, READ_SIZE)
        self._base = pos
        return buf[:n]

    def window(self, pos: int, size: int) -> tuple[bytes, int]:
        """A buffer holding at least a header's worth of bytes from ``pos`` on (or all that is left),
        and the offset of ``pos`` within it; a new buffer is ``size`` bytes."""
        rel = pos - self._base
        if rel < 0 or rel + HEADER_SIZE > len(self._buf):
            self._buf = self.raw(pos, size)
            self._base = pos
            rel = 0
        return self._buf, rel


@dataclass(slots=True)
class Walk:
    """The mutable state of one scan."""

    pos: int
    records: int = 0
    last: int = -1  # offset of the last complete record seen, -1 if none in this scan
    truncated: bool = False
    corrupt: CorruptRecord | None = None
    first: EventHead | None = None  # the first record, if this scan saw it
    first_step: int | None = None
    max_step: int | None = None  # highest step seen (see the module docstring), file versions excluded
    done: bool = False


def _header_size(
    header: bytes, cache: dict[bytes, int], crc32c: Crc32c
) -> int | None:
    """Total record size (header + payload + footer) for a 12-byte header, or None if its CRC is bad."""
    size = cache.get(header)
    if size is None:
        length = record_length(header, crc32c)
        if length is None:
            return None
        size = cache[header] = length + OVERHEAD
    return size


def slow_step(
    walk: Walk,
    reader: Reader,
    cache: dict[bytes, int],
    crc32c: Crc32c,
    verify: bool,
    parse: bool,
) -> None:
    """Consume one record at ``walk.pos``, reading its payload (to verify and/or parse it)."""
    pos = walk.pos
    header = reader.read(pos, HEADER_SIZE)
    if len(header) < HEADER_SIZE:
        walk.done = True
        walk.truncated = len(header) > 0
        return
    size = _header_size(header, cache, crc32c)
    if size is None:
        walk.done = True
        walk.corrupt = CorruptRecord(pos, BAD_HEADER_CRC)
        return
    if pos + size > reader.limit:
        # Also catches absurd lengths (a valid CRC over 2**62): nothing is read or allocated.
        walk.done = True
        walk.truncated = True
        return
    length = size - OVERHEAD
    if verify:
        body = reader.read(pos + HEADER_SIZE, length + FOOTER_SIZE)
        if len(body) < length + FOOTER_SIZE:
            walk.done = True
            walk.truncated = True
            return
        payload = body[:length]
        if masked_crc32c(payload, crc32c) != int.from_bytes(body[length:], "little"):
            walk.done = True
            walk.corrupt = CorruptRecord(pos, BAD_PAYLOAD_CRC)
            return
        if parse:
            _note_head(walk, parse_event_head(payload))
        else:
            step = step_at(payload, 0)
            if step is not None and (walk.max_step is None or step > walk.max_step):
                walk.max_step = step
    elif parse:
        n = min(length, HEAD_PARSE_BYTES)
        _note_head(walk, parse_event_head(reader.read(pos + HEADER_SIZE, n), complete=n == length))
    walk.records += 1
    walk.last = pos
    walk.pos = pos + size


def _note_head(walk: Walk, head: EventHead | None) -> None:
    if walk.first is None and walk.records == 0:
        # The very first record this scan saw; the caller decides whether it is the file's first.
        walk.first = head if head is not None else EventHead(float("nan"), 0, None)
    if head is not None and head.file_version is None:
        if walk.first_step is None:
            walk.first_step = head.step
        if walk.max_step is None or head.step > walk.max_step:
            walk.max_step = head.step


_TWO_63 = 1 << 63
_TWO_64 = 1 << 64


def step_at(buf: bytes, p: int) -> int | None:
    """The step of the event whose payload starts at ``buf[p]``, read from its first bytes; ``None``
    when they lie beyond ``buf`` or are not an event's.

    Serializers write fields in number order: ``wall_time`` (field 1, fixed64) if not 0, then
    ``step`` (field 2, varint) if not 0, then the rest (field 3 and up: the step is then 0).
    """
    try:
        if buf[p] == 0x09:
            p += 9
        key = buf[p]
        if key != 0x10:
            # Fields 3 to 10 of an Event are all length-delimited (file_version ... source_metadata).
            return 0 if key & 7 == 2 and 0x1A <= key <= 0x52 else None
        byte = buf[p + 1]
        if byte < 0x80:
            return byte
        high = buf[p + 2]
        if high < 0x80:
            return (byte & 0x7F) | high << 7
        top = buf[p + 3]
        if top < 0x80:
            return (byte & 0x7F) | (high & 0x7F) << 7 | top << 14
        value, _ = read_varint(buf, p + 1)
    except IndexError:
        return None
    value &= _TWO_64 - 1
    return value - _TWO_64 if value >= _TWO_63 else value


def skim(walk: Walk, reader: Reader, cache: dict[bytes, int], crc32c: Crc32c) -> None:
    """Count records from ``walk.pos`` to the end, reading only headers. This is the hot loop.

    Headers are cut out of one buffer by slicing; ``cache`` maps each distinct 12-byte header to its
    record size, so a header's CRC is checked only the first time it is seen (a file holds few
    distinct lengths). A payload that ends beyond the buffer is seeked over.

    Records are read in *probes* of a few headers. Event files are very regular (every step logs the
    same tags, and a scalar event's size depends only on its tag and the step's varint length), so
    when the headers of a probe repeat with some period, one ``struct`` unpacks the same-shaped
    headers of all following periods in the buffer at once and ``takewhile`` compares them in C:
    every record is still matched, header bytes included, against an already-checked header, but
    the Python loop runs once per probe instead of once per record (about 3x faster on real files).
    A probe that finds no period doubles the next probe, so irregular files cost little extra.
    """
    pos = walk.pos
    records = 0
    cache_get = cache.get
    probe = _PROBE_MIN
    read_size = READ_SIZE
    high = walk.max_step
    while True:
        if reader.limit - pos < HEADER_SIZE:
            # Fewer than 12 bytes left: a clean end, or a record cut inside its header.
            walk.truncated = pos < reader.limit
            break
        buf, rel = reader.window(pos, read_size)
        blen = len(buf)
        end = blen - HEADER_SIZE
        if rel > end:
            # The file shrank while being read.
            walk.truncated = rel < blen
            break
        start = rel
        size = 0
        ends = reader.limit - pos + start  # the end of the file, as an index into buf
        while rel <= end:
            seen: list[bytes] = []
            note = seen.append
            k = 0
            begin = rel
            while rel <= end and k < probe:
                header = buf[rel : rel + 12]
                size = cache_get(header)  # type: ignore[assignment]
                if size is None:
                    checked = _header_size(header, cache, crc32c)
                    if checked is None:
                        walk.corrupt = CorruptRecord(pos + rel - start, BAD_HEADER_CRC)
                        if rel > start:
                            walk.last = pos + _record_before(buf, start, rel, cache) - start
                        walk.pos = pos + rel - start
                        walk.records += records + k
                        walk.max_step = _probe_high(buf, rel, seen, cache, ends, high)
                        return
                    size = checked
                rel += size
                k += 1
                note(header)
            if k:
                step = step_at(buf, rel - size + 12) if rel <= ends else None
                first = step_at(buf, begin + 12) if k > 1 else step
                if step is None or first is None or step < first or (high is not None and step < high):
                    high = _probe_high(buf, rel, seen, cache, ends, high)
                elif high is None or step > high:
                    high = step
            records += k
            if k < probe:
                break
            period = _period(seen)
            if not period:
                probe = min(probe * 2, _PROBE_MAX)
                continue
            # Short periods are unpacked several at a time: the per-tuple work, not the per-header
            # work, dominates (a period of 1 costs 3.5x more per record than a unit of 8).
            unit = period * -(-_UNIT_MIN // period)
            pattern = tuple(seen[k - period :]) * (unit // period)
            sizes = tuple(cache[h] for h in pattern)
            shape = _shape(sizes)
            stride = shape.size
            n = (blen - rel) // stride  # whole units left in the buffer
            if n < 2:
                continue
            units = shape.iter_unpack(memoryview(buf)[rel : rel + n * stride])
            # Counted without keeping the tuples: a list of them would feed the cyclic GC, whose
            # full collections in a big process (the hub) made this 3x slower.
            matched = sum(map(bool, takewhile(pattern.__eq__, units)))
            if matched:
                rel += matched * stride
                records += matched * unit
                size = sizes[-1]
                step = step_at(buf, rel - size + 12)  # the last of the run: see the module docstring
                if step is not None and (high is None or step > high):
                    high = step
                probe = _PROBE_MIN
            else:
                probe = min(probe * 2, _PROBE_MAX)
        # Every header up to here was whole in the buffer and valid; the last record may still end
        # past the end of the file (a record being written, or an absurd length).
        last = pos + rel - size - start
        next_pos = pos + rel - start
        if next_pos > reader.limit:
            records -= 1
            walk.truncated = True
            if last > pos:
                walk.last = pos + _record_before(buf, start, last - pos + start, cache) - start
            pos = last
            break
        walk.last = last
        # Reads grow while records are small (the whole buffer was needed anyway) and drop back
        # as soon as a payload is skipped, so large payloads are still seeked over, not read.
        skipped = next_pos - (pos - start + blen)
        read_size = READ_SIZE if skipped > _SKIP else min(read_size * 2, _READ_MAX)
        pos = next_pos
    walk.pos = pos
    walk.records += records
    walk.max_step = high


_PROBE_MIN = 8
_UNIT_MIN = 8
_PROBE_MAX = 1024
_READ_MAX = 256 * 1024
_SKIP = 4096
_SHAPES: dict[tuple[int, ...], struct.Struct] = {}


def _shape(sizes: tuple[int, ...]) -> struct.Struct:
    """A ``Struct`` that unpacks the headers of one period of records with these sizes."""
    shape = _SHAPES.get(sizes)
    if shape is None:
        if len(_SHAPES) > 4096:  # bounded: a long-lived hub sees many files
            _SHAPES.clear()
        shape = _SHAPES[sizes] = struct.Struct("<" + "".join(f"12s{n - 12}x" for n in sizes))
    return shape


def _probe_high(
    buf: bytes, rel: int, seen: list[bytes], cache: dict[bytes, int], ends: int, high: int | None
) -> int | None:
    """``high`` raised to the highest step among the records of a probe (``seen``, their headers, the
    last ending at ``buf[rel]``), each read; a record ending past ``ends`` (being written) is left out.

    The rare path: a probe's last record normally carries its highest step (see the module docstring);
    this runs when it does not (its step went down: text logged after training) or cannot be read."""
    for header in reversed(seen):
        rel -= cache[header]
        if rel + cache[header] <= ends:
            step = step_at(buf, rel + HEADER_SIZE)
            if step is not None and (high is None or step > high):
                high = step
    return high


def _record_before(buf: bytes, rel: int, stop: int, cache: dict[bytes, int]) -> int:
    """Index in ``buf`` of the record that ends at index ``stop``, walking the (already validated)
    headers from ``rel``: rare error paths do this rather than tracking it in the hot loop."""
    last = rel
    while rel < stop:
        last = rel
        rel += cache[buf[rel : rel + HEADER_SIZE]]
    return last
