"""Scalar points from serialized ``tensorboard.Event`` payloads: the ``EventDecoder`` of
``tbhub.core.scalars``, with TensorBoard's protos (upb) as the authority.

Two shapes are read, as TensorBoard's scalars dashboard reads them:

* ``summary.value[].simple_value`` (PyTorch, tensorboardX, TF1, Keras v1);
* TF2 tensor summaries: ``value.tensor`` of a tag whose plugin is ``scalars``, holding one element
  of dtype float, double or half (``float_val``/``double_val``/``half_val`` or ``tensor_content``;
  any shape with one element, like ``make_ndarray(...).item()``). Other dtypes (int32, int64,
  strings, and bfloat16, which TensorBoard cannot convert without TensorFlow) give no point.

Why not just ``Event.FromString``: parsing with upb is quick, but every attribute read through its
Python wrappers costs 0.1-0.5 µs, about 3 µs for a one-scalar event and over 10 µs for a TF1 event
with ten values, and tbhub reads tens of millions of events. Real event files repeat a handful of
byte layouts (same tags, same fields) that differ only in the wall time, the step and the 4 or 8
bytes of each value. So the decoder learns *templates*: the first event of a layout is decoded by
upb, its summary walked to find where each value's bytes lie, and the result checked against upb;
later events whose summary bytes equal the template everywhere except in those value slots are
checked and decoded with one ``struct.unpack_from``. Anything unusual (extra event
fields, histograms, half floats, varint-encoded values, a layout not seen before) goes through upb.
The fast path is exact, not a heuristic: outside the slots the bytes are identical, so the
protobuf structure is identical, and the slots are the raw payloads of fixed-width fields.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any, cast

from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from tensorboard.compat.proto import event_pb2

from tbhub.core.scalars import ScalarPoint, Series

__all__ = ["SCALARS_PLUGIN", "ProtobufDecoder", "tensor_scalar"]

SCALARS_PLUGIN = "scalars"

_DT_FLOAT, _DT_DOUBLE, _DT_HALF = 1, 2, 19

_FLOAT = struct.Struct("<f")
_DOUBLE = struct.Struct("<d")
_HALF = struct.Struct("<e")
_TWO_63 = 1 << 63
_TWO_64 = 1 << 64

_from_string: Callable[[bytes], Any] = event_pb2.Event.FromString


def tensor_scalar(tensor: Any) -> float | None:
    """The value of a ``TensorProto`` holding exactly one float, double or half, else ``None``:
    what ``tensorboard.util.tensor_util.make_ndarray(tensor).item()`` gives for those."""
    for dim in tensor.tensor_shape.dim:
        if dim.size != 1:
            return None  # rank 0, or every dimension 1: exactly one element
    dtype = tensor.dtype
    content = tensor.tensor_content
    if dtype == _DT_FLOAT:
        if content:
            return _FLOAT.unpack(content)[0] if len(content) == 4 else None
        values = tensor.float_val
    elif dtype == _DT_DOUBLE:
        if content:
            return _DOUBLE.unpack(content)[0] if len(content) == 8 else None
        values = tensor.double_val
    elif dtype == _DT_HALF:
        if content:
            return _HALF.unpack(content)[0] if len(content) == 2 else None
        if len(tensor.half_val) != 1:
            return None
        bits = tensor.half_val[0]  # the binary16 bit pattern in an int32 field
        if not 0 <= bits <= 0xFFFF:
            return None
        value: float = _HALF.unpack(bits.to_bytes(2, "little"))[0]
        return value
    else:
        return None
    return float(values[0]) if len(values) == 1 else None


def _decode_payload(payload: bytes, plugins: dict[str, str]) -> list[ScalarPoint]:
    """Points of a serialized ``Event``, all with upb."""
    try:
        event = _from_string(payload)
    except DecodeError:
        return []
    if not event.HasField("summary"):
        return []
    return _decode_with_protobuf(event, plugins)


def _group_points(
    payloads: Sequence[bytes], plugins: dict[str, str], decode: Callable[[bytes, dict[str, str]], list[ScalarPoint]]
) -> list[dict[str, Series]]:
    """One segment with the points of ``payloads`` grouped by tag."""
    series: dict[str, tuple[list[int], list[float], list[float]]] = {}
    for payload in payloads:
        for tag, step, wall_time, value in decode(payload, plugins):
            columns = series.get(tag)
            if columns is None:
                columns = series[tag] = ([], [], [])
            columns[0].append(step)
            columns[1].append(wall_time)
            columns[2].append(value)
    return [dict(series)] if series else []


_Rows = dict["_Template", tuple[tuple[tuple[str, int], ...], list[tuple[tuple[Any, ...], int, float]]]]
"""Per template: (which tag each emitted slot is, ``(tag, slot index)``), and its rows."""


def _segment(rows: _Rows, other: dict[str, tuple[list[int], list[float], list[float]]]) -> dict[str, Series]:
    """Columns from template rows (transposed in C) and from points decoded one by one."""
    segment: dict[str, Series] = dict(other)
    for emitted, layout_rows in rows.values():
        if emitted:
            parts, steps, wall_times = zip(*layout_rows, strict=True)
            columns = list(zip(*parts, strict=True))
            for tag, slot in emitted:
                segment[tag] = (steps, wall_times, columns[2 * slot + 1])
    return segment


_UPB = object()  # the source of points decoded one by one, in decode_batch


def _emitted(layout: _Template, plugins: dict[str, str]) -> tuple[tuple[str, int], ...] | None:
    """Which slots of ``layout`` give points, as ``(tag, slot index)``, if that can no longer change
    for this ``plugins`` (the file's memory only ever grows, first metadata wins); else ``None``.

    Settled once every tag that registers metadata or is a tensor is known: then registering is a
    no-op and whether a tensor is a scalar is fixed. Tags must be distinct (one series per tag).
    """
    if layout.simple_tags is not None:
        return layout.simple_slots
    emitted = []
    for slot, (tag, plugin, is_tensor) in enumerate(layout.values):
        if is_tensor or plugin is not None:
            known = plugins.get(tag)
            if known is None:
                return None
            if is_tensor and known != SCALARS_PLUGIN:
                continue
        emitted.append((tag, slot))
    if len({tag for tag, _ in emitted}) < len(emitted):
        return None
    return tuple(emitted)


def _decode_with_protobuf(event: Any, plugins: dict[str, str]) -> list[ScalarPoint]:
    """Points of a parsed ``Event`` (the authority the fast path is checked against)."""
    points: list[ScalarPoint] = []
    step = event.step
    wall_time = event.wall_time
    for value in event.summary.value:
        kind = value.WhichOneof("value")
        tag = value.tag
        if value.HasField("metadata") and tag not in plugins:
            # First metadata of a tag wins, as in TensorBoard's EventAccumulator.
            plugins[tag] = value.metadata.plugin_data.plugin_name
        if kind == "simple_value":
            points.append((tag, step, wall_time, value.simple_value))
        elif kind == "tensor" and plugins.get(tag) == SCALARS_PLUGIN:
            scalar = tensor_scalar(value.tensor)
            if scalar is not None:
                points.append((tag, step, wall_time, scalar))
    return points


# --- templates --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity: decode_batch keys dicts by it
class _Template:
    """A summary layout of ``size`` bytes: constant bytes except one fixed-width slot per value.

    ``unpack_from(payload, summary_start)`` returns the constant segments and the slot values
    interleaved (``segment, value, segment, ..., value, segment``): a summary of ``size`` bytes
    whose segments equal ``segments`` has this layout, and its values are the odd items. One C call
    both checks and decodes. ``values`` is per value ``(tag, plugin of its metadata or None,
    is_tensor)``; ``simple_tags`` is set when every value is a ``simple_value`` without metadata
    (no plugin bookkeeping needed).
    """

    size: int
    unpack_from: Callable[[bytes, int], tuple[Any, ...]]
    segments: tuple[bytes, ...]
    values: tuple[tuple[str, str | None, bool], ...]
    simple_tags: tuple[str, ...] | None
    simple_slots: tuple[tuple[str, int], ...] | None


def _varint(data: bytes, pos: int) -> tuple[int, int]:
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


def _skip(data: bytes, pos: int, end: int, wire_type: int) -> int:
    """Position after a field's value; IndexError if it is cut off or of an unusable wire type."""
    if wire_type == 0:
        pos = _varint(data, pos)[1]
    elif wire_type == 1:
        pos += 8
    elif wire_type == 2:
        size, pos = _varint(data, pos)
        pos += size
    elif wire_type == 5:
        pos += 4
    else:
        raise IndexError("group or invalid wire type")
    if pos > end:
        raise IndexError("field cut off")
    return pos


def _tensor_slot(data: bytes, pos: int, end: int) -> tuple[int, int] | None:
    """(offset, width) of the only value-carrying field of a ``TensorProto`` in data[pos:end] when
    it is a 4- or 8-byte fixed-width one; ``None`` for anything else."""
    slot: tuple[int, int] | None = None
    while pos < end:
        key, pos = _varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if (number in (1, 3) and wire_type == 0) or (number == 2 and wire_type == 2):
            pos = _skip(data, pos, end, wire_type)  # dtype, version_number, shape: constant bytes
            continue
        if slot is not None:
            return None
        if wire_type == 2 and number in (4, 5, 6):  # tensor_content, packed float_val / double_val
            size, pos = _varint(data, pos)
            if size not in ((4, 8) if number == 4 else (4,) if number == 5 else (8,)):
                return None
            slot = (pos, size)
            pos += size
        elif number == 5 and wire_type == 5:
            slot = (pos, 4)
            pos += 4
        elif number == 6 and wire_type == 1:
            slot = (pos, 8)
            pos += 8
        else:
            return None
    return slot if pos == end else None


def _summary_slots(data: bytes, start: int) -> list[tuple[int, int, bool]] | None:
    """Per ``Summary.value`` in data[start:], (slot offset, slot width, is_tensor), or ``None`` when
    some value is not a fixed-width ``simple_value`` or one-slot tensor."""
    end = len(data)
    slots: list[tuple[int, int, bool]] = []
    pos = start
    try:
        while pos < end:
            key, pos = _varint(data, pos)
            if key != 0x0A:  # Summary has one field: value = 1, length-delimited
                return None
            size, pos = _varint(data, pos)
            value_end = pos + size
            if value_end > end:
                return None
            slot: tuple[int, int, bool] | None = None
            while pos < value_end:
                key, pos = _varint(data, pos)
                number, wire_type = key >> 3, key & 7
                if number in (1, 7, 9) and wire_type == 2:  # tag, node_name, metadata
                    pos = _skip(data, pos, value_end, wire_type)
                elif slot is not None:
                    return None  # a second value field (protobuf would merge or override)
                elif number == 2 and wire_type == 5:  # simple_value
                    slot = (pos, 4, False)
                    pos += 4
                elif number == 8 and wire_type == 2:  # tensor
                    size, pos = _varint(data, pos)
                    tensor = _tensor_slot(data, pos, pos + size)
                    if tensor is None:
                        return None
                    slot = (tensor[0], tensor[1], True)
                    pos += size
                else:
                    return None
            if slot is None or pos != value_end:
                return None
            slots.append(slot)
    except IndexError:
        return None
    return slots


def _same(a: float, b: float) -> bool:
    return a == b or (a != a and b != b)


def _build_template(payload: bytes, start: int, event: Any) -> _Template | None:
    """A template for the summary at payload[start:], checked against upb's ``event``, or None."""
    slots = _summary_slots(payload, start)
    values = list(event.summary.value)
    if not slots or len(slots) != len(values):
        return None
    segments: list[bytes] = []
    fmt = ["<"]
    pos = start
    entries: list[tuple[str, str | None, bool]] = []
    for (offset, width, is_tensor), value in zip(slots, values, strict=True):
        segments.append(payload[pos:offset])
        fmt.append(f"{offset - pos}s" + ("f" if width == 4 else "d"))
        raw = payload[offset : offset + width]
        slot_value = (_FLOAT if width == 4 else _DOUBLE).unpack(raw)[0]
        # The slot must be exactly what upb reads as the value (with the plugin taken as scalars).
        kind = value.WhichOneof("value")
        if is_tensor:
            if kind != "tensor" or not value.tag:
                return None
            expected = tensor_scalar(value.tensor)
        else:
            if kind != "simple_value":
                return None
            expected = value.simple_value
        if expected is None or not _same(expected, slot_value):
            return None
        plugin = value.metadata.plugin_data.plugin_name if value.HasField("metadata") else None
        entries.append((value.tag, plugin, is_tensor))
        pos = offset + width
    segments.append(payload[pos:])
    fmt.append(f"{len(payload) - pos}s")
    layout = struct.Struct("".join(fmt))
    if layout.size != len(payload) - start or layout.unpack_from(payload, start)[::2] != tuple(segments):
        return None
    tags = tuple(tag for tag, _, _ in entries)
    # "Simple": plain simple_values with distinct tags, turned into columns without bookkeeping.
    simple = None if any(p is not None or t for _, p, t in entries) or len(set(tags)) < len(tags) else tags
    simple_slots = tuple((tag, i) for i, tag in enumerate(simple)) if simple is not None else None
    return _Template(layout.size, layout.unpack_from, tuple(segments), tuple(entries), simple, simple_slots)


_MAX_KEYS = 4096  # layouts remembered per decoder; a file has a handful per tag
_MAX_PER_KEY = 8  # layouts per first tag (e.g. with and without metadata)
_MAX_FAILURES = 16  # template attempts per first tag before giving up on it


class ProtobufDecoder:
    """``EventDecoder`` over TensorBoard's ``event_pb2`` (upb), with a template fast path.

    ``templates=False`` decodes every event with upb (the reference the fast path is tested
    against). The decoder caches layouts, not data: one instance may serve any number of files, but
    not several threads at once. It pickles without its cache.
    """

    def __init__(self, *, templates: bool = True) -> None:
        self.templates = templates
        self._layouts: dict[bytes, list[_Template]] = {}
        self._failures: dict[bytes, int] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"templates": self.templates}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(templates=state["templates"])  # type: ignore[misc]

    def decode(self, payload: bytes, plugins: dict[str, str]) -> Sequence[ScalarPoint]:
        """The scalar points of one serialized ``Event`` (see ``tbhub.core.scalars.EventDecoder``)."""
        if not self.templates:
            return _decode_payload(payload, plugins)
        layout, found, step, wall_time = self._lookup(payload, plugins)
        if layout is None:
            return cast(list[ScalarPoint], found)
        tags = layout.simple_tags
        if tags is None:
            return self._apply(layout, found[1::2], step, wall_time, plugins)
        if len(tags) == 1:
            return [(tags[0], step, wall_time, found[1])]
        n = len(tags)
        return list(zip(tags, repeat(step, n), repeat(wall_time, n), found[1::2], strict=True))

    def decode_batch(self, payloads: Sequence[bytes], plugins: dict[str, str]) -> list[dict[str, Series]]:
        """The points of ``payloads`` as column segments (see ``tbhub.core.scalars.BatchEventDecoder``).

        Events matching a template without plugin bookkeeping are not turned into points at all:
        their unpacked rows are transposed into columns in C at the end. A segment ends when a tag
        would get points from two sources (two templates, or a template and upb), which keeps each
        tag's points in file order; in practice that happens at most once per tag and file.
        """
        if not self.templates:
            return _group_points(payloads, plugins, _decode_payload)
        segments: list[dict[str, Series]] = []
        rows: _Rows = {}
        other: dict[str, tuple[list[int], list[float], list[float]]] = {}
        owners: dict[str, object] = {}  # tag -> its source in this segment: a template or _UPB
        lookup = self._lookup
        for payload in payloads:
            layout, found, step, wall_time = lookup(payload, plugins)
            if layout is not None:
                entry = rows.get(layout)
                if entry is None:
                    emitted = _emitted(layout, plugins)
                    if emitted is not None:
                        if any(owners.get(tag, layout) is not layout for tag, _ in emitted):
                            segments.append(_segment(rows, other))
                            rows, other, owners = {}, {}, {}
                        for tag, _ in emitted:
                            owners[tag] = layout
                        entry = rows[layout] = (emitted, [])
                if entry is not None:
                    entry[1].append((found, step, wall_time))
                    continue
                found = self._apply(layout, found[1::2], step, wall_time, plugins)
            for tag, point_step, point_wall_time, value in found:
                owner = owners.get(tag)
                if owner is not _UPB:
                    if owner is not None:
                        segments.append(_segment(rows, other))
                        rows, other, owners = {}, {}, {}
                    owners[tag] = _UPB
                    other[tag] = ([], [], [])
                series = other[tag]
                series[0].append(point_step)
                series[1].append(point_wall_time)
                series[2].append(value)
        if rows or other:
            segments.append(_segment(rows, other))
        return segments

    def _lookup(self, payload: bytes, plugins: dict[str, str]) -> tuple[_Template | None, Any, int, float]:
        """``(template, unpacked parts, step, wall_time)`` when a learnt template matches the event;
        ``(None, points, 0, 0.0)`` otherwise, the points decoded by upb (learning the layout)."""
        # The layout every writer uses for a summary event: wall_time (field 1, fixed64), step
        # (field 2, varint; both omitted when 0), summary (field 5) running to the end. Varints
        # of up to 3 bytes are decoded inline: a call costs more than the rest of this block.
        try:
            if payload[0] == 0x09:
                wall_time: float = _DOUBLE.unpack_from(payload, 1)[0]
                i = 9
            else:
                wall_time = 0.0
                i = 0
            byte = payload[i]
            if byte == 0x10:
                byte = payload[i + 1]
                if byte < 0x80:
                    step = byte
                    i += 2
                else:
                    high = payload[i + 2]
                    if high < 0x80:
                        step = (byte & 0x7F) | high << 7
                        i += 3
                    elif payload[i + 3] < 0x80:
                        step = (byte & 0x7F) | (high & 0x7F) << 7 | payload[i + 3] << 14
                        i += 4
                    else:
                        step, i = _varint(payload, i + 1)
                        step &= _TWO_64 - 1
                        if step >= _TWO_63:
                            step -= _TWO_64
                byte = payload[i]
            else:
                step = 0
            if byte == 0x2A:
                size = payload[i + 1]
                if size < 0x80:
                    start = i + 2
                elif payload[i + 2] < 0x80:
                    size = (size & 0x7F) | payload[i + 2] << 7
                    start = i + 3
                else:
                    size, start = _varint(payload, i + 1)
                # Keyed by the first value's header and tag bytes: never part of a slot.
                if (
                    start + size == len(payload)
                    and payload[start] == 0x0A
                    and payload[start + 1] < 0x80
                    and payload[start + 2] == 0x0A
                ):
                    key = payload[start : start + 4 + payload[start + 3]]
                    layouts = self._layouts.get(key)
                    if layouts is not None:
                        for layout in layouts:
                            if layout.size == size:
                                parts = layout.unpack_from(payload, start)
                                if parts[::2] == layout.segments:
                                    return layout, parts, step, wall_time
                    return None, self._learn(payload, start, key, step, wall_time, plugins), 0, 0.0
        except (IndexError, struct.error):  # cut short: upb decides what it is
            pass
        return None, _decode_payload(payload, plugins), 0, 0.0

    @staticmethod
    def _apply(
        layout: _Template, values: tuple[float, ...], step: int, wall_time: float, plugins: dict[str, str]
    ) -> list[ScalarPoint]:
        points: list[ScalarPoint] = []
        for (tag, plugin, is_tensor), value in zip(layout.values, values, strict=True):
            if plugin is not None and tag not in plugins:
                plugins[tag] = plugin
            if not is_tensor or plugins.get(tag) == SCALARS_PLUGIN:
                points.append((tag, step, wall_time, value))
        return points

    def _learn(
        self, payload: bytes, start: int, key: bytes, step: int, wall_time: float, plugins: dict[str, str]
    ) -> list[ScalarPoint]:
        """Decode with upb and try to learn the event's layout."""
        try:
            event = _from_string(payload)
        except DecodeError:
            return []
        points = _decode_with_protobuf(event, plugins)
        if self._failures.get(key, 0) >= _MAX_FAILURES:
            return points
        template = None
        if event.step == step and _same(event.wall_time, wall_time):
            template = _build_template(payload, start, event)
        if template is None:
            self._failures[key] = self._failures.get(key, 0) + 1
            return points
        if len(self._layouts) >= _MAX_KEYS:
            self._layouts.clear()
            self._failures.clear()
        layouts = self._layouts.setdefault(key, [])
        if len(layouts) < _MAX_PER_KEY:
            layouts.append(template)
        return points
