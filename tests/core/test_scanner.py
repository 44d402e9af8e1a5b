from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO, cast
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorboard.compat.proto import event_pb2

from eventfiles import (
    UNICODE_RUN,
    corrupt_header,
    corrupt_payload,
    file_version_event,
    frame,
    raw_loader_count,
    record_layout,
    scalar_event,
    tensor_scalar_event,
    truncate_at,
    write_absurd_length_file,
    write_events,
    write_scalar_file,
    write_tf2_run,
    write_with_event_file_writer,
    write_zero_byte_file,
)
from tbhub.adapters.crc import crc32c
from tbhub.core import record_walk, scanner
from tbhub.core.models import CorruptRecord, EventFileScan, FileEntry
from tbhub.core.scanner import can_reuse, scan_event_file, scan_many
from tbhub.core.tfrecord import crc32c_py


class CountingFile(io.RawIOBase):
    """A read-only file that counts the bytes handed out by ``read``."""

    def __init__(self, path: Path) -> None:
        self._f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed in close()
        self.bytes_read = 0
        self.reads: list[tuple[int, int]] = []

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def read(self, size: int = -1) -> bytes:
        at = self._f.tell()
        data = self._f.read(size)
        assert data is not None
        self.bytes_read += len(data)
        self.reads.append((at, len(data)))
        return data

    def close(self) -> None:
        self._f.close()
        super().close()


def entry_for(path: Path, relpath: str | None = None) -> FileEntry:
    st_ = os.stat(path)
    return FileEntry(relpath or path.name, st_.st_ino, st_.st_size, st_.st_mtime_ns)


def scan(
    path: Path, previous: EventFileScan | None = None, *, verify: bool = False, crc: object = crc32c
) -> EventFileScan:
    with open(path, "rb") as f:
        return scan_event_file(f, entry_for(path), previous, verify=verify, crc32c=crc)  # type: ignore[arg-type]


@contextmanager
def counting(path: Path) -> Iterator[CountingFile]:
    f = CountingFile(path)
    try:
        yield f
    finally:
        f.close()


def scan_counting(
    path: Path, previous: EventFileScan | None = None, *, verify: bool = False
) -> tuple[EventFileScan, int]:
    with counting(path) as f:
        result = scan_event_file(cast(BinaryIO, f), entry_for(path), previous, verify=verify, crc32c=crc32c)
        return result, f.bytes_read


# --- well-formed files ---------------------------------------------------------------------------


@pytest.mark.parametrize("crc", [crc32c, crc32c_py], ids=["c", "python"])
@pytest.mark.parametrize("verify", [False, True])
def test_well_formed_file(tmp_path: Path, crc: object, verify: bool) -> None:
    path = write_scalar_file(tmp_path / "ds" / "run", range(5, 305), ("loss", "accuracy"))
    result = scan(path, verify=verify, crc=crc)
    assert result.records == raw_loader_count(path) == 601
    assert result.scanned_offset == result.size == path.stat().st_size
    assert (result.first_step, result.last_step) == (5, 304)
    assert (result.first_wall_time, result.last_wall_time) == (1_700_000_000.0, 1_700_000_304.0)
    assert not result.truncated and result.corrupt is None
    assert result.verified is verify
    assert result.relpath == path.name


def test_file_written_by_tensorboards_event_file_writer(tmp_path: Path) -> None:
    path = write_with_event_file_writer(tmp_path / "run", range(10, 20))
    result = scan(path)
    assert result.records == raw_loader_count(path) == 11
    assert (result.first_step, result.last_step) == (10, 19)
    assert result.last_wall_time == 1_700_000_019.0
    # The first record is the writer's file_version record, stamped with the current time.
    assert result.first_wall_time is not None and result.first_wall_time > 1_700_000_019.0


def test_tf2_train_and_validation_subruns(tmp_path: Path) -> None:
    train, validation = write_tf2_run(tmp_path / UNICODE_RUN, train_steps=20, validation_every=5)
    assert train.name.endswith(".v2") and train.parent.name == "train"
    t, v = scan(train), scan(validation)
    assert t.records == raw_loader_count(train) == 41
    assert v.records == raw_loader_count(validation) == 9
    assert (t.first_step, t.last_step, v.first_step, v.last_step) == (0, 19, 0, 15)


def test_first_step_skips_file_version_records_only(tmp_path: Path) -> None:
    path = write_events(
        tmp_path / "f",
        [file_version_event(5.0), file_version_event(6.0), scalar_event(0, 1.0, wall_time=7.0),
         scalar_event(9, 1.0, wall_time=8.0)],
    )
    result = scan(path)
    assert (result.first_step, result.first_wall_time) == (0, 5.0)
    assert (result.last_step, result.last_wall_time) == (9, 8.0)


def test_file_with_only_a_file_version_record(tmp_path: Path) -> None:
    result = scan(write_events(tmp_path / "f", [file_version_event(5.0)]))
    assert result.records == 1
    assert result.first_step is None
    assert (result.first_wall_time, result.last_step, result.last_wall_time) == (5.0, 0, 5.0)


def test_negative_and_huge_steps(tmp_path: Path) -> None:
    path = write_events(tmp_path / "f", [scalar_event(-3, 1.0), tensor_scalar_event((1 << 62) + 1, 2.0)])
    result = scan(path)
    assert (result.first_step, result.last_step) == (-3, (1 << 62) + 1)


def test_payloads_larger_than_the_read_buffer_are_seeked_over(tmp_path: Path) -> None:
    big = event_pb2.Event(step=1, wall_time=2.0, graph_def=b"g" * 300_000).SerializeToString()
    path = write_events(tmp_path / "f", [file_version_event(), big, scalar_event(2, 1.0), big])
    result, read = scan_counting(path)
    assert result.records == raw_loader_count(path) == 4
    assert (result.first_step, result.last_step) == (1, 2)  # the highest step, not the last record's
    assert read < 4 * scanner.READ_SIZE < path.stat().st_size


def test_zero_byte_file(tmp_path: Path) -> None:
    path = write_zero_byte_file(tmp_path / "events.out.tfevents.0")
    result = scan(path)
    assert raw_loader_count(path) == 0
    assert result == EventFileScan(path.name, result.inode, 0, result.mtime_ns, 0, 0)


# --- damaged files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cut", [1, 4, 8, 11, 12, 13, 20, -4, -1])
def test_truncated_last_record(tmp_path: Path, cut: int) -> None:
    path = write_scalar_file(tmp_path, range(50))
    last = record_layout(path)[-1]
    truncate_at(path, last.offset + cut if cut > 0 else last.end + cut)
    result = scan(path)
    assert result.records == raw_loader_count(path) == 50
    assert result.truncated and result.corrupt is None
    assert result.scanned_offset == last.offset
    assert result.last_step == 48


def test_truncated_first_record(tmp_path: Path) -> None:
    path = truncate_at(write_scalar_file(tmp_path, range(3)), 5)
    result = scan(path)
    assert result.records == raw_loader_count(path) == 0
    assert result.truncated and result.scanned_offset == 0
    assert result.first_step is result.last_step is result.first_wall_time is None


def test_bad_header_stops_like_tensorboard(tmp_path: Path) -> None:
    path = write_scalar_file(tmp_path, range(100))
    offset = corrupt_header(path, 40, at=3)
    for verify in (False, True):
        result = scan(path, verify=verify)
        assert result.records == raw_loader_count(path) == 40
        assert result.corrupt == CorruptRecord(offset, "bad header crc")
        assert not result.truncated
        assert result.scanned_offset == offset
        assert result.last_step == 38  # record 39 is step 38: record 0 is the file version


def test_bad_header_crc_bytes(tmp_path: Path) -> None:
    path = write_scalar_file(tmp_path, range(10))
    offset = corrupt_header(path, 0, at=10)
    result = scan(path)
    assert result.records == raw_loader_count(path) == 0
    assert result.corrupt == CorruptRecord(offset, "bad header crc")
    assert result.first_step is result.last_step is None


def test_corrupt_payload_with_and_without_verify(tmp_path: Path) -> None:
    path = write_scalar_file(tmp_path, range(100))
    offset = corrupt_payload(path, 30, at=5)
    verified = scan(path, verify=True)
    assert verified.records == raw_loader_count(path) == 30
    assert verified.corrupt == CorruptRecord(offset, "bad payload crc")
    assert verified.scanned_offset == offset and verified.verified
    assert verified.last_step == 28
    # Without verify payloads are skipped unread: the damage goes unnoticed (documented).
    quick = scan(path)
    assert quick.records == 101 and quick.corrupt is None and not quick.verified


def test_corrupt_footer_crc(tmp_path: Path) -> None:
    path = write_scalar_file(tmp_path, range(5))
    rec = record_layout(path)[2]
    with open(path, "r+b") as f:
        f.seek(rec.end - 1)
        byte = f.read(1)
        f.seek(rec.end - 1)
        f.write(bytes([byte[0] ^ 0x40]))
    result = scan(path, verify=True)
    assert result.records == raw_loader_count(path) == 2
    assert result.corrupt == CorruptRecord(rec.offset, "bad payload crc")


def test_damaged_last_payload_without_verify_does_not_raise(tmp_path: Path) -> None:
    path = write_scalar_file(tmp_path, range(3))
    last = record_layout(path)[-1]
    with open(path, "r+b") as f:
        f.seek(last.payload_offset)
        f.write(b"\xff" * last.length)  # not a protobuf any more
    result = scan(path)
    # The highest step among the readable records; the damaged last one has no wall time to give.
    assert result.records == 4 and result.last_step == 1 and result.last_wall_time is None


@pytest.mark.parametrize("length", [1 << 62, (1 << 64) - 1, 1 << 40, 70_000])
def test_absurd_length_is_truncation_without_allocating(tmp_path: Path, length: int) -> None:
    path = write_absurd_length_file(tmp_path / "f", length=length, records_before=3)
    for verify in (False, True):
        result, read = scan_counting(path, verify=verify)
        assert result.records == 3 and result.truncated and result.corrupt is None
        assert result.scanned_offset == record_layout(path)[3].offset
        assert read <= path.stat().st_size


def test_file_shorter_than_discovery_said(tmp_path: Path) -> None:
    path = write_scalar_file(tmp_path, range(20))
    entry = entry_for(path)
    last = record_layout(path)[-1]
    truncate_at(path, last.end - 2)
    with open(path, "rb") as f:
        result = scan_event_file(f, entry, crc32c=crc32c)
    assert result.records == 20 and result.truncated and result.scanned_offset == last.offset


def test_file_longer_than_discovery_said_is_read_up_to_the_entry_size(tmp_path: Path) -> None:
    path = write_scalar_file(tmp_path, range(20))
    entry = entry_for(path)
    write_events(path, [scalar_event(20, 1.0)], append=True)
    with open(path, "rb") as f:
        result = scan_event_file(f, entry, crc32c=crc32c)
    assert result.records == 21 and result.scanned_offset == entry.size and not result.truncated


# --- incremental scans ----------------------------------------------------------------------------


def test_resume_after_append_reads_only_the_new_bytes(tmp_path: Path) -> None:
    path = write_scalar_file(tmp_path, range(1000), ("loss", "lr"))
    first, read = scan_counting(path)
    # A header cut by a buffer boundary is read twice, payloads past one are skipped.
    assert read < first.size + 100
    write_events(path, [scalar_event(s, 0.1, "loss") for s in range(1000, 1500)], append=True)
    appended = path.stat().st_size - first.size
    second, read = scan_counting(path, first)
    assert read <= appended
    assert second.records == raw_loader_count(path) == 2501
    assert (second.first_step, second.first_wall_time) == (first.first_step, first.first_wall_time)
    assert (second.last_step, second.last_wall_time) == (1499, 1_700_001_499.0)
    assert second.scanned_offset == second.size == path.stat().st_size


def test_resume_without_growth_reads_nothing(tmp_path: Path) -> None:
    path = write_scalar_file(tmp_path, range(100))
    first = scan(path)
    os.utime(path, ns=(1, 1))  # touched but not grown: can_reuse says no, the resume reads nothing
    second, read = scan_counting(path, first)
    assert read == 0
    assert replace(second, mtime_ns=first.mtime_ns) == first


def test_resume_completes_a_truncated_record(tmp_path: Path) -> None:
    full = write_scalar_file(tmp_path / "full", range(200)).read_bytes()
    path = tmp_path / "growing"
    cut = record_layout(tmp_path / "full" / "events.out.tfevents.1700000000.host.1.0")[150].offset + 7
    path.write_bytes(full[:cut])
    first = scan(path)
    assert first.truncated and first.records == 150
    with open(path, "ab") as f:  # the writer finishes the record and goes on: same inode
        f.write(full[cut:])
    second, read = scan_counting(path, first)
    assert read <= len(full) - first.scanned_offset
    assert second.records == raw_loader_count(path) == 201
    assert not second.truncated and second.last_step == 199


def test_resume_finds_the_first_step_in_new_records(tmp_path: Path) -> None:
    path = write_events(tmp_path / "f", [file_version_event(3.0)])
    first = scan(path)
    assert first.first_step is None
    write_events(path, [scalar_event(42, 1.0), scalar_event(43, 1.0)], append=True)
    second = scan(path, first)
    assert (second.records, second.first_step, second.first_wall_time, second.last_step) == (3, 42, 3.0, 43)


def test_resume_of_an_empty_file(tmp_path: Path) -> None:
    path = write_zero_byte_file(tmp_path / "f")
    first = scan(path)
    write_events(path, [file_version_event(3.0), scalar_event(1, 1.0)], append=True)
    second = scan(path, first)
    assert (second.records, second.first_step, second.first_wall_time, second.last_step) == (2, 1, 3.0, 1)


def test_replaced_file_is_scanned_from_the_start(tmp_path: Path) -> None:
    path = write_scalar_file(tmp_path, range(100))
    first = scan(path)
    replacement = write_scalar_file(tmp_path / "new", range(500, 700))
    os.replace(replacement, path)  # a new inode, bigger
    second, read = scan_counting(path, first)
    assert read == path.stat().st_size
    assert (second.records, second.first_step, second.last_step) == (201, 500, 699)


def test_shrunk_file_is_scanned_from_the_start(tmp_path: Path) -> None:
    path = write_scalar_file(tmp_path, range(100))
    first = scan(path)
    with open(path, "r+b") as f:  # same inode, rewritten shorter
        f.truncate(0)
        f.write(b"".join(frame(scalar_event(s, 1.0)) for s in range(7, 10)))
    second, read = scan_counting(path, first)
    assert read == path.stat().st_size
    assert (second.records, second.first_step, second.last_step) == (3, 7, 9)


def test_corrupt_previous_scan_is_redone_from_the_start(tmp_path: Path) -> None:
    path = write_scalar_file(tmp_path, range(100))
    good = path.read_bytes()
    corrupt_header(path, 50)
    first = scan(path)
    assert first.corrupt is not None
    path.write_bytes(good)  # repaired in place
    second, read = scan_counting(path, first)
    assert read == len(good) and second.records == 101 and second.corrupt is None


def test_verify_after_an_unverified_scan_rereads_everything(tmp_path: Path) -> None:
    path = write_scalar_file(tmp_path, range(100))
    first = scan(path)
    write_events(path, [scalar_event(100, 1.0)], append=True)
    second, read = scan_counting(path, first, verify=True)
    assert read == path.stat().st_size and second.verified and second.records == 102
    write_events(path, [scalar_event(101, 1.0)], append=True)
    third, read = scan_counting(path, second, verify=True)
    assert read < 100 and third.verified and third.records == 103


def test_can_reuse(tmp_path: Path) -> None:
    path = write_scalar_file(tmp_path, range(10))
    result = scan(path)
    entry = entry_for(path)
    assert can_reuse(result, entry, verify=False)
    assert not can_reuse(result, entry, verify=True)
    assert can_reuse(replace(result, verified=True), entry, verify=True)
    assert not can_reuse(None, entry, verify=False)
    assert not can_reuse(result, replace(entry, inode=entry.inode + 1), verify=False)
    assert not can_reuse(result, replace(entry, size=entry.size + 1), verify=False)
    assert not can_reuse(result, replace(entry, mtime_ns=entry.mtime_ns + 1), verify=False)


# --- many files -------------------------------------------------------------------------------------


def _jobs(tmp_path: Path) -> list[tuple[str, FileEntry, EventFileScan | None]]:
    paths = [write_scalar_file(tmp_path / f"run{i}", range(i * 37)) for i in range(6)]
    paths.append(truncate_at(write_scalar_file(tmp_path / "cut", range(30)), 100))
    return [(str(p), entry_for(p, str(p.relative_to(tmp_path))), None) for p in paths]


def test_scan_many_serial_keeps_input_order(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path)
    results = scan_many(jobs, verify=False, crc32c=crc32c, workers=2)
    assert [r.relpath for r in results] == [e.relpath for _, e, _ in jobs]
    assert [r.records for r in results] == [raw_loader_count(Path(p)) for p, _, _ in jobs]


def test_scan_many_in_worker_processes_equals_serial(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path)
    serial = scan_many(jobs, verify=True, crc32c=crc32c, workers=1)
    with mock.patch.object(scanner, "PARALLEL_MIN_BYTES", 0):
        parallel = scan_many(jobs, verify=True, crc32c=crc32c, workers=2)
    assert parallel == serial


def test_scan_many_reports_vanished_files_as_none(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path)
    Path(jobs[2][0]).unlink()
    results = scan_many(jobs, verify=False, crc32c=crc32c, workers=1)
    assert results[2] is None
    assert [r is None for r in results].count(True) == 1


def test_scan_many_resumes(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path)
    first = scan_many(jobs, verify=False, crc32c=crc32c, workers=1)
    path = Path(jobs[1][0])
    write_events(path, [scalar_event(1000, 1.0)], append=True)
    again = [(p, entry_for(Path(p), e.relpath), prev) for (p, e, _), prev in zip(jobs, first, strict=True)]
    second = scan_many(again, verify=False, crc32c=crc32c, workers=1)
    assert second[1].records == first[1].records + 1 and second[1].last_step == 1000
    assert [s.records for s in second[2:]] == [f.records for f in first[2:]]


# --- property: equal to TensorBoard -------------------------------------------------------------

_payloads = st.one_of(
    st.builds(
        scalar_event,
        st.integers(0, 1 << 40),
        st.floats(allow_nan=False, width=32),
        st.text(max_size=20),
        st.floats(0, 2e9),
    ),
    st.builds(file_version_event, st.floats(0, 2e9)),
    st.binary(max_size=120),
    # Now and then a payload larger than small read buffers, to exercise the seek path.
    st.integers(200, 3000).map(lambda n: b"\x08\x01" + b"\x00" * n),
)


@st.composite
def damaged_files(draw: st.DrawFn) -> tuple[bytes, str]:
    payloads = draw(st.lists(_payloads, max_size=40))
    data = bytearray(b"".join(frame(p) for p in payloads))
    offsets = []
    pos = 0
    for p in payloads:
        offsets.append((pos, len(p)))
        pos += 16 + len(p)
    kind = draw(st.sampled_from(["none", "truncate", "header", "payload"]))
    if kind == "truncate" and data:
        del data[draw(st.integers(0, len(data) - 1)) :]
    elif kind == "header" and offsets:
        at, _ = draw(st.sampled_from(offsets))
        data[at + draw(st.integers(0, 11))] ^= draw(st.integers(1, 255))
    elif kind == "payload" and offsets:
        at, length = draw(st.sampled_from(offsets))
        data[at + 12 + draw(st.integers(0, length + 3))] ^= draw(st.integers(1, 255))
    else:
        kind = "none"
    return bytes(data), kind


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged_files(), st.sampled_from([12, 13, 64, 1000, 64 * 1024]), st.booleans())
def test_counts_equal_tensorboards_raw_loader(
    tmp_path_factory: pytest.TempPathFactory, file: tuple[bytes, str], read_size: int, verify: bool
) -> None:
    data, kind = file
    path = tmp_path_factory.mktemp("prop") / "events.out.tfevents.1"
    path.write_bytes(data)
    with mock.patch.object(scanner, "READ_SIZE", read_size):
        result = scan(path, verify=verify)
    expected = raw_loader_count(path)
    if verify or kind != "payload":
        assert result.records == expected
    else:
        assert result.records >= expected
    # Whatever the damage, the offsets are consistent with the records counted.
    layout = record_layout_from_bytes(data)
    assert result.scanned_offset == (layout[result.records - 1][1] if result.records else 0)
    assert result.scanned_offset <= len(data)
    assert result.truncated == (result.corrupt is None and result.scanned_offset < len(data))


def record_layout_from_bytes(data: bytes) -> list[tuple[int, int]]:
    """(offset, end) of each record, trusting the lengths (for offset bookkeeping only)."""
    out = []
    pos = 0
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from("<Q", data, pos)
        out.append((pos, pos + 16 + length))
        pos += 16 + length
    return out


# --- the periodic fast path -------------------------------------------------------------------------


def test_damage_inside_a_long_periodic_stretch(tmp_path: Path) -> None:
    path = write_scalar_file(tmp_path / "a", range(3000), ("loss", "accuracy", "lr"))
    good = path.read_bytes()
    offset = corrupt_header(path, 7777, at=4)
    result = scan(path)
    assert result.records == raw_loader_count(path) == 7777
    assert result.corrupt == CorruptRecord(offset, "bad header crc")
    assert result.last_step == (7776 - 1) // 3
    path.write_bytes(good)
    cut = record_layout(path)[5000].offset + 3
    truncate_at(path, cut)
    result = scan(path)
    assert result.records == 5000 and result.truncated and result.scanned_offset == cut - 3


def indexed_payload(index: int, length: int) -> bytes:
    """An Event of exactly ``length`` (>= 9) bytes whose step is ``index``: a padded 5-byte varint
    step (field 2) and an unknown bytes field 15 as filler."""
    step = bytes([0x80 | (index >> 7 * i) & 0x7F for i in range(4)]) + bytes([index >> 28 & 0x7F])
    head = b"\x10" + step + b"\x7a"
    pad = length - len(head) - 1
    if pad >= 128:
        pad -= 1
        return head + bytes([0x80 | pad & 0x7F, pad >> 7]) + b"\x00" * pad
    return head + bytes([pad]) + b"\x00" * pad


@st.composite
def periodic_files(draw: st.DrawFn) -> tuple[bytes, str, int]:
    """Records repeating a pattern of payload lengths (what real event files look like), with
    occasional other records in between, then the same damage as above. Record i has step i."""
    lengths = draw(st.lists(st.integers(9, 40), min_size=1, max_size=6))
    extra = draw(st.lists(st.integers(9, 300), max_size=3))
    repeats = draw(st.integers(1, 120))
    disrupt = draw(st.sets(st.integers(0, repeats), max_size=4))
    sizes = []
    for r in range(repeats):
        if r in disrupt:
            sizes.extend(extra)
        sizes.extend(lengths)
    payloads = [indexed_payload(i, n) for i, n in enumerate(sizes)]
    data = bytearray(b"".join(frame(p) for p in payloads))
    offsets = []
    pos = 0
    for p in payloads:
        offsets.append((pos, len(p)))
        pos += 16 + len(p)
    kind = draw(st.sampled_from(["none", "truncate", "header", "payload"]))
    damaged = len(payloads)
    if kind == "truncate":
        del data[draw(st.integers(0, len(data) - 1)) :]
    elif kind == "header":
        damaged = draw(st.integers(0, len(offsets) - 1))
        data[offsets[damaged][0] + draw(st.integers(0, 11))] ^= draw(st.integers(1, 255))
    elif kind == "payload":
        damaged = draw(st.integers(0, len(offsets) - 1))
        at, length = offsets[damaged]
        data[at + 12 + draw(st.integers(0, length + 3))] ^= draw(st.integers(1, 255))
    return bytes(data), kind, damaged


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(periodic_files(), st.sampled_from([12, 100, 1000, 64 * 1024]), st.booleans())
def test_periodic_files_count_like_tensorboard(
    tmp_path_factory: pytest.TempPathFactory, file: tuple[bytes, str, int], read_size: int, verify: bool
) -> None:
    data, kind, damaged = file
    path = tmp_path_factory.mktemp("periodic") / "events.out.tfevents.1"
    path.write_bytes(data)
    with (
        mock.patch.object(record_walk, "READ_SIZE", read_size),
        mock.patch.object(record_walk, "_READ_MAX", read_size * 4),
    ):
        result = scan(path, verify=verify)
    expected = raw_loader_count(path)
    if verify or kind != "payload":
        assert result.records == expected
    else:
        assert result.records >= expected
    layout = record_layout_from_bytes(data)
    assert result.scanned_offset == (layout[result.records - 1][1] if result.records else 0)
    assert result.truncated == (result.corrupt is None and result.scanned_offset < len(data))
    if result.records:
        if damaged > 0:
            assert result.first_step == 0
        if result.records - 1 != damaged:
            if kind == "payload" and not verify and damaged < result.records:
                # The damaged record's step is read unchecked and may be any value: the highest
                # step is at least the last intact record's.
                assert result.last_step is not None and result.last_step >= result.records - 1
            else:
                assert result.last_step == result.records - 1
