from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as tb_masked_crc32c

from eventfiles import file_version_event, frame, scalar_event, tensor_scalar_event
from tbhub.adapters.crc import crc32c as crc32c_c
from tbhub.core.tfrecord import (
    HEADER_SIZE,
    EventHead,
    crc32c_py,
    frame_record,
    mask_crc,
    masked_crc32c,
    parse_event_head,
    record_length,
)


def test_crc32c_known_vectors() -> None:
    # RFC 3720 (iSCSI) B.4 and the usual check value.
    assert crc32c_py(b"") == 0
    assert crc32c_py(b"123456789") == 0xE3069283
    assert crc32c_py(bytes(32)) == 0x8A9136AA
    assert crc32c_py(b"\xff" * 32) == 0x62A8AB43


@given(st.binary(max_size=300))
def test_pure_python_crc_matches_c_and_tensorboard(data: bytes) -> None:
    assert crc32c_py(data) == crc32c_c(data)
    assert masked_crc32c(data) == masked_crc32c(data, crc32c_c) == tb_masked_crc32c(data)


def test_mask_is_32_bit() -> None:
    for crc in (0, 1, 0xFFFFFFFF, 0x80000000, 0x12345678):
        assert 0 <= mask_crc(crc) <= 0xFFFFFFFF


@given(st.binary(max_size=200))
def test_frame_record_matches_tensorboard_record_writer(payload: bytes) -> None:
    assert frame_record(payload) == frame_record(payload, crc32c_c) == frame(payload)


def test_record_length_checks_the_header_crc() -> None:
    record = frame(b"x" * 300)
    assert record_length(record[:HEADER_SIZE]) == 300
    for i in range(HEADER_SIZE):
        damaged = bytearray(record[:HEADER_SIZE])
        damaged[i] ^= 0x01
        # CRC-32 detects every error burst of up to 32 bits, so any single-byte flip is caught.
        assert record_length(bytes(damaged)) is None
    with pytest.raises(ValueError):
        record_length(record[:8])


def test_record_length_returns_absurd_lengths_unchanged() -> None:
    header = struct.pack("<Q", 1 << 62)
    header += struct.pack("<I", tb_masked_crc32c(header))
    assert record_length(header, crc32c_c) == 1 << 62


def test_parse_event_head_of_real_events() -> None:
    assert parse_event_head(file_version_event(12.5)) == EventHead(12.5, 0, "brain.Event:2")
    assert parse_event_head(scalar_event(7, 0.5, wall_time=99.0)) == EventHead(99.0, 7, None)
    assert parse_event_head(tensor_scalar_event(1 << 40, 0.5, wall_time=3.0)) == EventHead(3.0, 1 << 40, None)
    assert parse_event_head(b"") == EventHead(0.0, 0, None)  # all proto3 defaults


@given(
    wall_time=st.floats(allow_nan=False),
    step=st.integers(-(1 << 63), (1 << 63) - 1),
    file_version=st.one_of(st.none(), st.text(max_size=20)),
    tag=st.text(max_size=30),
)
def test_parse_event_head_matches_protobuf(
    wall_time: float, step: int, file_version: str | None, tag: str
) -> None:
    event = event_pb2.Event(wall_time=wall_time, step=step)
    if file_version is not None:
        event.file_version = file_version
    else:
        event.summary.value.add(tag=tag, simple_value=1.0)
    data = event.SerializeToString()
    head = parse_event_head(data)
    assert head is not None
    assert head.step == step
    assert head.wall_time == wall_time or (math.isnan(head.wall_time) and math.isnan(wall_time))
    assert head.file_version == file_version
    # A prefix that still holds fields 1-3 gives the same answer without the rest of the event.
    assert parse_event_head(data[: len(data) // 2], complete=False) is not None


@given(st.binary(max_size=200))
def test_parse_event_head_never_raises_on_garbage(data: bytes) -> None:
    head = parse_event_head(data)
    assert head is None or isinstance(head, EventHead)
    head = parse_event_head(data, complete=False)
    assert head is None or isinstance(head, EventHead)


@settings(max_examples=50)
@given(st.integers(0, 20))
def test_parse_event_head_rejects_truncated_complete_payloads(cut: int) -> None:
    data = scalar_event(300, 0.25, tag="a-longer-tag-name")
    assert parse_event_head(data[: len(data) - 1 - cut]) is None
