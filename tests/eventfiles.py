"""Write real TensorBoard event files for tests, and damage them the ways real files get damaged.

Everything here is produced by TensorBoard's own code (``event_pb2`` protos, its ``RecordWriter``
framing and ``EventFileWriter``), never by tbhub, so tests compare tbhub against an independent
implementation. Nothing here may import ``tbhub``.

Typical use::

    path = write_scalar_file(tmp_path / "ds" / "run", steps=range(100))
    corrupt_payload(path, record=3)
    assert raw_loader_count(path) == 3
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
from tensorboard.plugins.scalar import summary_v2 as scalar_summary_v2
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tensorboard.summary.writer.record_writer import RecordWriter

__all__ = [
    "UNICODE_RUN",
    "Record",
    "corrupt_header",
    "corrupt_payload",
    "file_version_event",
    "frame",
    "raw_loader_count",
    "record_layout",
    "scalar_event",
    "tensor_scalar_event",
    "truncate_at",
    "write_absurd_length_file",
    "write_events",
    "write_scalar_file",
    "write_tf2_run",
    "write_with_event_file_writer",
    "write_zero_byte_file",
]

UNICODE_RUN = "données/run-α β/训练"
"""A dataset/run path with non-ASCII characters and a space."""

BASE_WALL_TIME = 1_700_000_000.0


def file_version_event(wall_time: float = BASE_WALL_TIME, version: str = "brain.Event:2") -> bytes:
    """The record every writer puts first: ``file_version`` and a wall time, step 0."""
    return event_pb2.Event(wall_time=wall_time, file_version=version).SerializeToString()


def scalar_event(step: int, value: float, tag: str = "loss", wall_time: float | None = None) -> bytes:
    """A TF1 / PyTorch / tensorboardX scalar: ``summary.value.simple_value``."""
    wt = BASE_WALL_TIME + step if wall_time is None else wall_time
    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])
    return event_pb2.Event(wall_time=wt, step=step, summary=summary).SerializeToString()


def tensor_scalar_event(
    step: int, value: float, tag: str = "epoch_loss", wall_time: float | None = None
) -> bytes:
    """A TF2 scalar: a tensor summary with plugin ``scalars`` (what ``tf.summary.scalar`` writes)."""
    wt = BASE_WALL_TIME + step if wall_time is None else wall_time
    summary = scalar_summary_v2.scalar_pb(tag, value)
    return event_pb2.Event(wall_time=wt, step=step, summary=summary).SerializeToString()


def frame(payload: bytes) -> bytes:
    """``payload`` framed as one TFRecord by TensorBoard's own ``RecordWriter``."""
    out = io.BytesIO()
    RecordWriter(out).write(payload)
    return out.getvalue()


def write_events(path: Path, payloads: Iterable[bytes], *, append: bool = False) -> Path:
    """Write (or append) ``payloads`` as TFRecords to ``path``, creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab" if append else "wb") as f:
        for payload in payloads:
            f.write(frame(payload))
    return path


def write_scalar_file(
    run_dir: Path,
    steps: Iterable[int] = range(10),
    tags: Sequence[str] = ("loss",),
    *,
    name: str = "events.out.tfevents.1700000000.host.1.0",
    v2: bool = False,
) -> Path:
    """An event file like PyTorch's ``SummaryWriter`` (or TF2 with ``v2=True``) writes:
    a file_version record, then one record per (step, tag); step ``s`` has wall time BASE + s."""
    make = tensor_scalar_event if v2 else scalar_event
    payloads = [file_version_event()]
    for step in steps:
        payloads.extend(make(step, 1.0 / (step + 1), tag) for tag in tags)
    return write_events(run_dir / name, payloads)


def write_tf2_run(
    run_dir: Path, train_steps: int = 20, validation_every: int = 5, *, host: str = "host"
) -> tuple[Path, Path]:
    """A Keras-style TF2 run: ``train/`` and ``validation/`` sub-runs, ``.v2`` files, tensor
    scalars (plugin ``scalars``). Returns (train file, validation file)."""
    train = write_scalar_file(
        run_dir / "train",
        range(train_steps),
        ("epoch_loss", "epoch_accuracy"),
        name=f"events.out.tfevents.1700000000.{host}.1.0.v2",
        v2=True,
    )
    validation = write_scalar_file(
        run_dir / "validation",
        range(0, train_steps, validation_every),
        ("epoch_loss", "epoch_accuracy"),
        name=f"events.out.tfevents.1700000000.{host}.1.1.v2",
        v2=True,
    )
    return train, validation


def write_with_event_file_writer(logdir: Path, steps: Iterable[int], tag: str = "loss") -> Path:
    """Write scalars with TensorBoard's own ``EventFileWriter`` (real file name, real first record)."""
    writer = EventFileWriter(str(logdir))
    try:
        for step in steps:
            summary = summary_pb2.Summary(
                value=[summary_pb2.Summary.Value(tag=tag, simple_value=float(step))]
            )
            writer.add_event(event_pb2.Event(wall_time=BASE_WALL_TIME + step, step=step, summary=summary))
    finally:
        writer.close()
    (path,) = logdir.glob("events.out.tfevents.*")
    return path


def write_zero_byte_file(path: Path) -> Path:
    """An event file created but never written to (a job that just started)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def write_absurd_length_file(path: Path, length: int = 1 << 62, *, records_before: int = 2) -> Path:
    """Some good records, then a header declaring ``length`` bytes *with a valid header CRC*,
    followed by a few bytes: a reader that trusts the length allocates or seeks forever."""
    write_events(path, [file_version_event(), *(scalar_event(s, 0.5) for s in range(records_before - 1))])
    header = struct.pack("<Q", length)
    with open(path, "ab") as f:
        f.write(header + struct.pack("<I", masked_crc32c(header)) + b"\x00" * 32)
    return path


@dataclass(frozen=True)
class Record:
    """Where one record sits in a file, computed without checking anything."""

    offset: int
    length: int

    @property
    def payload_offset(self) -> int:
        return self.offset + 12

    @property
    def end(self) -> int:
        return self.offset + 12 + self.length + 4


def record_layout(path: Path) -> list[Record]:
    """The records of an undamaged file, in order (trusting every length)."""
    data = path.read_bytes()
    records = []
    pos = 0
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from("<Q", data, pos)
        records.append(Record(pos, length))
        pos += 12 + length + 4
    return records


def _flip(path: Path, offset: int, mask: int = 0xFF) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        (byte,) = f.read(1)
        f.seek(offset)
        f.write(bytes([byte ^ mask]))


def corrupt_payload(path: Path, record: int, at: int = 0) -> int:
    """Flip one byte of record ``record``'s payload (or its footer CRC if the payload is empty);
    returns the record's offset."""
    rec = record_layout(path)[record]
    _flip(path, rec.payload_offset + (at % rec.length if rec.length else 0))
    return rec.offset


def corrupt_header(path: Path, record: int, at: int = 0) -> int:
    """Flip one byte of record ``record``'s 12-byte header (length or its CRC); returns its offset."""
    rec = record_layout(path)[record]
    _flip(path, rec.offset + at % 12)
    return rec.offset


def truncate_at(path: Path, size: int) -> Path:
    """Cut the file to ``size`` bytes, as a crash (or a reader racing the writer) leaves it."""
    os.truncate(path, size)
    return path


def raw_loader_count(path: Path) -> int:
    """How many records TensorBoard's ``RawEventFileLoader`` yields (TensorFlow is not installed,
    so this is its stub record reader: pure-Python CRC, stops at the first error)."""
    return sum(1 for _ in RawEventFileLoader(str(path)).Load())
