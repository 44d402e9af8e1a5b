"""Columns of the events one template matched, cut out of their joined payloads in C.

``decode_batch`` keeps the payloads a template matched (bytes: nothing for the garbage collector to
track, where a tuple of fields per event made a process with a large heap spend most of a read in
full collections) and turns them into columns when the segment ends: all the payloads of a template
have its length, so laid end to end field ``i`` of event ``k`` is at ``k * length + offset_i``, and
one ``struct`` that covers an event (or several: a strided slice) reads a field of every event in
one ``iter_unpack`` call.

``Column`` reads its values when they are indexed or sliced: the series reader keeps about 1,000 of a
series' points (``core.series.Thinner`` slices with a growing stride), so only those are unpacked.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any, SupportsIndex, overload

from tbhub.adapters.scalar_decoder.templates import decode_steps

__all__ = ["Column"]

_WIDTH = {"H": 2, "I": 4, "Q": 8, "f": 4, "d": 8}
_GROUP = 64  # events per struct in a dense read: one tuple of 64 values per call, not 64 of one
_STRUCTS: dict[tuple[int, str, int, int], struct.Struct] = {}
_first = itemgetter(0)


def _struct(offset: int, code: str, stride: int, repeat: int) -> struct.Struct:
    """``repeat`` times: skip ``offset`` bytes, read one ``code``, skip to the end of ``stride`` bytes."""
    key = (offset, code, stride, repeat)
    found = _STRUCTS.get(key)
    if found is None:
        if len(_STRUCTS) > 4096:  # bounded: a long-lived process sees many layouts and strides
            _STRUCTS.clear()
        found = _STRUCTS[key] = struct.Struct("<" + f"{offset}x{code}{stride - offset - _WIDTH[code]}x" * repeat)
    return found


class Column(Sequence[Any]):
    """One field of ``count`` events of ``length`` bytes laid end to end in ``data``, read on access.

    ``code`` is the field's ``struct`` code at ``offset``; with ``step_width`` (> 0) the field is a
    step int whose low bytes are the step's varint (see ``Template``), decoded to the step. Read-only:
    indexing and slicing return what ``list(zip(*rows))[field]`` held (steps decoded), as a list for
    a slice.
    """

    __slots__ = ("_code", "_count", "_data", "_length", "_offset", "_step_width")

    def __init__(self, data: bytes, count: int, length: int, offset: int, code: str, step_width: int = 0) -> None:
        self._data, self._count, self._length = data, count, length
        self._offset, self._code, self._step_width = offset, code, step_width

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: SupportsIndex) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...

    def __getitem__(self, index: SupportsIndex | slice) -> Any:
        if isinstance(index, slice):
            start, stop, step = index.indices(self._count)
            return self._read(start, len(range(start, stop, step)), step)
        i = index.__index__()
        if i < 0:
            i += self._count
        if not 0 <= i < self._count:
            raise IndexError("column index out of range")
        return self._read(i, 1, 1)[0]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._read(0, self._count, 1))

    def _read(self, start: int, n: int, step: int) -> list[Any]:
        """The values of events ``start``, ``start + step``, ... (``n`` of them)."""
        if n <= 0:
            return []
        if step < 0:  # reversed slices: rare, one by one
            return [self._read(start + k * step, 1, 1)[0] for k in range(n)]
        length, offset, code = self._length, self._offset, self._code
        stride = step * length
        base = start * length
        view = memoryview(self._data)
        # The last event may end the buffer before a whole stride does: it is read on its own.
        head = n - 1
        values: list[Any]
        if step == 1 and head >= _GROUP:
            groups = head // _GROUP
            end = base + groups * _GROUP * stride
            values = list(chain.from_iterable(_struct(offset, code, stride, _GROUP).iter_unpack(view[base:end])))
            values.extend(map(_first, _struct(offset, code, stride, 1).iter_unpack(view[end : base + head * stride])))
        elif head:
            values = list(map(_first, _struct(offset, code, stride, 1).iter_unpack(view[base : base + head * stride])))
        else:
            values = []
        values.append(_struct(offset, code, length, 1).unpack_from(self._data, base + head * stride)[0])
        return decode_steps(values, self._step_width) if self._step_width else values

