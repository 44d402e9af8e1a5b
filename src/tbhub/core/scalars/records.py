"""Reading an event file's records as TensorBoard's reader does: CRC-checked payloads, in batches.

Reading stops at the first short record (``truncated``, normal while a job writes) or at the first
bad header or payload CRC (``corrupt``); no buffer larger than the bytes that actually exist is
allocated, whatever a damaged header claims.
"""

from __future__ import annotations

import io
import struct
import sys
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain, takewhile
from typing import BinaryIO

from tbhub.core.ports import Crc32c
from tbhub.core.tfrecord import FOOTER_SIZE, HEADER_SIZE, record_length
from tbhub.core.tfrecord import repeat_period as _period

__all__ = ["READ_SIZE", "Walk", "read_payloads"]

READ_SIZE = 1 << 20
"""Bytes per read. Every byte is parsed, so large reads are cheapest; a record longer than this is
read in one piece of its own size (only once its header shows it lies within the file)."""

_OVERHEAD = HEADER_SIZE + FOOTER_SIZE
_U32 = 0xFFFFFFFF
_MASK_DELTA = 0xA282EAD8


@dataclass(slots=True)
class Walk:
    """Where reading stands: ``offset`` is just past the last complete, valid record."""

    offset: int
    records: int = 0
    truncated: bool = False
    corrupt: bool = False


def read_payloads(f: BinaryIO, walk: Walk, size: int, crc32c: Crc32c) -> Iterator[list[bytes]]:
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
