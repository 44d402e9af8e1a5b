"""The series reader's fast path (issue 17): the decoder's sparse columns (``decode_sparse``: template-matched
events joined and read only where the thinner looks) give exactly what its dense columns and the one-by-one
decoding give, for every slice; and a file's thinned series read through them equal those read through a
decoder without them, for tags logged every step, every N steps, in merged events, as TF2 tensors, across
step varint lengths, with NaN and infinities."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import repeat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.util import tensor_util

from eventfiles import BASE_WALL_TIME, file_version_event, scalar_event, write_events
from tbhub.adapters.crc import crc32c
from tbhub.adapters.scalar_decoder import ProtobufDecoder
from tbhub.core.scalars import ScalarPoint, Series
from tbhub.core.series import FileSeries, read_file_series

STEPS = [0, 1, 126, 127, 128, 129, 16383, 16384, (1 << 21) - 1, 1 << 21, (1 << 28) + 5, (1 << 35) + 1]
"""Steps around varint length boundaries (1 to 6 bytes)."""


def _event(step: int, values: dict[str, float], *, wall_time: float | None, tf2: bool, metadata: bool) -> bytes:
    event = event_pb2.Event(step=step, wall_time=BASE_WALL_TIME + step if wall_time is None else wall_time)
    for tag, x in values.items():
        if tf2:
            value = summary_pb2.Summary.Value(tag=tag, tensor=tensor_util.make_tensor_proto(x, dtype="float32"))
            if metadata:
                value.metadata.plugin_data.plugin_name = "scalars"
        else:
            value = summary_pb2.Summary.Value(tag=tag, simple_value=x)
        event.summary.value.append(value)
    return bytes(event.SerializeToString())


_values = st.floats(width=32) | st.sampled_from([math.nan, math.inf, -math.inf])


@st.composite
def _runs(draw: st.DrawFn) -> list[bytes]:
    """A training job's events: tags in a cycle, some every N steps, steps growing across varint lengths."""
    tags = draw(st.lists(st.sampled_from(["loss", "acc", "eval/loss", "lr", "t"]), min_size=1, max_size=3,
                         unique=True))
    every = {tag: draw(st.integers(1, 7)) for tag in tags}
    merged = draw(st.booleans())
    tf2 = draw(st.booleans())
    start = draw(st.sampled_from(STEPS))
    payloads = [file_version_event()]
    for k in range(draw(st.integers(1, 400))):
        step = start + k * draw(st.sampled_from([1, 1, 1, 3]))
        due = {tag: draw(_values) if k % 5 else float(k) for tag in tags if k % every[tag] == 0}
        wall = None if draw(st.integers(0, 9)) else 0.0
        if merged and due:
            payloads.append(_event(step, due, wall_time=wall, tf2=False, metadata=False))
        else:
            for tag, x in due.items():
                payloads.append(_event(step, {tag: x}, wall_time=wall, tf2=tf2, metadata=k == 0))
    return payloads


def _points(segments: list[dict[str, Series]], pick: Any = slice(None)) -> dict[str, list[ScalarPoint]]:
    out: dict[str, list[ScalarPoint]] = {}
    for segment in segments:
        for tag, (steps, wall_times, values) in segment.items():
            assert len(steps) == len(wall_times) == len(values) > 0
            out.setdefault(tag, []).extend(zip(repeat(tag), steps[pick], wall_times[pick], values[pick]))
    return out


def _same(a: Sequence[ScalarPoint], b: Sequence[ScalarPoint]) -> bool:
    return len(a) == len(b) and all(
        x[:2] == y[:2] and all(u == v or (u != u and v != v) for u, v in zip(x[2:], y[2:], strict=True))
        for x, y in zip(a, b, strict=True)
    )


@settings(max_examples=120, deadline=None)
@given(payloads=_runs(), cut=st.integers(0, 500), pick=st.tuples(st.integers(-5, 40), st.integers(-5, 400),
                                                                 st.integers(1, 70)))
def test_sparse_columns_give_what_dense_columns_and_upb_give(
    payloads: list[bytes], cut: int, pick: tuple[int, int, int]
) -> None:
    sparse, dense, upb = ProtobufDecoder(), ProtobufDecoder(), ProtobufDecoder(templates=False)
    plugins: dict[str, dict[str, str]] = {"sparse": {}, "dense": {}, "upb": {}}
    got: dict[str, list[dict[str, Series]]] = {"sparse": [], "dense": [], "upb": []}
    for part in (payloads[:cut], payloads[cut:]):
        got["sparse"] += sparse.decode_sparse(part, plugins["sparse"])
        got["dense"] += dense.decode_batch(part, plugins["dense"])
        got["upb"] += upb.decode_batch(part, plugins["upb"])
    assert plugins["sparse"] == plugins["dense"] == plugins["upb"]
    want = _points(got["upb"])
    for name in ("sparse", "dense"):
        points = _points(got[name])
        assert points.keys() == want.keys() and all(_same(points[tag], want[tag]) for tag in want)
    # Any slice of a sparse column (the thinner's strided ones, negative bounds, single items) is the
    # same slice of its values.
    window = slice(*pick)
    for segment in got["sparse"]:
        for steps, wall_times, values in segment.values():
            for column in (steps, wall_times, values):
                whole = list(column)
                assert list(column[window]) == whole[window] or _same_floats(column[window], whole[window])
                assert _same_floats([column[-1], column[0]], [whole[-1], whole[0]])
                with pytest.raises(IndexError):
                    column[len(whole)]


def _same_floats(a: Sequence[Any], b: Sequence[Any]) -> bool:
    return len(a) == len(b) and all(u == v or (u != u and v != v) for u, v in zip(a, b, strict=True))


class DenseOnly:
    """The same decoder without ``decode_sparse``: the series reader then uses ``decode_batch``."""

    def __init__(self) -> None:
        self._decoder = ProtobufDecoder()

    def decode(self, payload: bytes, plugins: dict[str, str]) -> Any:
        return self._decoder.decode(payload, plugins)

    def decode_batch(self, payloads: Sequence[bytes], plugins: dict[str, str]) -> list[dict[str, Series]]:
        return self._decoder.decode_batch(payloads, plugins)


class OneByOne:
    """A decoder with ``decode`` only (upb for every event): the reference."""

    def __init__(self) -> None:
        self._decoder = ProtobufDecoder(templates=False)

    def decode(self, payload: bytes, plugins: dict[str, str]) -> Any:
        return self._decoder.decode(payload, plugins)


@pytest.mark.parametrize("max_points", [2, 7, 100, 1000])
def test_thinned_series_read_through_sparse_columns_equal_the_reference(tmp_path: Path, max_points: int) -> None:
    payloads = [file_version_event()]
    for k in range(20_000):
        step = k if k < 10_000 else (1 << 21) - 10_000 + k  # the step varint grows from 1 to 4 bytes
        payloads.append(scalar_event(step, 2.0 / (1 + 0.001 * k) if k % 997 else math.nan, "train/loss"))
        if k % 10 == 0:
            payloads.append(scalar_event(step, 2.2 / (1 + 0.001 * k), "eval/loss"))
        if k % 250 == 0:
            payloads.append(_event(step, {"lr": 1e-4, "acc": k / 2e4}, wall_time=None, tf2=False, metadata=False))
            payloads.append(_event(step, {"epoch_loss": math.inf if k == 500 else 0.5}, wall_time=None, tf2=True,
                                   metadata=k == 0))
    path = write_events(tmp_path / "events.out.tfevents.1.h", payloads)
    size = path.stat().st_size

    def read(decoder: Any, previous: FileSeries | None = None, upto: int = size) -> FileSeries:
        with open(path, "rb") as fh:
            return read_file_series(fh, previous, inode=1, size=upto, decoder=decoder, crc32c=crc32c,
                                    keep=lambda tag: None if tag == "acc" else tag, max_points=max_points)

    fast = read(ProtobufDecoder())
    assert set(fast.series()) == {"train/loss", "eval/loss", "lr", "epoch_loss"}
    assert fast.series()["train/loss"].total == 20_000 and fast.series()["epoch_loss"].total == 80
    for reference in (read(DenseOnly()), read(OneByOne())):
        for tag, points in reference.series().items():
            got = fast.series()[tag]
            assert got.steps == points.steps and got.wall_times == points.wall_times and got.total == points.total
            assert _same_floats(got.values, points.values)
    # A live run read in two goes (the second from where the first stopped) gives the same again.
    resumed = read(ProtobufDecoder(), read(ProtobufDecoder(), upto=size // 3))
    for tag, points in fast.series().items():
        again = resumed.series()[tag]
        assert again.steps == points.steps and again.total == points.total and _same_floats(again.values, points.values)
