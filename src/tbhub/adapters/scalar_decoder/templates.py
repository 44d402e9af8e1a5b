"""A learnt byte layout of a whole event payload (``Template``) and the column decoding of steps."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

from tbhub.adapters.scalar_decoder.reference import SCALARS_PLUGIN

__all__ = ["Template", "decode_steps", "varint_value"]


class Template:
    """The byte layout of a whole event payload of ``length`` bytes.

    A payload of that length has this layout iff ``int.from_bytes(payload, "little") & mask ==
    expect``; ``unpack(payload)`` then returns its fields: at index ``wall`` the wall time (-1 when
    the event has none: 0.0), at ``step`` an int of 2, 4 or 8 bytes whose low ``step_width`` bytes
    are the step's varint (-1 when the event has no step: 0), and at ``slots`` the values;
    ``fields`` is per field its offset in the payload and its ``struct`` code.
    ``values`` is per value ``(tag, plugin of its metadata or None, is_tensor)``; ``simple_tags`` is
    set when every value is a ``simple_value`` without metadata and the tags are distinct (no plugin
    bookkeeping), ``simple_emitted`` then being its ``emitted``.

    ``next``, ``stamp``, ``rows`` and ``emitted`` are ``decode_batch``'s working state: the template
    that followed this one last time, the segment it is registered in, its unpacked rows there, and
    which of its fields give points, as ``(tag, field index)``. The rows are the matched payloads
    themselves (bytes, which the garbage collector does not track), cut into columns at the end.
    """

    __slots__ = (
        "emitted", "expect", "fields", "length", "mask", "next", "pick", "rows", "simple_emitted", "simple_tags",
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
        fields: tuple[tuple[int, str], ...],
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
        self.fields = fields
        tags = tuple(tag for tag, _, _ in values)
        plain = all(plugin is None and not tensor for _, plugin, tensor in values)
        self.simple_tags = tags if plain and len(set(tags)) == len(tags) else None
        self.simple_emitted = tuple(zip(tags, slots, strict=True)) if self.simple_tags is not None else None
        self.next: Template | None = None
        self.stamp: object = None
        self.rows: list[bytes] = []
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


def varint_value(x: int, width: int) -> int:
    """The varint in the low ``width`` bytes of the little-endian int ``x``."""
    return sum(((x >> (8 * j)) & 0x7F) << (7 * j) for j in range(width))


def decode_steps(column: Sequence[int], width: int) -> list[int]:
    """Decode a column of step ints (see ``Template``), the common widths without a call each."""
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
