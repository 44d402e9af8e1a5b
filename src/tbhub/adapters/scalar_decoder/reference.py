"""The reference decoding: every event parsed by upb (TensorBoard's ``event_pb2``) and walked.

The template fast paths (``templates``, ``layouts``) are checked against what this gives.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any

from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from tensorboard.compat.proto import event_pb2

from tbhub.core.scalars import ScalarPoint, Series

__all__ = [
    "DOUBLE",
    "FLOAT",
    "HALF",
    "SCALARS_PLUGIN",
    "TEXT_PLUGIN",
    "Columns",
    "decode_event",
    "decode_payload",
    "from_string",
    "group_points",
    "tensor_scalar",
]

SCALARS_PLUGIN = "scalars"
TEXT_PLUGIN = "text"

_DT_FLOAT, _DT_DOUBLE, _DT_HALF, _DT_STRING = 1, 2, 19, 7

FLOAT = struct.Struct("<f")
DOUBLE = struct.Struct("<d")
HALF = struct.Struct("<e")

from_string: Callable[[bytes], Any] = event_pb2.Event.FromString

Columns = tuple[list[int], list[float], list[float]]


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
            return FLOAT.unpack(content)[0] if len(content) == 4 else None
        values = tensor.float_val
    elif dtype == _DT_DOUBLE:
        if content:
            return DOUBLE.unpack(content)[0] if len(content) == 8 else None
        values = tensor.double_val
    elif dtype == _DT_HALF:
        if content:
            return HALF.unpack(content)[0] if len(content) == 2 else None
        if len(tensor.half_val) != 1:
            return None
        bits = tensor.half_val[0]  # the binary16 bit pattern in an int32 field
        if not 0 <= bits <= 0xFFFF:
            return None
        value: float = HALF.unpack(bits.to_bytes(2, "little"))[0]
        return value
    else:
        return None
    return float(values[0]) if len(values) == 1 else None


def note_text(texts: dict[str, str], tag: str, tensor: Any) -> None:
    """Keep the text of a text-plugin ``TensorProto`` (its first string, UTF-8, at most
    ``TEXT_BYTES``) as the latest text of ``tag``."""
    if tensor.dtype == _DT_STRING and len(tensor.string_val) >= 1:
        texts[tag] = tensor.string_val[0][:TEXT_BYTES].decode("utf-8", "replace")


TEXT_BYTES = 64 * 1024
"""A text summary longer than this is cut: what tbhub reads in texts (a trainer's arguments, a few
KB) fits many times over, and every text kept is stored with the file's scalar state."""


def decode_event(event: Any, plugins: dict[str, str], texts: dict[str, str] | None = None) -> list[ScalarPoint]:
    """Points of a parsed ``Event`` (the authority the fast path is checked against); with ``texts``,
    text summaries (plugin ``text``) are noted there too (``note_text``)."""
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
        elif kind == "tensor" and texts is not None and plugins.get(tag) == TEXT_PLUGIN:
            note_text(texts, tag, value.tensor)
    return points


def decode_payload(payload: bytes, plugins: dict[str, str], texts: dict[str, str] | None = None) -> list[ScalarPoint]:
    """Points of a serialized ``Event``, all with upb; ``[]`` if it does not parse. ``texts`` as
    for ``decode_event``."""
    try:
        event = from_string(payload)
    except DecodeError:
        return []
    if not event.HasField("summary"):
        return []
    return decode_event(event, plugins, texts)


def group_points(
    payloads: Sequence[bytes], plugins: dict[str, str], decode: Callable[[bytes, dict[str, str]], Sequence[ScalarPoint]]
) -> list[dict[str, Series]]:
    """One segment with the points of ``payloads`` grouped by tag (the slow, simple batch path)."""
    series: dict[str, Columns] = {}
    for payload in payloads:
        for tag, step, wall_time, value in decode(payload, plugins):
            columns = series.get(tag)
            if columns is None:
                columns = series[tag] = ([], [], [])
            columns[0].append(step)
            columns[1].append(wall_time)
            columns[2].append(value)
    return [dict(series)] if series else []
