"""Scalar points from serialized ``tensorboard.Event`` payloads: the ``EventDecoder`` (and
``BatchEventDecoder``) of ``tbhub.core.scalars``, with TensorBoard's protos (upb) as the authority.

Two shapes are read, as TensorBoard's scalars dashboard reads them:

* ``summary.value[].simple_value`` (PyTorch, tensorboardX, TF1, Keras v1);
* TF2 tensor summaries: ``value.tensor`` of a tag whose plugin is ``scalars``, holding one element
  of dtype float, double or half (``float_val``/``double_val``/``half_val`` or ``tensor_content``;
  any shape with one element, like ``make_ndarray(...).item()``). Other dtypes (int32, int64,
  strings, and bfloat16, which TensorBoard cannot convert without TensorFlow) give no point.

Why not just ``Event.FromString``: parsing with upb is quick, but every attribute read through its
Python wrappers costs 0.1-0.5 µs: about 3 µs for a one-scalar event and over 10 µs for a TF1 event
with ten values, and tbhub reads tens of millions of events. Real event files repeat a handful of
byte layouts (same tags, same fields, same varint lengths) that differ only in the bytes of the
wall time, the step and each value. So the decoder learns *templates*: the first event of a layout
is decoded by upb, walked to find where those bytes lie, and the template is checked against upb's
result. A later event of the same length is checked with one masked comparison (the payload read
as one little-endian integer, ``& mask == expect``: every constant byte, and the continuation bits
of the step's varint) and decoded by one ``struct.Struct.unpack``. The fast path is exact, not a
heuristic: outside the fields the bytes are identical and the step's varint has the template's
length, so the protobuf structure is identical, and the fields are raw fixed-width values.

``decode_batch`` goes further for whole batches: training jobs write their tags in a fixed cycle,
so after each event the decoder first tries the template that followed this one last time, and
matched events are not turned into points at all: their unpacked fields are transposed into columns
in C (``zip(*rows)``), step varints decoded column-wise. Anything unusual (extra event fields,
histograms, half floats, varint-encoded values, a new layout) goes through upb.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from itertools import repeat
from operator import itemgetter
from typing import Any

from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from tensorboard.compat.proto import event_pb2

from tbhub.core.scalars import ScalarPoint, Series
from tbhub.core.tfrecord import read_varint

__all__ = ["SCALARS_PLUGIN", "ProtobufDecoder", "tensor_scalar"]

SCALARS_PLUGIN = "scalars"

_DT_FLOAT, _DT_DOUBLE, _DT_HALF = 1, 2, 19

_FLOAT = struct.Struct("<f")
_DOUBLE = struct.Struct("<d")
_HALF = struct.Struct("<e")
_TWO_63 = 1 << 63
_TWO_64 = 1 << 64

_from_string: Callable[[bytes], Any] = event_pb2.Event.FromString

_Columns = tuple[list[int], list[float], list[float]]


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


def _decode_payload(payload: bytes, plugins: dict[str, str]) -> list[ScalarPoint]:
    """Points of a serialized ``Event``, all with upb; ``[]`` if it does not parse."""
    try:
        event = _from_string(payload)
    except DecodeError:
        return []
    if not event.HasField("summary"):
        return []
    return _decode_with_protobuf(event, plugins)


def _group_points(
    payloads: Sequence[bytes], plugins: dict[str, str], decode: Callable[[bytes, dict[str, str]], Sequence[ScalarPoint]]
) -> list[dict[str, Series]]:
    """One segment with the points of ``payloads`` grouped by tag (the slow, simple batch path)."""
    series: dict[str, _Columns] = {}
    for payload in payloads:
        for tag, step, wall_time, value in decode(payload, plugins):
            columns = series.get(tag)
            if columns is None:
                columns = series[tag] = ([], [], [])
            columns[0].append(step)
            columns[1].append(wall_time)
            columns[2].append(value)
    return [dict(series)] if series else []


# --- templates --------------------------------------------------------------------------------------


class _Template:
    """The byte layout of a whole event payload of ``length`` bytes.

    A payload of that length has this layout iff ``int.from_bytes(payload, "little") & mask ==
    expect``; ``unpack(payload)`` then returns its fields: at index ``wall`` the wall time (-1 when
    the event has none: 0.0), at ``step`` an int of 2, 4 or 8 bytes whose low ``step_width`` bytes
    are the step's varint (-1 when the event has no step: 0), and at ``slots`` the values.
    ``values`` is per value ``(tag, plugin of its metadata or None, is_tensor)``; ``simple_tags`` is
    set when every value is a ``simple_value`` without metadata and the tags are distinct (no plugin
    bookkeeping), ``simple_emitted`` then being its ``emitted``.

    ``next``, ``stamp``, ``rows`` and ``emitted`` are ``decode_batch``'s working state: the template
    that followed this one last time, the segment it is registered in, its unpacked rows there, and
    which of its fields give points, as ``(tag, field index)``.
    """

    __slots__ = (
        "emitted", "expect", "length", "mask", "next", "pick", "rows", "simple_emitted", "simple_tags",
        "slots", "stamp", "step", "step_width", "unpack", "values", "wall",
    )

    def __init__(
        self,
        length: int,
        mask: int,
        expect: int,
        unpack: Callable[[bytes], tuple[Any, ...]],
        wall: int,
        step: int,
        step_width: int,
        slots: tuple[int, ...],
        values: tuple[tuple[str, str | None, bool], ...],
    ) -> None:
        self.length = length
        self.mask = mask
        self.expect = expect
        self.unpack = unpack
        self.wall = wall
        self.step = step
        self.step_width = step_width
        self.slots = slots
        self.pick: Callable[[tuple[Any, ...]], Any] = itemgetter(*slots)
        self.values = values
        tags = tuple(tag for tag, _, _ in values)
        plain = all(plugin is None and not tensor for _, plugin, tensor in values)
        self.simple_tags = tags if plain and len(set(tags)) == len(tags) else None
        self.simple_emitted = tuple(zip(tags, slots, strict=True)) if self.simple_tags is not None else None
        self.next: _Template | None = None
        self.stamp: object = None
        self.rows: list[tuple[Any, ...]] = []
        self.emitted: tuple[tuple[str, int], ...] = ()

    def emitted_for(self, plugins: dict[str, str]) -> tuple[tuple[str, int], ...] | None:
        """Which fields give points, as ``(tag, field index)``, if that can no longer change for
        this ``plugins`` (a file's memory only grows and its entries never change); else ``None``.

        Settled once every tag whose value registers metadata or is a tensor is known: registering
        is then a no-op and whether a tensor is a scalar is fixed. Tags must be distinct (one series
        per tag and segment).
        """
        emitted = []
        for (tag, plugin, is_tensor), index in zip(self.values, self.slots, strict=True):
            if is_tensor or plugin is not None:
                known = plugins.get(tag)
                if known is None:
                    return None
                if is_tensor and known != SCALARS_PLUGIN:
                    continue
            emitted.append((tag, index))
        if len({tag for tag, _ in emitted}) < len(emitted):
            return None
        return tuple(emitted)


def _varint_value(x: int, width: int) -> int:
    """The varint in the low ``width`` bytes of the little-endian int ``x``."""
    return sum(((x >> (8 * j)) & 0x7F) << (7 * j) for j in range(width))


def _steps(column: Sequence[int], width: int) -> list[int]:
    """Decode a column of step ints (see ``_Template``), the common widths without a call each."""
    if width == 1:
        return [x & 0x7F for x in column]
    if width == 2:
        return [(x & 0x7F) | (x >> 1 & 0x3F80) for x in column]
    if width == 3:
        return [(x & 0x7F) | (x >> 1 & 0x3F80) | (x >> 2 & 0x1FC000) for x in column]
    steps = [(x & 0x7F) | (x >> 1 & 0x3F80) | (x >> 2 & 0x1FC000) for x in column]
    for j in range(3, width):  # byte j holds bits 7j .. 7j+6
        mask = 0x7F << (7 * j)
        steps = [step | (x >> j & mask) for step, x in zip(steps, column, strict=True)]
    return steps


def _skip(data: bytes, pos: int, end: int, wire_type: int) -> int:
    """Position after a field's value; IndexError if it is cut off or of an unusable wire type."""
    if wire_type == 0:
        pos = read_varint(data, pos)[1]
    elif wire_type == 1:
        pos += 8
    elif wire_type == 2:
        size, pos = read_varint(data, pos)
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
        key, pos = read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if (number in (1, 3) and wire_type == 0) or (number == 2 and wire_type == 2):
            pos = _skip(data, pos, end, wire_type)  # dtype, version_number, shape: constant bytes
            continue
        if slot is not None:
            return None
        if wire_type == 2 and number in (4, 5, 6):  # tensor_content, packed float_val / double_val
            size, pos = read_varint(data, pos)
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
            key, pos = read_varint(data, pos)
            if key != 0x0A:  # Summary has one field: value = 1, length-delimited
                return None
            size, pos = read_varint(data, pos)
            value_end = pos + size
            if value_end > end:
                return None
            slot: tuple[int, int, bool] | None = None
            while pos < value_end:
                key, pos = read_varint(data, pos)
                number, wire_type = key >> 3, key & 7
                if number in (1, 7, 9) and wire_type == 2:  # tag, node_name, metadata
                    pos = _skip(data, pos, value_end, wire_type)
                elif slot is not None:
                    return None  # a second value field (protobuf would merge or override)
                elif number == 2 and wire_type == 5:  # simple_value
                    slot = (pos, 4, False)
                    pos += 4
                elif number == 8 and wire_type == 2:  # tensor
                    size, pos = read_varint(data, pos)
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


def _build_template(payload: bytes, event: Any, has_wall: bool, step_width: int, start: int) -> _Template | None:
    """A template for ``payload`` (wall time present or not, a step varint of ``step_width`` bytes
    or none, the summary from ``start`` to the end), checked against upb's ``event``; or None."""
    slots = _summary_slots(payload, start)
    values = list(event.summary.value)
    if not slots or len(slots) != len(values):
        return None
    entries: list[tuple[str, str | None, bool]] = []
    for (offset, width, is_tensor), value in zip(slots, values, strict=True):
        slot_value = (_FLOAT if width == 4 else _DOUBLE).unpack_from(payload, offset)[0]
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

    fields: list[tuple[int, int, str]] = []  # (offset, width, struct code), in payload order
    mask = bytearray(b"\xff" * len(payload))  # per byte: which bits must equal the template's
    if has_wall:
        fields.append((1, 8, "d"))
        mask[1:9] = bytes(8)
    step_index = -1
    if step_width:
        int_width = 2 if step_width == 1 else 4 if step_width <= 3 else 8 if step_width <= 7 else 0
        if not int_width:
            return None  # steps of 2**49 and more, negative steps: rare, left to upb
        at = 10 if has_wall else 1
        mask[at : at + step_width] = b"\x80" * step_width  # continuation bits only
        step_index = len(fields)
        fields.append((at, int_width, {2: "H", 4: "I", 8: "Q"}[int_width]))  # + constant bytes after
    first_slot = len(fields)
    for offset, width, _ in slots:
        fields.append((offset, width, "f" if width == 4 else "d"))
        mask[offset : offset + width] = bytes(width)
    fmt = ["<"]
    pos = 0
    for offset, width, code in fields:
        if offset < pos:
            return None  # the step int would overlap the first value
        fmt.append(f"{offset - pos}x{code}")
        pos = offset + width
    fmt.append(f"{len(payload) - pos}x")
    layout = struct.Struct("".join(fmt))
    mask_int = int.from_bytes(mask, "little")
    template = _Template(
        len(payload),
        mask_int,
        int.from_bytes(payload, "little") & mask_int,
        layout.unpack,
        0 if has_wall else -1,
        step_index,
        step_width,
        tuple(range(first_slot, len(fields))),
        tuple(entries),
    )
    parts = layout.unpack(payload)
    decoded_step = _varint_value(parts[step_index], step_width) if step_width else 0
    decoded_wall = parts[template.wall] if has_wall else 0.0
    if decoded_step != event.step or not _same(decoded_wall, event.wall_time):
        return None
    return template


_MAX_KEYS = 4096  # first tags remembered per decoder; a file has a handful
_MAX_PER_KEY = 16  # layouts per first tag (with and without metadata, step varint lengths ...)
_MAX_FAILURES = 16  # template attempts per first tag before giving up on it
_UPB = object()  # decode_batch: the source of points decoded one by one


class ProtobufDecoder:
    """``BatchEventDecoder`` over TensorBoard's ``event_pb2`` (upb), with template fast paths.

    ``templates=False`` decodes every event with upb (the reference the fast paths are tested
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
            return found  # type: ignore[no-any-return]
        tags = layout.simple_tags
        if tags is None:
            return self._apply(layout, found, step, wall_time, plugins)
        if len(tags) == 1:
            return [(tags[0], step, wall_time, layout.pick(found))]
        n = len(tags)
        return list(zip(tags, repeat(step, n), repeat(wall_time, n), layout.pick(found), strict=True))

    def decode_batch(self, payloads: Sequence[bytes], plugins: dict[str, str]) -> list[dict[str, Series]]:
        """The points of ``payloads`` as column segments (see ``tbhub.core.scalars.BatchEventDecoder``).

        A segment ends when a tag would get points from two sources (two templates, or a template
        and upb): that keeps each tag's points in order, and happens about once per tag and file.
        """
        if not self.templates:
            return _group_points(payloads, plugins, _decode_payload)
        segments: list[dict[str, Series]] = []
        used: list[_Template] = []  # templates registered in the current segment
        other: dict[str, _Columns] = {}  # points decoded one by one in the current segment
        owners: dict[str, object] = {}  # tag -> its source in the current segment
        stamp = object()  # identifies the current segment
        lookup = self._lookup
        from_bytes = int.from_bytes
        flush = self._flush
        previous: _Template | None = None
        predicted: _Template | None = None
        for payload in payloads:
            layout = predicted
            if (
                layout is not None
                and layout.stamp is stamp
                and layout.length == len(payload)
                and from_bytes(payload, "little") & layout.mask == layout.expect
            ):
                layout.rows.append(layout.unpack(payload))
                previous = layout
                predicted = layout.next
                continue
            layout, found, step, wall_time = lookup(payload, plugins)
            if layout is not None:
                if previous is not None:
                    previous.next = layout
                previous = layout
                predicted = layout.next
                if layout.stamp is not stamp:
                    emitted = layout.simple_emitted if layout.simple_tags is not None else layout.emitted_for(plugins)
                    if emitted is not None:
                        if any(owners.get(tag, layout) is not layout for tag, _ in emitted):
                            flush(segments, used, other)
                            used, other, owners, stamp = [], {}, {}, object()
                        for tag, _ in emitted:
                            owners[tag] = layout
                        layout.stamp, layout.emitted, layout.rows = stamp, emitted, []
                        used.append(layout)
                if layout.stamp is stamp:
                    layout.rows.append(found)
                    continue
                found = self._apply(layout, found, step, wall_time, plugins)
            else:
                previous = predicted = None
            for tag, point_step, point_wall_time, value in found:
                owner = owners.get(tag)
                if owner is not _UPB:
                    if owner is not None:
                        flush(segments, used, other)
                        used, other, owners, stamp = [], {}, {}, object()
                    owners[tag] = _UPB
                    other[tag] = ([], [], [])
                columns = other[tag]
                columns[0].append(point_step)
                columns[1].append(point_wall_time)
                columns[2].append(value)
        flush(segments, used, other)
        return segments

    @staticmethod
    def _flush(segments: list[dict[str, Series]], used: list[_Template], other: dict[str, _Columns]) -> None:
        """Append the current segment to ``segments``."""
        segment: dict[str, Series] = dict(other)
        for layout in used:
            rows, layout.rows, layout.stamp = layout.rows, [], None
            if not rows or not layout.emitted:
                continue
            columns = list(zip(*rows, strict=True))  # transposed in C
            count = len(rows)
            steps = _steps(columns[layout.step], layout.step_width) if layout.step >= 0 else [0] * count
            wall_times: Sequence[float] = columns[layout.wall] if layout.wall >= 0 else [0.0] * count
            for tag, index in layout.emitted:
                segment[tag] = (steps, wall_times, columns[index])
        if segment:
            segments.append(segment)

    def _lookup(self, payload: bytes, plugins: dict[str, str]) -> tuple[_Template | None, Any, int, float]:
        """``(template, its fields, step, wall_time)`` when a learnt template matches the event;
        ``(None, points, 0, 0.0)`` otherwise, the points decoded by upb (and the
        event's layout learnt when it can be)."""
        # The layout every writer uses for a summary event: wall_time (field 1, fixed64), step
        # (field 2, varint; both omitted when 0), summary (field 5) running to the end. Varints
        # of up to 3 bytes are decoded inline: a call costs more than the rest of this block.
        try:
            has_wall = payload[0] == 0x09
            if has_wall:
                wall_time: float = _DOUBLE.unpack_from(payload, 1)[0]
                i = 9
            else:
                wall_time = 0.0
                i = 0
            byte = payload[i]
            step_width = 0
            if byte == 0x10:
                byte = payload[i + 1]
                if byte < 0x80:
                    step = byte
                    step_width = 1
                else:
                    high = payload[i + 2]
                    if high < 0x80:
                        step = (byte & 0x7F) | high << 7
                        step_width = 2
                    elif payload[i + 3] < 0x80:
                        step = (byte & 0x7F) | (high & 0x7F) << 7 | payload[i + 3] << 14
                        step_width = 3
                    else:
                        step, end = read_varint(payload, i + 1)
                        step_width = end - i - 1
                        step &= _TWO_64 - 1
                        if step >= _TWO_63:
                            step -= _TWO_64
                i += 1 + step_width
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
                    size, start = read_varint(payload, i + 1)
                # Keyed by the first value's header and tag bytes: never part of a field.
                if (
                    start + size == len(payload)
                    and payload[start] == 0x0A
                    and payload[start + 1] < 0x80
                    and payload[start + 2] == 0x0A
                ):
                    key = payload[start : start + 4 + payload[start + 3]]
                    layouts = self._layouts.get(key)
                    if layouts is not None:
                        length = len(payload)
                        whole = int.from_bytes(payload, "little")
                        for layout in layouts:
                            if layout.length == length and whole & layout.mask == layout.expect:
                                return layout, layout.unpack(payload), step, wall_time
                    points = self._learn(payload, key, has_wall, step_width, step, wall_time, start, plugins)
                    return None, points, 0, 0.0
        except (IndexError, struct.error):  # cut short: upb decides what it is
            pass
        return None, _decode_payload(payload, plugins), 0, 0.0

    @staticmethod
    def _apply(
        layout: _Template, parts: tuple[Any, ...], step: int, wall_time: float, plugins: dict[str, str]
    ) -> list[ScalarPoint]:
        """Points of a matched event, with the plugin bookkeeping ``_decode_with_protobuf`` does."""
        points: list[ScalarPoint] = []
        for (tag, plugin, is_tensor), index in zip(layout.values, layout.slots, strict=True):
            if plugin is not None and tag not in plugins:
                plugins[tag] = plugin
            if not is_tensor or plugins.get(tag) == SCALARS_PLUGIN:
                points.append((tag, step, wall_time, parts[index]))
        return points

    def _learn(
        self,
        payload: bytes,
        key: bytes,
        has_wall: bool,
        step_width: int,
        step: int,
        wall_time: float,
        start: int,
        plugins: dict[str, str],
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
            template = _build_template(payload, event, has_wall, step_width, start)
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
