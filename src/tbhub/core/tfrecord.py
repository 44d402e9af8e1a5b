"""TFRecord framing, masked CRC-32C and the few ``Event`` fields the scanner reads.

A TFRecord file is a sequence of records, each framed as (little-endian)::

    uint64 length | uint32 masked_crc32c(length bytes) | data[length] | uint32 masked_crc32c(data)

TensorBoard's reader stops at the first short record (normal while a job is still writing) or at the
first record whose CRC does not match.

This module is standard library only: the fast C CRC-32C lives in ``tbhub.adapters.crc`` and is
passed in wherever a ``Crc32c`` is accepted; ``crc32c_py`` is the pure-Python fallback.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from tbhub.core.ports import Crc32c

__all__ = [
    "FOOTER_SIZE",
    "HEADER_SIZE",
    "EventHead",
    "crc32c_py",
    "frame_record",
    "mask_crc",
    "masked_crc32c",
    "parse_event_head",
    "read_varint",
    "record_length",
    "repeat_period",
    "skip_field",
]

HEADER_SIZE = 12
"""Bytes before the payload: the uint64 length and its uint32 masked CRC."""

FOOTER_SIZE = 4
"""Bytes after the payload: its uint32 masked CRC."""

_MASK_DELTA = 0xA282EAD8
_U32 = 0xFFFFFFFF
_CASTAGNOLI_REVERSED = 0x82F63B78


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _CASTAGNOLI_REVERSED if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _make_table()


def crc32c_py(data: bytes, /) -> int:
    """CRC-32C (Castagnoli) of ``data``, unmasked, in pure Python.

    About 10 MB/s: fine for 8-byte record headers (which the scanner caches anyway), far too slow
    for payloads; inject ``tbhub.adapters.crc.crc32c`` for those.
    """
    table = _TABLE
    crc = _U32
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ _U32


def mask_crc(crc: int) -> int:
    """TFRecord's CRC mask: rotate right by 15 bits and add a constant, modulo 2**32.

    Masking exists because computing the CRC of a string that itself contains CRCs is weak.
    """
    return ((((crc >> 15) | (crc << 17)) & _U32) + _MASK_DELTA) & _U32


def masked_crc32c(data: bytes, crc32c: Crc32c = crc32c_py) -> int:
    """The masked CRC-32C of ``data`` as stored in TFRecord headers and footers."""
    return mask_crc(crc32c(data))


_LENGTH = struct.Struct("<Q")
_CRC = struct.Struct("<I")


def record_length(header: bytes, crc32c: Crc32c = crc32c_py) -> int | None:
    """The payload length declared by a 12-byte record header, or ``None`` if its CRC is wrong.

    The length is returned as stored: it can be absurd (up to 2**64 - 1) even with a valid CRC,
    so callers must compare it with the bytes actually available before reading anything.
    """
    if len(header) != HEADER_SIZE:
        raise ValueError(f"a record header is {HEADER_SIZE} bytes, got {len(header)}")
    length_bytes = header[:8]
    if masked_crc32c(length_bytes, crc32c) != _CRC.unpack_from(header, 8)[0]:
        return None
    length: int = _LENGTH.unpack(length_bytes)[0]
    return length


def frame_record(data: bytes, crc32c: Crc32c = crc32c_py) -> bytes:
    """``data`` framed as one TFRecord (header, payload, footer)."""
    length = _LENGTH.pack(len(data))
    return b"".join(
        (
            length,
            _CRC.pack(masked_crc32c(length, crc32c)),
            data,
            _CRC.pack(masked_crc32c(data, crc32c)),
        )
    )


class EventHead(NamedTuple):
    """The fields of a ``tensorboard.Event`` the scanner keeps.

    Proto3 defaults apply: a missing ``wall_time`` is 0.0 and a missing ``step`` is 0.
    ``file_version`` is ``None`` unless the event is a file-version record (``what`` = field 3).
    """

    wall_time: float
    step: int
    file_version: str | None


_DOUBLE = struct.Struct("<d")
_TWO_64 = 1 << 64
_TWO_63 = 1 << 63


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """Decode a base-128 varint at ``pos``; returns (value, next position). Raises IndexError on
    truncated or over-long input (protobuf readers treat both as a message cut short)."""
    result = 0
    shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise IndexError("varint longer than 10 bytes")


def skip_field(data: bytes, pos: int, wire_type: int) -> int:
    """The position after a field's value of ``wire_type`` that starts at ``pos`` (it may lie past the
    end of ``data``: the caller checks). Raises IndexError for groups and invalid wire types (3, 4, 6,
    7) and for a varint cut off."""
    if wire_type == 0:
        return read_varint(data, pos)[1]
    if wire_type == 1:
        return pos + 8
    if wire_type == 2:
        size, pos = read_varint(data, pos)
        return pos + size
    if wire_type == 5:
        return pos + 4
    raise IndexError("group or invalid wire type")


def parse_event_head(data: bytes, *, complete: bool = True) -> EventHead | None:
    """Read ``wall_time`` (field 1, double), ``step`` (field 2, int64) and ``file_version``
    (field 3, string) from a serialized ``Event``, skipping every other field.

    Returns ``None`` when ``data`` is not a well-formed protobuf message (a record whose payload is
    damaged but whose CRC was not checked). With ``complete=False`` ``data`` is a prefix of the
    payload: parsing stops quietly at the first field cut off by the end of the prefix.
    """
    wall_time = 0.0
    step = 0
    file_version: str | None = None
    pos = 0
    end = len(data)
    try:
        while pos < end:
            key, pos = read_varint(data, pos)
            number, wire_type = key >> 3, key & 7
            if number == 0:
                return None
            if wire_type == 0:
                value, pos = read_varint(data, pos)
                if number == 2:
                    value &= _TWO_64 - 1
                    step = value - _TWO_64 if value >= _TWO_63 else value
            elif wire_type == 1:
                if pos + 8 > end:
                    raise IndexError("fixed64 cut off")
                if number == 1:
                    wall_time = _DOUBLE.unpack_from(data, pos)[0]
                pos += 8
            elif wire_type == 2:
                size, pos = read_varint(data, pos)
                if number == 3:
                    if pos + size > end:
                        raise IndexError("string cut off")
                    file_version = data[pos : pos + size].decode("utf-8", "replace")
                pos += size
                if pos > end and complete:
                    return None
            elif wire_type == 5:
                pos += 4
                if pos > end and complete:
                    return None
            else:
                # Groups (3, 4) are not used by Event; 6 and 7 are invalid.
                return None
    except (IndexError, ValueError):
        if complete:
            return None
    return EventHead(wall_time, step, file_version)


def repeat_period(seen: list[bytes]) -> int:
    """The smallest p such that the last p headers repeat the p before them, or 0.

    Candidates are the distances back to earlier occurrences of the last header (at most 4 tried).
    """
    k = len(seen)
    rev = seen[::-1]
    last = rev[0]
    i = 0
    for _ in range(4):
        try:
            i = rev.index(last, i + 1)
        except ValueError:
            return 0
        if 2 * i > k:
            return 0
        if rev[:i] == rev[i : 2 * i]:
            return i
    return 0
