"""Learning a ``Template`` from one event: where its fields lie, checked against upb's parse."""

from __future__ import annotations

import struct
from typing import Any

from tbhub.adapters.scalar_decoder.reference import DOUBLE, FLOAT, tensor_scalar
from tbhub.adapters.scalar_decoder.templates import Template, varint_value
from tbhub.core.tfrecord import read_varint, skip_field

__all__ = ["build_template", "same_value"]


def _skip(data: bytes, pos: int, end: int, wire_type: int) -> int:
    """Position after a field's value; IndexError if it is cut off or of an unusable wire type."""
    pos = skip_field(data, pos, wire_type)
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


def same_value(a: float, b: float) -> bool:
    """Equal, or both NaN: a NaN value must still match its template."""
    return a == b or (a != a and b != b)


def build_template(payload: bytes, event: Any, has_wall: bool, step_width: int, start: int) -> Template | None:
    """A template for ``payload`` (wall time present or not, a step varint of ``step_width`` bytes
    or none, the summary from ``start`` to the end), checked against upb's ``event``; or None."""
    slots = _summary_slots(payload, start)
    values = list(event.summary.value)
    if not slots or len(slots) != len(values):
        return None
    entries: list[tuple[str, str | None, bool]] = []
    for (offset, width, is_tensor), value in zip(slots, values, strict=True):
        slot_value = (FLOAT if width == 4 else DOUBLE).unpack_from(payload, offset)[0]
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
        if expected is None or not same_value(expected, slot_value):
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
    template = Template(
        len(payload),
        mask_int,
        int.from_bytes(payload, "little") & mask_int,
        layout.unpack,
        0 if has_wall else -1,
        step_index,
        step_width,
        tuple(range(first_slot, len(fields))),
        tuple(entries),
        tuple((offset, code) for offset, _, code in fields),
    )
    parts = layout.unpack(payload)
    decoded_step = varint_value(parts[step_index], step_width) if step_width else 0
    decoded_wall = parts[template.wall] if has_wall else 0.0
    if decoded_step != event.step or not same_value(decoded_wall, event.wall_time):
        return None
    return template
