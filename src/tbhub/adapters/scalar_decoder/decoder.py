"""``ProtobufDecoder``: the scalar decoder tbhub uses, template fast paths over upb."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from itertools import repeat
from typing import Any

from google.protobuf.message import DecodeError  # type: ignore[import-untyped]

from tbhub.adapters.scalar_decoder.columns import Column
from tbhub.adapters.scalar_decoder.layouts import build_template, same_value
from tbhub.adapters.scalar_decoder.reference import (
    DOUBLE,
    SCALARS_PLUGIN,
    Columns,
    decode_event,
    decode_payload,
    from_string,
    group_points,
)
from tbhub.adapters.scalar_decoder.templates import Template
from tbhub.core.scalars import ScalarPoint, Series
from tbhub.core.tfrecord import read_varint

__all__ = ["ProtobufDecoder"]

_TWO_63 = 1 << 63
_TWO_64 = 1 << 64
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
        self._layouts: dict[bytes, list[Template]] = {}
        self._failures: dict[bytes, int] = {}
        self._texts: dict[str, str] = {}

    def pop_texts(self) -> dict[str, str]:
        """The text summaries (tag → its latest text) of the events decoded since the last call (see
        ``tbhub.core.scalars.TextDecoder``). Text events never match a template: upb reads them all."""
        texts, self._texts = self._texts, {}
        return texts

    def _upb(self, payload: bytes, plugins: dict[str, str]) -> list[ScalarPoint]:
        return decode_payload(payload, plugins, self._texts)

    def __getstate__(self) -> dict[str, Any]:
        return {"templates": self.templates}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(templates=state["templates"])  # type: ignore[misc]

    def decode(self, payload: bytes, plugins: dict[str, str]) -> Sequence[ScalarPoint]:
        """The scalar points of one serialized ``Event`` (see ``tbhub.core.scalars.EventDecoder``)."""
        if not self.templates:
            return self._upb(payload, plugins)
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
        return self._batch(payloads, plugins, sparse=False)

    def decode_sparse(self, payloads: Sequence[bytes], plugins: dict[str, str]) -> list[dict[str, Series]]:
        """``decode_batch``, but the columns of template-matched events are ``Column``s: read-only
        sequences that unpack only the points indexed or sliced (``core.series.SparseEventDecoder``).
        For a reader that keeps few of the points: the series thinner keeps about 1,000 per series."""
        return self._batch(payloads, plugins, sparse=True)

    def _batch(self, payloads: Sequence[bytes], plugins: dict[str, str], *, sparse: bool) -> list[dict[str, Series]]:
        if not self.templates:
            return group_points(payloads, plugins, self._upb)
        segments: list[dict[str, Series]] = []
        used: list[Template] = []  # templates registered in the current segment
        other: dict[str, Columns] = {}  # points decoded one by one in the current segment
        owners: dict[str, object] = {}  # tag -> its source in the current segment
        by_length: dict[int, list[Template]] = {}  # the templates registered in the current segment
        stamp = object()  # identifies the current segment
        lookup = self._lookup
        from_bytes = int.from_bytes
        flush = self._flush
        previous: Template | None = None
        predicted: Template | None = None
        for payload in payloads:
            layout = predicted
            if (
                layout is not None
                and layout.stamp is stamp
                and layout.length == len(payload)
                and from_bytes(payload, "little") & layout.mask == layout.expect
            ):
                layout.rows.append(payload)
                previous = layout
                predicted = layout.next
                continue
            # Mispredicted (a tag logged every N steps breaks the cycle): the segment's templates of
            # this length, before the full lookup.
            candidates = by_length.get(len(payload))
            if candidates is not None:
                whole = from_bytes(payload, "little")
                layout = next((t for t in candidates if whole & t.mask == t.expect), None)
                if layout is not None:
                    layout.rows.append(payload)
                    if previous is not None:
                        previous.next = layout
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
                            flush(segments, used, other, sparse)
                            used, other, owners, by_length, stamp = [], {}, {}, {}, object()
                        for tag, _ in emitted:
                            owners[tag] = layout
                        layout.stamp, layout.emitted, layout.rows = stamp, emitted, []
                        used.append(layout)
                        by_length.setdefault(layout.length, []).append(layout)
                if layout.stamp is stamp:
                    layout.rows.append(payload)
                    continue
                found = self._apply(layout, found, step, wall_time, plugins)
            else:
                previous = predicted = None
            for tag, point_step, point_wall_time, value in found:
                owner = owners.get(tag)
                if owner is not _UPB:
                    if owner is not None:
                        flush(segments, used, other, sparse)
                        used, other, owners, by_length, stamp = [], {}, {}, {}, object()
                    owners[tag] = _UPB
                    other[tag] = ([], [], [])
                columns = other[tag]
                columns[0].append(point_step)
                columns[1].append(point_wall_time)
                columns[2].append(value)
        flush(segments, used, other, sparse)
        return segments

    @staticmethod
    def _flush(
        segments: list[dict[str, Series]], used: list[Template], other: dict[str, Columns], sparse: bool
    ) -> None:
        """Append the current segment to ``segments``: each template's payloads joined and cut into
        columns in C (``Column``), read whole unless ``sparse``."""
        segment: dict[str, Series] = dict(other)
        for layout in used:
            rows, layout.rows, layout.stamp = layout.rows, [], None
            if not rows or not layout.emitted:
                continue
            count = len(rows)
            data = b"".join(rows)
            steps = _column(layout, data, count, layout.step, sparse) if layout.step >= 0 else [0] * count
            wall_times = _column(layout, data, count, layout.wall, sparse) if layout.wall >= 0 else [0.0] * count
            for tag, index in layout.emitted:
                segment[tag] = (steps, wall_times, _column(layout, data, count, index, sparse))
        if segment:
            segments.append(segment)

    def _lookup(self, payload: bytes, plugins: dict[str, str]) -> tuple[Template | None, Any, int, float]:
        """``(template, its fields, step, wall_time)`` when a learnt template matches the event;
        ``(None, points, 0, 0.0)`` otherwise, the points decoded by upb (and the
        event's layout learnt when it can be)."""
        # The layout every writer uses for a summary event: wall_time (field 1, fixed64), step
        # (field 2, varint; both omitted when 0), summary (field 5) running to the end. Varints
        # of up to 3 bytes are decoded inline: a call costs more than the rest of this block.
        try:
            has_wall = payload[0] == 0x09
            if has_wall:
                wall_time: float = DOUBLE.unpack_from(payload, 1)[0]
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
        return None, self._upb(payload, plugins), 0, 0.0

    @staticmethod
    def _apply(
        layout: Template, parts: tuple[Any, ...], step: int, wall_time: float, plugins: dict[str, str]
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
            event = from_string(payload)
        except DecodeError:
            return []
        points = decode_event(event, plugins, self._texts)
        if self._failures.get(key, 0) >= _MAX_FAILURES:
            return points
        template = None
        if event.step == step and same_value(event.wall_time, wall_time):
            template = build_template(payload, event, has_wall, step_width, start)
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


def _column(layout: Template, data: bytes, count: int, index: int, sparse: bool) -> Sequence[Any]:
    """Field ``index`` of the ``count`` payloads of ``layout`` joined in ``data``: a ``Column`` if
    ``sparse``, else its values (a list)."""
    offset, code = layout.fields[index]
    column = Column(data, count, layout.length, offset, code, layout.step_width if index == layout.step else 0)
    return column if sparse else column[:]
