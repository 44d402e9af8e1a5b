"""What a decoder gives the core: scalar points of serialized ``tensorboard.Event`` payloads.

Protobuf lives in the adapters (``tbhub.adapters.scalar_decoder``); the core only states the
contract and, for a decoder without ``decode_batch``, groups its points into columns itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

__all__ = ["BatchEventDecoder", "EventDecoder", "ScalarPoint", "Series", "point_batches"]

ScalarPoint = tuple[str, int, float, float]
"""One scalar: ``(tag, step, wall_time, value)``. A plain tuple: the decoder builds millions."""

Series = tuple[Sequence[int], Sequence[float], Sequence[float]]
"""The points of one tag as columns: ``(steps, wall_times, values)``, in file order."""


class EventDecoder(Protocol):
    """Turns one serialized ``tensorboard.Event`` into the scalar points it holds.

    Contract:

    * Returns the points in the order of ``summary.value`` in the event: ``simple_value`` values,
      and tensor values of a tag whose plugin in ``plugins`` is ``"scalars"`` with exactly one
      float, double or half element. Everything else (no summary, histograms, images, other
      plugins, other dtypes) gives no point.
    * Updates ``plugins`` (tag → plugin name of that tag's first value carrying ``metadata``;
      ``""`` when the metadata names no plugin) before deciding whether that value is a scalar;
      an existing entry is never overwritten.
    * Never raises on content: a payload that is not a valid ``Event`` gives ``[]``.
    * Callers do not mutate the returned sequence, so a decoder may return a shared empty one.
    * Picklable (``summarize_many`` sends it to worker processes).
    """

    def decode(self, payload: bytes, plugins: dict[str, str]) -> Sequence[ScalarPoint]: ...


class BatchEventDecoder(EventDecoder, Protocol):
    """An ``EventDecoder`` that can also decode many payloads at once, into columns.

    ``summarize_file`` uses ``decode_batch`` when the decoder has it: building one tuple per point
    and sorting points by tag in Python costs more than decoding them when events hold many values.

    Contract: ``decode_batch(payloads, plugins)`` returns *segments*; concatenating, segment after
    segment, the series of a tag gives exactly the points ``decode`` would return for that tag over
    ``payloads`` in order, and ``plugins`` ends up exactly as after those ``decode`` calls. Within a
    segment every series is non-empty and the three columns have equal lengths.
    """

    def decode_batch(self, payloads: Sequence[bytes], plugins: dict[str, str]) -> list[dict[str, Series]]: ...


def point_batches(decode: Callable[[bytes, dict[str, str]], Sequence[ScalarPoint]]
                  ) -> Callable[[Sequence[bytes], dict[str, str]], list[dict[str, Series]]]:
    """``decode_batch`` for a decoder that only has ``decode``: one segment, grouped in Python."""

    def decode_batch(payloads: Sequence[bytes], plugins: dict[str, str]) -> list[dict[str, Series]]:
        groups: dict[str, list[ScalarPoint]] = {}
        for payload in payloads:
            points = decode(payload, plugins)
            if points:
                for point in points:
                    try:
                        groups[point[0]].append(point)
                    except KeyError:
                        groups[point[0]] = [point]
        segment: dict[str, Series] = {}
        for tag, group in groups.items():
            _, steps, wall_times, values = zip(*group, strict=True)
            segment[tag] = (steps, wall_times, values)
        return [segment]

    return decode_batch
