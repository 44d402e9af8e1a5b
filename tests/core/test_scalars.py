"""Scalar summaries (``tbhub.core.scalars`` with ``tbhub.adapters.scalar_decoder``) against
TensorBoard's own ``EventAccumulator`` on files written by TensorBoard's own code."""

from __future__ import annotations

import io
import math
import os
import pickle
import struct
from collections.abc import Sequence
from dataclasses import replace
from itertools import repeat
from pathlib import Path
from typing import Any, BinaryIO, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2
from tensorboard.util import tensor_util

from eventfiles import (
    BASE_WALL_TIME,
    UNICODE_RUN,
    corrupt_header,
    corrupt_payload,
    file_version_event,
    frame,
    raw_loader_count,
    record_layout,
    scalar_event,
    truncate_at,
    write_absurd_length_file,
    write_events,
    write_scalar_file,
    write_tf2_run,
    write_with_event_file_writer,
    write_zero_byte_file,
)
from tbhub.adapters.crc import crc32c
from tbhub.adapters.scalar_decoder import ProtobufDecoder, tensor_scalar
from tbhub.core import scalars
from tbhub.core.models import FileEntry
from tbhub.core.scalars import (
    ScalarFileState,
    ScalarPoint,
    Series,
    TagSummary,
    iter_points,
    merge_tags,
    run_tag,
    summarize_file,
    summarize_many,
)

DT_FLOAT, DT_DOUBLE, DT_INT32, DT_BFLOAT16, DT_HALF, DT_INT64 = 1, 2, 3, 14, 19, 9

# --- event builders (TensorBoard's protos) -------------------------------------------------------


def tensor_proto(value: float, dtype: int = DT_FLOAT, *, content: bool = False, dims: Sequence[int] = ()) -> Any:
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims])
    proto = tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape)
    if dtype == DT_FLOAT:
        if content:
            proto.tensor_content = struct.pack("<f", value)
        else:
            proto.float_val.append(value)
    elif dtype == DT_DOUBLE:
        if content:
            proto.tensor_content = struct.pack("<d", value)
        else:
            proto.double_val.append(value)
    elif dtype == DT_HALF:
        try:
            packed = struct.pack("<e", value)
        except OverflowError:  # beyond binary16's range: what a cast to half gives
            packed = struct.pack("<e", math.copysign(math.inf, value))
        bits = int.from_bytes(packed, "little")
        if content:
            proto.tensor_content = struct.pack("<H", bits)
        else:
            proto.half_val.append(bits)
    elif dtype == DT_BFLOAT16:
        proto.half_val.append(int.from_bytes(struct.pack("<f", value), "little") >> 16)
    elif dtype == DT_INT32:
        proto.int_val.append(int(value))
    elif dtype == DT_INT64:
        proto.int64_val.append(int(value))
    return proto


SCALARS_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
)


def tf2_event(
    step: int, value: float, tag: str = "epoch_loss", *, metadata: bool = True, wall_time: float | None = None,
    dtype: int = DT_FLOAT, content: bool = False, dims: Sequence[int] = (),
) -> bytes:
    """A TF2 tensor scalar; ``metadata=False`` is how TF2 writes every occurrence of a tag but the first."""
    v = summary_pb2.Summary.Value(tag=tag, tensor=tensor_proto(value, dtype, content=content, dims=dims))
    if metadata:
        v.metadata.CopyFrom(SCALARS_METADATA)
    wt = BASE_WALL_TIME + step if wall_time is None else wall_time
    return event_pb2.Event(wall_time=wt, step=step, summary=summary_pb2.Summary(value=[v])).SerializeToString()


def histogram_event(step: int, tag: str = "weights") -> bytes:
    histo = summary_pb2.HistogramProto(min=-1.0, max=1.0, num=3, sum=0.5, bucket_limit=[0.0, 1.0], bucket=[1, 2])
    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, histo=histo)])
    return event_pb2.Event(wall_time=BASE_WALL_TIME + step, step=step, summary=summary).SerializeToString()


def multi_event(step: int, values: dict[str, float], wall_time: float | None = None) -> bytes:
    """A TF1 merged summary: several ``simple_value`` values in one event."""
    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=t, simple_value=v) for t, v in values.items()])
    wt = BASE_WALL_TIME + step if wall_time is None else wall_time
    return event_pb2.Event(wall_time=wt, step=step, summary=summary).SerializeToString()


# --- helpers -----------------------------------------------------------------------------------------


class CountingFile(io.RawIOBase):
    """A read-only file that counts the bytes handed out by ``read``."""

    def __init__(self, path: Path) -> None:
        self._f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed in close()
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def read(self, size: int = -1) -> bytes:
        data = self._f.read(size)
        assert data is not None
        self.bytes_read += len(data)
        return data

    def close(self) -> None:
        self._f.close()
        super().close()


DECODER = ProtobufDecoder()


def summarize(
    path: Path, previous: ScalarFileState | None = None, *, decoder: Any = DECODER, relpath: str | None = None,
    size: int | None = None,
) -> tuple[ScalarFileState, int]:
    """(state, bytes read)."""
    st_ = os.stat(path)
    f = CountingFile(path)
    try:
        state = summarize_file(
            cast(BinaryIO, f), previous, relpath=relpath or path.name, inode=st_.st_ino,
            size=st_.st_size if size is None else size, mtime_ns=st_.st_mtime_ns, decoder=decoder, crc32c=crc32c,
        )
        return state, f.bytes_read
    finally:
        f.close()


def state_of(path: Path, previous: ScalarFileState | None = None, **kw: Any) -> ScalarFileState:
    return summarize(path, previous, **kw)[0]


def same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))


def tensorboard_scalars(path: Path) -> dict[str, list[tuple[int, float, float]]]:
    """Per tag, (step, wall_time, value) as TensorBoard's ``EventAccumulator`` loads ``path`` (a file
    or a run folder): ``simple_value`` scalars, and tensors of tags whose plugin is ``scalars``."""
    acc = ea.EventAccumulator(
        str(path), size_guidance={ea.SCALARS: 0, ea.TENSORS: 0, ea.HISTOGRAMS: 1}, purge_orphaned_data=False
    )
    acc.Reload()
    out: dict[str, list[tuple[int, float, float]]] = {}
    for tag in acc.Tags()[ea.SCALARS]:
        out[tag] = [(e.step, e.wall_time, e.value) for e in acc.Scalars(tag)]
    try:
        tensor_tags = list(acc.PluginTagToContent("scalars"))
    except KeyError:  # no tag of the plugin
        tensor_tags = []
    for tag in tensor_tags:
        points = []
        for e in acc.Tensors(tag):
            try:
                array = tensor_util.make_ndarray(e.tensor_proto)
            except (ValueError, TypeError):  # shape and content disagree, bfloat16: TensorBoard fails too
                continue
            if array.size == 1 and array.dtype.kind == "f":  # tbhub ignores integer "scalars"
                points.append((e.step, e.wall_time, float(array.item())))
        if points:
            out[tag] = points
    return out


def expected(
    tag: str, points: Sequence[tuple[int, float, float]], tail_size: int = scalars.TAIL_SIZE
) -> TagSummary:
    """The summary of (step, wall_time, value) points, computed the obvious way."""
    finite = [(s, v) for s, _, v in points if math.isfinite(v)]
    lo = min(finite, key=lambda p: p[1]) if finite else None  # min() keeps the first of equals
    hi = max(finite, key=lambda p: p[1]) if finite else None
    bad = [s for s, _, v in points if not math.isfinite(v)]
    return TagSummary(
        tag=tag,
        count=len(points),
        nan_count=len(bad),
        inf_count=sum(1 for _, _, v in points if math.isinf(v)),
        first_step=points[0][0],
        last_step=points[-1][0],
        first_wall_time=points[0][1],
        last_wall_time=points[-1][1],
        last_value=points[-1][2],
        min_value=lo[1] if lo else None,
        min_step=lo[0] if lo else None,
        max_value=hi[1] if hi else None,
        max_step=hi[0] if hi else None,
        first_nonfinite_step=bad[0] if bad else None,
        tail=tuple(v for _, _, v in points[-tail_size:]) if tail_size else (),
    )


def assert_summary(actual: TagSummary, wanted: TagSummary) -> None:
    for name in TagSummary.__slots__:
        a, w = getattr(actual, name), getattr(wanted, name)
        if name == "tail":
            assert len(a) == len(w) and all(same(x, y) for x, y in zip(a, w, strict=True)), (name, a, w)
        elif isinstance(w, float):
            assert same(a, w), (actual.tag, name, a, w)
        else:
            assert a == w, (actual.tag, name, a, w)


def assert_matches_tensorboard(path: Path, state: ScalarFileState) -> None:
    tb = tensorboard_scalars(path)
    assert sorted(state.tags) == sorted(tb)
    for tag, points in tb.items():
        assert_summary(state.tags[tag], expected(tag, points))


def assert_same_state(a: ScalarFileState, b: ScalarFileState) -> None:
    fields = ("offset", "records", "truncated", "corrupt", "plugins")
    assert [getattr(a, f) for f in fields] == [getattr(b, f) for f in fields]
    assert sorted(a.tags) == sorted(b.tags)
    for tag in a.tags:
        assert_summary(a.tags[tag], b.tags[tag])


def f32(x: float) -> float:
    """``x`` rounded to float32, as ``simple_value`` stores it."""
    value: float = struct.unpack("<f", struct.pack("<f", x))[0]
    return value


def wavy(step: int) -> float:
    """Values with repeats (ties for min/max) and no trend."""
    return float((step * 7919) % 23) / 4.0 - 2.0


# --- agreement with TensorBoard ---------------------------------------------------------------------


def test_simple_value_scalars_match_event_accumulator(tmp_path: Path) -> None:
    payloads = [file_version_event()]
    for step in range(0, 3000, 3):
        payloads.append(scalar_event(step, wavy(step), "train/loss"))
        payloads.append(scalar_event(step, 1.0 / (step + 1), "train/accuracy"))
        if step % 150 == 0:
            payloads.append(scalar_event(step, wavy(step + 1), "val/loss"))
            payloads.append(histogram_event(step))
    path = write_events(tmp_path / "events.out.tfevents.1", payloads)
    state = state_of(path)
    assert_matches_tensorboard(path, state)
    assert state.records == raw_loader_count(path) == len(payloads)
    assert (state.offset, state.truncated, state.corrupt) == (path.stat().st_size, False, False)
    loss = state.tags["train/loss"]
    assert loss.count == 1000 and loss.min_value == -2.0 and loss.max_value == 3.5
    assert loss.min_step == 0  # the first of several equal minima
    assert state.plugins == {}  # simple values carry no metadata


def test_tf1_merged_summaries_match_event_accumulator(tmp_path: Path) -> None:
    tags = [f"model/layer_{i}/grad_norm" for i in range(12)]
    payloads = [file_version_event()]
    payloads += [multi_event(s * 10, {t: wavy(s + i) for i, t in enumerate(tags)}) for s in range(500)]
    path = write_events(tmp_path / "events.out.tfevents.1", payloads)
    state = state_of(path)
    assert_matches_tensorboard(path, state)
    assert state.tags[tags[3]].count == 500 and state.tags[tags[3]].last_step == 4990


def test_tf2_run_matches_event_accumulator(tmp_path: Path) -> None:
    train, validation = write_tf2_run(tmp_path / UNICODE_RUN, train_steps=300, validation_every=7)
    for path in (train, validation):
        state = state_of(path)
        assert_matches_tensorboard(path, state)
        assert set(state.tags) == {"epoch_loss", "epoch_accuracy"}
        assert state.plugins == {"epoch_loss": "scalars", "epoch_accuracy": "scalars"}
    assert state_of(train).tags["epoch_loss"].count == 300
    assert state_of(validation).tags["epoch_loss"].last_step == 294


def test_tf2_metadata_only_on_the_first_occurrence(tmp_path: Path) -> None:
    payloads = [file_version_event()]
    for step in range(200):
        first = step == 0
        payloads.append(tf2_event(step, wavy(step), "epoch_loss", metadata=first))
        payloads.append(tf2_event(step, step * 0.5, "lr", metadata=first))
    # A tensor tag of another plugin, and one that never had metadata: not scalars.
    payloads.append(event_pb2.Event(step=5, summary=summary_pb2.Summary(value=[summary_pb2.Summary.Value(
        tag="hp", tensor=tensor_proto(1.0), metadata=summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="hparams")))])).SerializeToString())
    payloads.append(tf2_event(6, 1.0, "hp", metadata=False))
    payloads.append(tf2_event(6, 1.0, "orphan", metadata=False))
    path = write_events(tmp_path / "events.out.tfevents.1.v2", payloads)
    state = state_of(path)
    assert_matches_tensorboard(path, state)
    assert state.tags["epoch_loss"].count == state.tags["lr"].count == 200
    assert state.plugins == {"epoch_loss": "scalars", "lr": "scalars", "hp": "hparams"}


@pytest.mark.parametrize(
    ("dtype", "content", "dims", "value", "counted"),
    [
        (DT_FLOAT, False, (), 0.25, True),
        (DT_FLOAT, True, (), -3.5, True),
        (DT_DOUBLE, False, (), 1.0 / 3.0, True),
        (DT_DOUBLE, True, (), 1e300, True),
        (DT_HALF, False, (), 0.333, True),
        (DT_HALF, True, (), -65504.0, True),
        (DT_BFLOAT16, False, (), 1.5, False),  # TensorBoard without TensorFlow cannot convert it either
        (DT_FLOAT, False, (1, 1), 2.5, True),  # one element, any shape: make_ndarray(...).item() works
        (DT_FLOAT, True, (2,), 2.5, False),  # two elements declared, 4 bytes: not a scalar
        (DT_INT32, False, (), 7.0, False),
        (DT_INT64, False, (), 7.0, False),
    ],
)
def test_tensor_dtypes(
    tmp_path: Path, dtype: int, content: bool, dims: tuple[int, ...], value: float, counted: bool
) -> None:
    payloads = [file_version_event()]
    payloads += [
        tf2_event(s, value + s, "x", metadata=s == 0, dtype=dtype, content=content, dims=dims) for s in range(5)
    ]
    path = write_events(tmp_path / "events.out.tfevents.1.v2", payloads)
    state = state_of(path)
    if not counted:
        assert state.tags == {}
        return
    assert_matches_tensorboard(path, state)
    array = tensor_util.make_ndarray(tensor_proto(value + 4, dtype, content=content, dims=dims))
    assert state.tags["x"].last_value == float(array.item()) == tensor_scalar(
        tensor_proto(value + 4, dtype, content=content, dims=dims))


def test_nan_and_inf(tmp_path: Path) -> None:
    values = [1.0, math.nan, 3.0, math.inf, -math.inf, 0.5, 2.0, math.nan]
    path = write_events(tmp_path / "events.out.tfevents.1",
                        [file_version_event(), *(scalar_event(s, v) for s, v in enumerate(values))])
    state = state_of(path)
    assert_matches_tensorboard(path, state)
    loss = state.tags["loss"]
    assert (loss.count, loss.nan_count, loss.inf_count, loss.finite_count) == (8, 4, 2, 4)
    assert (loss.min_value, loss.min_step, loss.max_value, loss.max_step) == (0.5, 5, 3.0, 2)
    assert math.isnan(loss.last_value) and loss.last_step == 7
    assert loss.first_nonfinite_step == 1
    assert loss.mean_last == pytest.approx((1.0 + 3.0 + 0.5 + 2.0) / 4)


def test_only_non_finite_values(tmp_path: Path) -> None:
    path = write_events(tmp_path / "f", [tf2_event(s, math.nan if s % 2 else math.inf) for s in range(4)])
    loss = state_of(path).tags["epoch_loss"]
    assert (loss.count, loss.nan_count, loss.inf_count) == (4, 4, 2)
    assert (loss.min_value, loss.min_step, loss.max_value, loss.max_step, loss.mean_last) == (None,) * 5
    assert loss.first_nonfinite_step == 0 and math.isnan(loss.last_value)


def test_sum_overflow_is_not_mistaken_for_a_non_finite_value(tmp_path: Path) -> None:
    path = write_events(tmp_path / "f", [tf2_event(s, 1e308, dtype=DT_DOUBLE) for s in range(3)])
    loss = state_of(path).tags["epoch_loss"]
    assert (loss.nan_count, loss.max_value, loss.first_nonfinite_step) == (0, 1e308, None)


def test_tail_and_mean_of_the_last_points(tmp_path: Path) -> None:
    path = write_scalar_file(tmp_path, range(25))  # value 1 / (step + 1)
    loss = state_of(path).tags["loss"]
    assert loss.tail == tuple(f32(1 / (s + 1)) for s in range(15, 25))
    assert loss.mean_last == pytest.approx(sum(1 / (s + 1) for s in range(15, 25)) / 10, rel=1e-6)
    short = state_of(write_scalar_file(tmp_path / "short", range(3))).tags["loss"]
    assert len(short.tail) == 3


@pytest.mark.parametrize("kind", ["file_version", "histograms", "empty"])
def test_files_without_scalars(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "events.out.tfevents.1"
    if kind == "empty":
        write_zero_byte_file(path)
    else:
        histograms = [histogram_event(s) for s in range(20)] if kind == "histograms" else []
        write_events(path, [file_version_event(), *histograms])
    state = state_of(path)
    assert state.tags == {} and tensorboard_scalars(path) == {}
    assert state.records == raw_loader_count(path)
    assert state.offset == path.stat().st_size and not state.truncated
    assert state.plugins == {}


def test_file_written_by_tensorboards_event_file_writer(tmp_path: Path) -> None:
    path = write_with_event_file_writer(tmp_path / "run", range(10, 60))
    state = state_of(path)
    assert_matches_tensorboard(path, state)
    assert state.tags["loss"].count == 50 and state.records == 51


def test_payload_larger_than_a_read(tmp_path: Path) -> None:
    big = event_pb2.Event(step=1, wall_time=2.0, graph_def=b"g" * (scalars.READ_SIZE * 2 + 5)).SerializeToString()
    path = write_events(tmp_path / "f", [file_version_event(), scalar_event(1, 1.0), big, scalar_event(2, 4.0), big])
    state = state_of(path)
    assert state.records == 5 and state.tags["loss"].count == 2 and state.tags["loss"].max_value == 4.0


def test_undecodable_payload_with_a_valid_crc_is_skipped(tmp_path: Path) -> None:
    path = write_events(tmp_path / "f", [scalar_event(1, 1.0), b"\xff\xff\xff", b"", scalar_event(2, 2.0)])
    state = state_of(path)
    assert state.records == 4 == raw_loader_count(path)
    assert state.tags["loss"].count == 2


# --- damage ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cut", [1, 11, 12, 13, -5, -1])
def test_truncated_tail_stops_cleanly(tmp_path: Path, cut: int) -> None:
    path = write_scalar_file(tmp_path, range(50))
    last = record_layout(path)[-1]
    truncate_at(path, last.offset + cut if cut > 0 else last.end + cut)
    state = state_of(path)
    assert state.records == raw_loader_count(path) == 50
    assert state.truncated and not state.corrupt and state.offset == last.offset
    assert state.tags["loss"].last_step == 48
    assert_matches_tensorboard(path, state)


def test_corrupt_payload_stops_like_tensorboard(tmp_path: Path) -> None:
    path = write_scalar_file(tmp_path, range(50))
    offset = corrupt_payload(path, record=20, at=3)
    state = state_of(path)
    assert state.records == raw_loader_count(path) == 20
    assert state.corrupt and state.offset == offset and state.tags["loss"].last_step == 18
    assert_matches_tensorboard(path, state)


def test_corrupt_header_stops_like_tensorboard(tmp_path: Path) -> None:
    path = write_scalar_file(tmp_path, range(50))
    offset = corrupt_header(path, record=30, at=2)
    state = state_of(path)
    assert state.records == raw_loader_count(path) == 30
    assert state.corrupt and state.offset == offset


def test_corrupt_file_is_read_from_the_start_again(tmp_path: Path) -> None:
    path = write_scalar_file(tmp_path, range(50))
    corrupt_payload(path, record=20)
    first = state_of(path)
    write_events(path, [scalar_event(99, 1.0)], append=True)
    again, read = summarize(path, first)
    assert read == path.stat().st_size and again.records == 20


def test_absurd_length_is_truncation_without_allocating(tmp_path: Path) -> None:
    path = write_absurd_length_file(tmp_path / "f", records_before=3)
    state, read = summarize(path)
    assert state.truncated and state.records == 3  # (TensorBoard itself tries to allocate 2**62 bytes)
    assert read <= path.stat().st_size


def test_never_reads_past_the_given_size(tmp_path: Path) -> None:
    path = write_scalar_file(tmp_path, range(100))
    cut = record_layout(path)[60].offset + 5
    state, read = summarize(path, size=cut)
    assert read == cut and state.size == cut and state.records == 60 and state.truncated


# --- incremental ---------------------------------------------------------------------------------------


def test_resume_after_append_parses_only_the_new_bytes(tmp_path: Path) -> None:
    path = write_scalar_file(tmp_path, range(1000), ("loss", "acc"))
    first, _ = summarize(path)
    size = path.stat().st_size
    write_events(path, [scalar_event(s, wavy(s), tag) for s in range(1000, 1100) for tag in ("loss", "acc", "new")],
                 append=True)
    resumed, read = summarize(path, first)
    assert read == path.stat().st_size - size
    full, _ = summarize(path)
    assert_same_state(resumed, full)
    assert_matches_tensorboard(path, resumed)
    assert resumed.tags["new"].count == 100 and resumed.tags["loss"].count == 1100


def test_resume_without_growth_reads_nothing(tmp_path: Path) -> None:
    path = write_scalar_file(tmp_path, range(10))
    first = state_of(path)
    again, read = summarize(path, first)
    assert read == 0 and again == first


def test_resume_completes_a_truncated_record(tmp_path: Path) -> None:
    data = write_scalar_file(tmp_path, range(10)).read_bytes()
    path = tmp_path / "events.out.tfevents.2"
    path.write_bytes(data[:-7])
    first = state_of(path)
    assert first.truncated and first.records == 10
    with open(path, "ab") as f:
        f.write(data[-7:])
    resumed, read = summarize(path, first)
    assert not resumed.truncated and resumed.records == 11 and resumed.tags["loss"].last_step == 9
    assert read == len(data) - first.offset


def test_tf2_resumed_after_the_first_occurrence_keeps_the_plugin(tmp_path: Path) -> None:
    path = write_events(tmp_path / "events.out.tfevents.1.v2",
                        [file_version_event(), *(tf2_event(s, wavy(s), metadata=s == 0) for s in range(10))])
    first = state_of(path)
    size = path.stat().st_size
    write_events(path, [tf2_event(s, wavy(s), metadata=False) for s in range(10, 30)], append=True)
    resumed, read = summarize(path, first)
    assert read == path.stat().st_size - size
    assert resumed.tags["epoch_loss"].count == 30 and resumed.tags["epoch_loss"].last_step == 29
    assert_same_state(resumed, state_of(path))
    assert_matches_tensorboard(path, resumed)
    # Without the remembered plugin the new values would not be recognised as scalars:
    forgetful = replace(first, plugins={})
    st_ = path.stat()
    with open(path, "rb") as f:
        assert list(iter_points(f, forgetful, inode=st_.st_ino, size=st_.st_size, decoder=DECODER, crc32c=crc32c)) == []


def test_replaced_file_restarts(tmp_path: Path) -> None:
    path = write_scalar_file(tmp_path, range(100))
    first = state_of(path)
    other = write_scalar_file(tmp_path / "other", range(500, 700), ("acc",))
    os.replace(other, path)
    again, read = summarize(path, first)
    assert read == path.stat().st_size
    assert set(again.tags) == {"acc"} and again.tags["acc"].first_step == 500


def test_shrunk_file_restarts(tmp_path: Path) -> None:
    path = write_scalar_file(tmp_path, range(100))
    first = state_of(path)
    truncate_at(path, record_layout(path)[40].end)
    again, read = summarize(path, first)
    assert read == path.stat().st_size and again.records == 41 and again.tags["loss"].last_step == 39


def test_iter_points_in_order_from_the_resume_point(tmp_path: Path) -> None:
    path = write_events(tmp_path / "f", [scalar_event(s, math.nan if s == 7 else float(s)) for s in range(5)])
    first = state_of(path)
    write_events(path, [scalar_event(s, math.nan if s == 7 else float(s)) for s in range(5, 10)], append=True)
    st_ = path.stat()
    with open(path, "rb") as f:
        points = list(iter_points(f, first, inode=st_.st_ino, size=st_.st_size, decoder=DECODER, crc32c=crc32c))
    assert [p[1] for p in points] == [5, 6, 7, 8, 9]
    assert next(p[1] for p in points if math.isnan(p[3])) == 7
    assert state_of(path, first).tags["loss"].first_nonfinite_step == 7


def _records_for_split_test(draw_values: list[float], tf2: bool) -> list[bytes]:
    payloads = [file_version_event()]
    for i, v in enumerate(draw_values):
        if tf2:
            payloads.append(tf2_event(i, v, "epoch_loss" if i % 3 else "epoch_acc", metadata=i < 3))
        else:
            payloads.append(scalar_event(i, v, "loss" if i % 3 else "acc"))
        if i % 11 == 5:
            payloads.append(histogram_event(i))
    return payloads


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.lists(st.one_of(st.floats(width=32), st.sampled_from([0.0, 1.0, -1.0])), min_size=1, max_size=80),
    cuts=st.lists(st.floats(0, 1), max_size=6),
    tf2=st.booleans(),
    tail_size=st.sampled_from([0, 1, 3, 10]),
)
def test_incremental_equals_one_full_pass(
    tmp_path_factory: pytest.TempPathFactory, values: list[float], cuts: list[float], tf2: bool, tail_size: int
) -> None:
    data = b"".join(frame(p) for p in _records_for_split_test(values, tf2))
    folder = tmp_path_factory.mktemp("split")
    path = folder / "events.out.tfevents.1"
    path.write_bytes(b"")
    state = None
    written = 0
    for cut in [*sorted(int(c * len(data)) for c in cuts), len(data)]:
        with open(path, "ab") as f:
            f.write(data[written:cut])
        written = max(written, cut)
        state = summarize_with_tail(path, state, tail_size)
    assert state is not None
    full_path = folder / "events.out.tfevents.2"
    full_path.write_bytes(data)
    full = summarize_with_tail(full_path, None, tail_size)
    assert_same_state(state, full)
    # ... and the full pass agrees with TensorBoard
    tb = tensorboard_scalars(full_path)
    assert sorted(full.tags) == sorted(tb)
    for tag, points in tb.items():
        assert_summary(full.tags[tag], expected(tag, points, tail_size))


def summarize_with_tail(path: Path, previous: ScalarFileState | None, tail_size: int) -> ScalarFileState:
    st_ = path.stat()
    with open(path, "rb") as f:
        return summarize_file(f, previous, relpath=path.name, inode=st_.st_ino, size=st_.st_size,
                              mtime_ns=st_.st_mtime_ns, decoder=ProtobufDecoder(), crc32c=crc32c, tail_size=tail_size)


# --- the decoder: templates give exactly what upb gives ------------------------------------------------

_tags = st.sampled_from(["loss", "acc", "train/loss", "a" * 130, "ü", ""])
_value_kinds = st.sampled_from(["simple", "tensor", "tensor_nometa", "double", "half", "content", "histo", "int",
                                "other_plugin"])


def _value(kind: str, tag: str, x: float) -> Any:
    if kind == "simple":
        return summary_pb2.Summary.Value(tag=tag, simple_value=x)
    if kind == "histo":
        return summary_pb2.Summary.Value(tag=tag, histo=summary_pb2.HistogramProto(min=x, bucket=[1.0]))
    dtype = {"double": DT_DOUBLE, "half": DT_HALF, "int": DT_INT32}.get(kind, DT_FLOAT)
    v = summary_pb2.Summary.Value(tag=tag, tensor=tensor_proto(x if kind != "int" else 3, dtype,
                                                                 content=kind == "content"))
    if kind == "other_plugin":
        v.metadata.plugin_data.plugin_name = "custom"
    elif kind != "tensor_nometa":
        v.metadata.CopyFrom(SCALARS_METADATA)
    return v


VARINT_EDGES = [n for k in range(10) for n in ((1 << (7 * k)) - 1, 1 << (7 * k), (1 << (7 * k)) + 1) if n < 1 << 63]
"""Steps around every varint length boundary."""


@st.composite
def _events(draw: st.DrawFn) -> bytes:
    values = draw(st.lists(st.tuples(_value_kinds, _tags, st.floats(width=32)), max_size=4))
    event = event_pb2.Event(
        wall_time=draw(st.sampled_from([0.0, BASE_WALL_TIME, math.nan])) + draw(st.integers(0, 3)),
        step=draw(st.one_of(
            st.integers(-(1 << 63), (1 << 63) - 1),
            st.integers(0, 300),
            # every step varint length, around each boundary
            st.sampled_from(VARINT_EDGES),
        )),
    )
    if values or draw(st.booleans()):
        event.summary.CopyFrom(summary_pb2.Summary(value=[_value(k, t, x) for k, t, x in values]))
    if draw(st.integers(0, 9)) == 0:
        event.source_metadata.writer = "w"
    return cast(bytes, event.SerializeToString())


def _points_equal(a: Sequence[ScalarPoint], b: Sequence[ScalarPoint]) -> bool:
    return len(a) == len(b) and all(
        x[0] == y[0] and x[1] == y[1] and same(x[2], y[2]) and same(x[3], y[3]) for x, y in zip(a, b, strict=True)
    )


@settings(max_examples=150, deadline=None)
@given(events=st.lists(_events(), min_size=1, max_size=40), repeat=st.integers(1, 3))
def test_template_decoding_equals_protobuf_decoding(events: list[bytes], repeat: int) -> None:
    fast, slow = ProtobufDecoder(), ProtobufDecoder(templates=False)
    fast_plugins: dict[str, str] = {}
    slow_plugins: dict[str, str] = {}
    for payload in events * repeat:  # repeated: the second time round, templates are used
        assert _points_equal(fast.decode(payload, fast_plugins), slow.decode(payload, slow_plugins))
        assert fast_plugins == slow_plugins


def _concatenated(segments: list[dict[str, Series]]) -> dict[str, list[ScalarPoint]]:
    out: dict[str, list[ScalarPoint]] = {}
    for segment in segments:
        for tag, (steps, wall_times, values) in segment.items():
            assert len(steps) == len(wall_times) == len(values) > 0
            out.setdefault(tag, []).extend(zip(repeat(tag), steps, wall_times, values))
    return out


@settings(max_examples=150, deadline=None)
@given(events=st.lists(_events(), min_size=1, max_size=40), repeat_=st.integers(1, 3), cut=st.integers(0, 120))
def test_batch_decoding_equals_decoding_one_by_one(events: list[bytes], repeat_: int, cut: int) -> None:
    fast, slow = ProtobufDecoder(), ProtobufDecoder(templates=False)
    fast_plugins: dict[str, str] = {}
    slow_plugins: dict[str, str] = {}
    payloads = events * repeat_
    want: dict[str, list[ScalarPoint]] = {}
    for payload in payloads:
        for point in slow.decode(payload, slow_plugins):
            want.setdefault(point[0], []).append(point)
    got = _concatenated(fast.decode_batch(payloads[:cut], fast_plugins))
    for tag, points in _concatenated(fast.decode_batch(payloads[cut:], fast_plugins)).items():
        got.setdefault(tag, []).extend(points)
    assert sorted(got) == sorted(want)
    for tag in want:
        assert _points_equal(got[tag], want[tag])
    assert fast_plugins == slow_plugins
    assert _concatenated(slow.decode_batch(payloads, {})).keys() == want.keys()


def test_batch_decoding_keeps_order_across_layouts_of_one_tag() -> None:
    # TF2: the first value of a tag carries metadata (one layout), the later ones do not (another);
    # a simple_value of the same tag in between comes through a third.
    payloads = [tf2_event(0, 0.5, "t"), tf2_event(1, 1.5, "t", metadata=False), scalar_event(2, 2.5, "t"),
                tf2_event(3, 3.5, "t", metadata=False)] * 3
    decoder = ProtobufDecoder()
    plugins: dict[str, str] = {}
    segments = decoder.decode_batch(payloads, plugins)
    assert [p[1:] for p in _concatenated(segments)["t"]] == [
        (s % 4, BASE_WALL_TIME + s % 4, s % 4 + 0.5) for s in range(12)]
    assert plugins == {"t": "scalars"}


def test_templates_are_used_for_repeated_layouts() -> None:
    decoder = ProtobufDecoder()
    plugins: dict[str, str] = {}
    for step in range(300):
        decoder.decode(scalar_event(step, float(step)), plugins)
        decoder.decode(tf2_event(step, float(step), "t", metadata=step == 0), plugins)
    # one layout per tag and per length of the step varint (the first tf2 event differs: metadata)
    assert sum(len(v) for v in decoder._layouts.values()) <= 6
    assert pickle.loads(pickle.dumps(decoder))._layouts == {}


def test_invalid_payloads_give_no_points() -> None:
    plugins: dict[str, str] = {}
    good = scalar_event(3, 1.5)
    bad_utf8 = good.replace(b"loss", b"lo\xffs")  # the usual layout, but upb rejects the tag
    for payload in (b"", b"\x09", b"\x2a\x05\x0a", good[:-2], b"\xff" * 20, good + b"\x07", bad_utf8, bad_utf8):
        assert ProtobufDecoder().decode(payload, plugins) == ProtobufDecoder(templates=False).decode(payload, plugins)
    assert DECODER.decode(good, plugins) == [("loss", 3, BASE_WALL_TIME + 3, 1.5)]


def test_steps_of_every_varint_length(tmp_path: Path) -> None:
    steps = sorted({s + d for s in VARINT_EDGES if s < 1 << 60 for d in range(-3, 4) if s + d >= 0})
    payloads = [file_version_event()]
    for step in steps:
        payloads.append(multi_event(step, {"a": wavy(step), "b": -wavy(step)}, wall_time=1.0 + step % 7))
        payloads.append(tf2_event(step, wavy(step), "t", metadata=step == 0, wall_time=2.0))
        payloads.append(scalar_event(step, wavy(step), "s", wall_time=0.0 if step % 2 else 3.0))
    path = write_events(tmp_path / "events.out.tfevents.1", payloads)
    state = state_of(path)
    assert_matches_tensorboard(path, state)
    assert_same_state(state, state_of(path, decoder=ProtobufDecoder(templates=False)))
    assert state.tags["a"].last_step == steps[-1] and state.tags["t"].count == len(steps)
    st_ = path.stat()
    with open(path, "rb") as f:
        fast = list(iter_points(f, None, inode=st_.st_ino, size=st_.st_size, decoder=ProtobufDecoder(), crc32c=crc32c))
    with open(path, "rb") as f:
        slow = list(iter_points(f, None, inode=st_.st_ino, size=st_.st_size, decoder=ProtobufDecoder(templates=False),
                                crc32c=crc32c))
    assert _points_equal(fast, slow) and len(fast) == 4 * len(steps)


class DecodeOnly:
    """A decoder without ``decode_batch``: the core groups its points itself."""

    def decode(self, payload: bytes, plugins: dict[str, str]) -> Sequence[ScalarPoint]:
        return DECODER.decode(payload, plugins)


def test_decoders_without_batches(tmp_path: Path) -> None:
    train, _ = write_tf2_run(tmp_path, train_steps=50)
    path = write_events(tmp_path / "events.out.tfevents.9",
                        [multi_event(s, {"x": wavy(s), "y": math.nan if s == 9 else 1.0}) for s in range(20)])
    for p in (train, path):
        assert_same_state(state_of(p, decoder=DecodeOnly()), state_of(p))


def test_layout_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from tbhub.adapters.scalar_decoder import decoder as decoder_module

    monkeypatch.setattr(decoder_module, "_MAX_KEYS", 2)
    decoder = ProtobufDecoder()
    plugins: dict[str, str] = {}
    for step in range(20):
        for tag in ("a", "b", "c", "d"):
            assert decoder.decode(scalar_event(step, 1.0, tag), plugins) == [(tag, step, BASE_WALL_TIME + step, 1.0)]
    assert len(decoder._layouts) <= 2


# --- runs --------------------------------------------------------------------------------------------------


def test_run_tag_naming() -> None:
    assert run_tag("", "loss") == "loss"
    assert run_tag("train", "epoch_loss") == "train/epoch_loss"
    assert run_tag("train", "train/loss") == "train/loss"
    assert run_tag("train", "training/loss") == "train/training/loss"
    assert run_tag("train", "train") == "train"
    assert run_tag("a/b", "x") == "a/b/x"
    loose = ScalarFileState("ds/events.out.tfevents.1", 1, 0, 0, 0, tags={"loss": TagSummary(
        "loss", 1, 0, 0, 1, 1, 1.0, 1.0, 2.0, 2.0, 1, 2.0, 1, None, (2.0,))})
    assert list(merge_tags("", [loose])) == ["ds/loss"]


def test_merge_tags_of_a_keras_run(tmp_path: Path) -> None:
    run = tmp_path / "ds" / "run"
    train, validation = write_tf2_run(run, train_steps=40, validation_every=10)
    pytorch = write_events(
        run / "train" / "events.out.tfevents.5", [scalar_event(s, float(s), "train/loss") for s in range(3)]
    )
    root = write_scalar_file(run, range(5), ("hparams_metric",), name="events.out.tfevents.9")
    states = [state_of(p, relpath=p.relative_to(tmp_path).as_posix()) for p in (train, validation, pytorch, root)]
    merged = merge_tags("ds/run", states)
    assert list(merged) == sorted(["train/epoch_loss", "train/epoch_accuracy", "validation/epoch_loss",
                                   "validation/epoch_accuracy", "train/loss", "hparams_metric"])
    for key, summary in merged.items():
        assert summary.tag == key
    # each sub-run agrees with TensorBoard loading that sub-folder as a run
    for sub in ("train", "validation"):
        tb = tensorboard_scalars(run / sub)
        for tag in ("epoch_loss", "epoch_accuracy"):
            assert_summary(merged[f"{sub}/{tag}"], expected(f"{sub}/{tag}", tb[tag]))
    with pytest.raises(ValueError, match="not below"):
        merge_tags("ds/other", states)


def test_merge_tags_of_a_resumed_run(tmp_path: Path) -> None:
    run = tmp_path / "ds" / "run"
    # the job wrote steps 0..99, was preempted, restarted from a checkpoint at step 80 and got to 120
    old = write_events(run / "events.out.tfevents.100",
                       [scalar_event(s, 10.0 - s / 20, wall_time=1000.0 + s) for s in range(100)])
    new = write_events(run / "events.out.tfevents.200",
                       [scalar_event(s, math.nan if s == 90 else 9.0 - s / 20, wall_time=5000.0 + s)
                        for s in range(80, 121)])
    states = [state_of(p, relpath=p.relative_to(tmp_path).as_posix()) for p in (new, old)]
    loss = merge_tags("ds/run", states)["loss"]
    assert (loss.count, loss.nan_count) == (141, 1)
    assert (loss.first_step, loss.first_wall_time) == (0, 1000.0)
    assert (loss.last_step, loss.last_wall_time, loss.last_value) == (120, 5120.0, 3.0)
    assert (loss.max_value, loss.max_step) == (10.0, 0)
    assert (loss.min_value, loss.min_step) == (3.0, 120)
    assert loss.first_nonfinite_step == 90
    assert loss.tail == tuple(f32(9.0 - s / 20) for s in range(111, 121))
    assert merge_tags("ds/run", []) == {}


# --- many files ----------------------------------------------------------------------------------------


def _jobs(paths: list[Path], root: Path, previous: dict[str, ScalarFileState] | None = None
          ) -> list[tuple[str, FileEntry, ScalarFileState | None]]:
    jobs = []
    for p in paths:
        st_ = p.stat()
        rel = p.relative_to(root).as_posix()
        jobs.append((str(p), FileEntry(rel, st_.st_ino, st_.st_size, st_.st_mtime_ns), (previous or {}).get(rel)))
    return jobs


@pytest.mark.parametrize("workers", [1, 2])
def test_summarize_many(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int) -> None:
    from tbhub.core.scalars import parallel

    monkeypatch.setattr(parallel, "PARALLEL_MIN_BYTES", 0)
    paths = [write_scalar_file(tmp_path / f"r{i}", range(i * 50 + 1)) for i in range(4)]
    paths += list(write_tf2_run(tmp_path / "keras"))
    results = summarize_many(_jobs(paths, tmp_path), decoder=DECODER, crc32c=crc32c, workers=workers)
    assert all(r is not None for r in results)
    for path, result in zip(paths, results, strict=True):
        assert result is not None and result.relpath == path.relative_to(tmp_path).as_posix()
        assert_same_state(result, state_of(path))
    previous = {r.relpath: r for r in results if r is not None}
    write_events(paths[0], [scalar_event(1000, 5.0)], append=True)
    paths[1].unlink()
    jobs = _jobs([p for p in paths if p.exists()], tmp_path, previous)
    jobs.insert(1, (str(paths[1]), FileEntry("r1/gone", 1, 10, 1), None))
    again = summarize_many(jobs, decoder=DECODER, crc32c=crc32c, workers=workers)
    assert again[1] is None
    assert again[0] is not None and again[0].tags["loss"].last_step == 1000
    assert again[2] is previous[jobs[2][1].relpath] or again[2] == previous[jobs[2][1].relpath]  # not reopened


def test_states_pickle(tmp_path: Path) -> None:
    state = state_of(write_tf2_run(tmp_path)[0])
    assert pickle.loads(pickle.dumps(state)) == state
