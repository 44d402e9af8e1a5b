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
later events whose summary bytes equal the template everywhere except in those value slots (one
``re.fullmatch``) are decoded with one ``struct.unpack_from``. Anything unusual (extra event
fields, histograms, half floats, varint-encoded values, a layout not seen before) goes through upb.
The fast path is exact, not a heuristic: outside the slots the bytes are identical, so the
protobuf structure is identical, and the slots are the raw payloads of fixed-width fields.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from tensorboard.compat.proto import event_pb2

from tbhub.core.scalars import ScalarPoint

__all__ = ["SCALARS_PLUGIN", "ProtobufDecoder", "tensor_scalar"]

SCALARS_PLUGIN = "scalars"

_DT_FLOAT, _DT_DOUBLE, _DT_HALF = 1, 2, 19

_EMPTY: Sequence[ScalarPoint] = ()
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


@dataclass(frozen=True, slots=True)
class _Template:
    """A summary layout: constant bytes everywhere except one fixed-width slot per value.

    ``pattern`` full-matches the summary bytes; ``unpack_from(payload, summary_start + offset)``
    gives the values in order. ``values`` is per value ``(tag, plugin of its metadata or None,
    is_tensor)``; ``simple_tags`` is set when every value is a ``simple_value`` without metadata
    (no plugin bookkeeping needed).
    """

    pattern: re.Pattern[bytes]
    unpack_from: Callable[[bytes, int], tuple[float, ...]]
    offset: int
    values: tuple[tuple[str, str | None, bool], ...]
    simple_tags: tuple[str, ...] | None


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
    parts: list[bytes] = []
    fmt = ["<"]
    pos = start
    first = slots[0][0] - start
    entries: list[tuple[str, str | None, bool]] = []
    for (offset, width, is_tensor), value in zip(slots, values, strict=True):
        parts.append(re.escape(payload[pos:offset]))
        parts.append(b".{%d}" % width)
        if entries and offset > pos:
            fmt.append(f"{offset - pos}x")  # constant bytes between two slots
        fmt.append("f" if width == 4 else "d")
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
    parts.append(re.escape(payload[pos:]))
    pattern = re.compile(b"".join(parts), re.DOTALL)
    if pattern.fullmatch(payload, start) is None:
        return None
    simple = None if any(p is not None or t for _, p, t in entries) else tuple(tag for tag, _, _ in entries)
    return _Template(pattern, struct.Struct("".join(fmt)).unpack_from, first, tuple(entries), simple)


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
        if self.templates:
            # The layout every writer uses for a summary event: wall_time (field 1, fixed64), step
            # (field 2, varint; both omitted when 0), summary (field 5) running to the end.
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
                                if layout.pattern.fullmatch(payload, start) is not None:
                                    values = layout.unpack_from(payload, start + layout.offset)
                                    tags = layout.simple_tags
                                    if tags is not None:
                                        if len(tags) == 1:
                                            return [(tags[0], step, wall_time, values[0])]
                                        return [(tag, step, wall_time, v) for tag, v in zip(tags, values, strict=True)]
                                    return self._apply(layout, values, step, wall_time, plugins)
                        return self._learn(payload, start, key, step, wall_time, plugins)
            except (IndexError, struct.error):  # cut short: upb decides what it is
                pass
        try:
            event = _from_string(payload)
        except DecodeError:
            return _EMPTY
        if not event.HasField("summary"):
            return _EMPTY
        return _decode_with_protobuf(event, plugins)

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
    ) -> Sequence[ScalarPoint]:
        """Decode with upb and try to learn the event's layout."""
        try:
            event = _from_string(payload)
        except DecodeError:
            return _EMPTY
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
