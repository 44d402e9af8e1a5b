"""Generate the benchmark log root: ~100 runs, ~10 M records, ~1.5 GB of real event files.

Layout ``ROOT/{dataset}/{run}/...`` in four styles that real teams produce:

* ``pytorch``  one file per run, ``simple_value`` scalars (one event per tag and step), validation
  scalars every 50 steps and a weight histogram every 100 steps;
* ``keras``    TF2: ``train/`` and ``validation/`` sub-runs, ``.v2`` files, tensor scalars (plugin
  ``scalars``);
* ``tf1``      one merged-summary event per step holding a dozen scalars with long tags;
* ``resumed``  PyTorch-style, written by two processes: two event files, the second going on from
  the step the first stopped at.

Generation is fast because nothing goes through a protobuf library per record: each tag's bytes are
built once from TensorBoard's real protos and the per-record fields (wall time, step, value) are
spliced in; records are framed with the C CRC-32C. A marker file records what was generated, so a
second call with the same parameters reuses the tree.

    python benchmarks/gentree.py [DIR] [--runs 100] [--records 10000000] [--force]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import shutil
import struct
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import google_crc32c
from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins.scalar import summary_v2 as scalar_summary_v2

__all__ = [
    "DEFAULT_RECORDS",
    "DEFAULT_ROOT",
    "DEFAULT_RUNS",
    "MARKER",
    "TreeInfo",
    "ensure_tree",
    "read_marker",
]

DEFAULT_ROOT = Path("/tmp/tbhub-bench/tree")
DEFAULT_RUNS = 100
DEFAULT_RECORDS = 10_000_000
MARKER = ".tbhub-bench-tree.json"
_FORMAT = 2  # bump when the generated content changes, so old trees are regenerated

DATASETS = ("imagenet-resnet50", "bert-finetune-glue", "gpt2-small-owt", "lora-sweep", "ppo-atari")
STYLES = ("pytorch", "keras", "tf1", "pytorch", "keras", "resumed", "tf1", "pytorch")

_DOUBLE = struct.Struct("<d")
_FLOAT = struct.Struct("<f")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


@dataclass(frozen=True)
class TreeInfo:
    """What ``ensure_tree`` generated (as stored in the marker file)."""

    root: Path
    runs: int
    records: int
    files: int
    bytes: int


# --- hand-encoded protobuf ------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_STEP_VARINTS = [b"\x10" + _varint(s) for s in range(1 << 16)]


def _step_field(step: int) -> bytes:
    return _STEP_VARINTS[step] if step < 65536 else b"\x10" + _varint(step)


def _len_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _value_template(value_proto: bytes, probe: float) -> tuple[bytes, bytes]:
    """Split a serialized ``Summary.Value`` around its 4 float bytes: (before, after)."""
    raw = _FLOAT.pack(probe)
    at = value_proto.index(raw)
    return value_proto[:at], value_proto[at + 4 :]


def simple_value_template(tag: str) -> tuple[bytes, bytes]:
    probe = 1.2345
    proto = summary_pb2.Summary.Value(tag=tag, simple_value=probe).SerializeToString()
    before, after = _value_template(proto, probe)
    # Wrap as Summary.value (field 1) so a summary is the concatenation of such pieces.
    size = len(proto)
    return _varint(1 << 3 | 2) + _varint(size) + before, after


def tensor_value_template(tag: str) -> tuple[bytes, bytes]:
    probe = 1.2345
    proto = scalar_summary_v2.scalar_pb(tag, probe).value[0].SerializeToString()
    before, after = _value_template(proto, probe)
    size = len(proto)
    return _varint(1 << 3 | 2) + _varint(size) + before, after


def histogram_value(tag: str, rng: random.Random, buckets: int = 60) -> bytes:
    """A weight histogram as ``SummaryWriter.add_histogram`` writes it (one Summary.Value)."""
    limits = [-1.0 + 2.0 * i / buckets for i in range(1, buckets)] + [1.7976931348623157e308]
    counts = [float(int(1000 * math.exp(-(((i - buckets / 2) / (buckets / 6)) ** 2)) + rng.random() * 10))
              for i in range(buckets)]
    histo = summary_pb2.HistogramProto(
        min=-1.0, max=1.0, num=sum(counts), sum=rng.random(), sum_squares=rng.random() * 100,
        bucket_limit=limits, bucket=counts,
    )
    proto = summary_pb2.Summary.Value(tag=tag, histo=histo).SerializeToString()
    return _len_field(1, proto)


def _event(wall_time: float, step: int, summary: bytes) -> bytes:
    body = b"\x09" + _DOUBLE.pack(wall_time) + _step_field(step)
    return body + b"\x2a" + _varint(len(summary)) + summary


def _file_version_event(wall_time: float) -> bytes:
    return b"\x09" + _DOUBLE.pack(wall_time) + _len_field(3, b"brain.Event:2")


# --- framing ---------------------------------------------------------------------------------------

_HEADERS: dict[int, bytes] = {}


def _mask(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def frame(payload: bytes) -> bytes:
    n = len(payload)
    header = _HEADERS.get(n)
    if header is None:
        length = _U64.pack(n)
        header = _HEADERS[n] = length + _U32.pack(_mask(google_crc32c.value(length)))
    return header + payload + _U32.pack(_mask(google_crc32c.value(payload)))


def append_events(path: Path, records: int, step0: int) -> int:
    """Append ``records`` ``simple_value`` events to ``path`` (as a training job would); bytes added."""
    before, after = simple_value_template("train/loss")
    wall_time = time.time()
    chunks = []
    for i in range(records):
        summary = before + struct.pack("<f", 1.0 / (i + 1)) + after
        payload = (b"\x09" + struct.pack("<d", wall_time + i) + b"\x10" + _varint(step0 + i)
                   + b"\x2a" + _varint(len(summary)) + summary)
        chunks.append(frame(payload))
    data = b"".join(chunks)
    with open(path, "ab") as f:
        f.write(data)
    return len(data)


class _EventFile:
    """Buffered writer of framed records; counts records and bytes."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._f = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._chunks: list[bytes] = []
        self._pending = 0
        self.records = 0
        self.bytes = 0
        self.last_wall_time = 0.0

    def write(self, payload: bytes) -> None:
        record = frame(payload)
        self._chunks.append(record)
        self._pending += len(record)
        self.records += 1
        if self._pending >= 1 << 20:
            self._flush()

    def _flush(self) -> None:
        self._f.write(b"".join(self._chunks))
        self.bytes += self._pending
        self._chunks.clear()
        self._pending = 0

    def close(self) -> None:
        self._flush()
        self._f.close()
        # Finished runs look finished: mtime = the last event's wall time.
        os.utime(self.path, (self.last_wall_time, self.last_wall_time))


# --- run styles --------------------------------------------------------------------------------------


@dataclass
class _Run:
    dataset: str
    name: str
    style: str
    budget: int  # records to write
    start: float  # wall time of the first record
    seed: int


def _curve(rng: random.Random, step: int, scale: float) -> float:
    return scale * (0.1 + 2.0 / math.sqrt(1.0 + step / 200.0)) * (1.0 + 0.05 * (rng.random() - 0.5))


def _file_name(start: float, host: str, pid: int, n: int, v2: bool = False) -> str:
    return f"events.out.tfevents.{int(start)}.{host}.{pid}.{n}" + (".v2" if v2 else "")


def _write_pytorch(run: _Run, run_dir: Path, rng: random.Random, budget: int, start: float,
                   first_step: int, n: int) -> tuple[list[_EventFile], int, float]:
    """Per-step train scalars, val every 50 steps, a histogram every 100. Returns files, next step."""
    train_tags = ("train/loss", "train/accuracy", "train/learning_rate", "train/grad_norm",
                  "perf/samples_per_sec")
    train = [simple_value_template(t) for t in train_tags]
    val = [simple_value_template(t) for t in ("val/loss", "val/accuracy_top1", "val/accuracy_top5")]
    f = _EventFile(run_dir / _file_name(start, "gpu-node-07", 4000 + run.seed, n))
    f.write(_file_version_event(start))
    wt = start
    step = first_step
    pack = _FLOAT.pack
    while f.records < budget:
        wt += 0.25 + rng.random() * 0.05
        for before, after in train:
            f.write(_event(wt, step, before + pack(_curve(rng, step, 1.0)) + after))
        if step % 50 == 0:
            for before, after in val:
                f.write(_event(wt, step, before + pack(_curve(rng, step, 1.2)) + after))
        if step % 100 == 0:
            f.write(_event(wt, step, histogram_value("weights/encoder.layer.0", rng)))
        step += 1
    f.last_wall_time = wt
    return [f], step, wt


def _write_keras(run: _Run, run_dir: Path, rng: random.Random) -> list[_EventFile]:
    train_tags = [tensor_value_template(t) for t in ("batch_loss", "batch_accuracy", "epoch_loss",
                                                    "epoch_accuracy", "learning_rate")]
    val_tags = [tensor_value_template(t) for t in ("epoch_loss", "epoch_accuracy",
                                                  "evaluation_loss_vs_iterations")]
    host, pid = "trainer-3", 7000 + run.seed
    train = _EventFile(run_dir / "train" / _file_name(run.start, host, pid, 0, v2=True))
    val = _EventFile(run_dir / "validation" / _file_name(run.start, host, pid, 1, v2=True))
    train.write(_file_version_event(run.start))
    val.write(_file_version_event(run.start))
    wt = run.start
    step = 0
    pack = _FLOAT.pack
    while train.records + val.records < run.budget:
        wt += 0.4 + rng.random() * 0.1
        for before, after in train_tags:
            train.write(_event(wt, step, before + pack(_curve(rng, step, 1.0)) + after))
        if step % 20 == 0:
            for before, after in val_tags:
                val.write(_event(wt, step, before + pack(_curve(rng, step, 1.1)) + after))
        step += 1
    train.last_wall_time = val.last_wall_time = wt
    return [train, val]


_TF1_TAGS = tuple(
    f"{scope}/{name}"
    for scope in ("model/transformer/layer_11/attention", "optimizer/adam", "metrics/streaming")
    for name in ("loss_component", "gradient_global_norm", "update_ratio", "sparsity")
)[:10]


def _write_tf1(run: _Run, run_dir: Path, rng: random.Random) -> list[_EventFile]:
    tags = [simple_value_template(t) for t in _TF1_TAGS]
    f = _EventFile(run_dir / _file_name(run.start, "worker-0", 9000 + run.seed, 0))
    f.write(_file_version_event(run.start))
    wt = run.start
    step = 0
    pack = _FLOAT.pack
    while f.records < run.budget:
        wt += 1.0 + rng.random() * 0.2
        summary = b"".join(before + pack(_curve(rng, step, 1.0)) + after for before, after in tags)
        f.write(_event(wt, step * 10, summary))  # TF1 global_step advances by the summary interval
        step += 1
    f.last_wall_time = wt
    return [f]


def _write_run(run: _Run, root: Path) -> list[_EventFile]:
    rng = random.Random(run.seed)
    run_dir = root / run.dataset / run.name
    if run.style == "keras":
        files = _write_keras(run, run_dir, rng)
    elif run.style == "tf1":
        files = _write_tf1(run, run_dir, rng)
    elif run.style == "resumed":
        first = int(run.budget * 0.6)
        files, step, wt = _write_pytorch(run, run_dir, rng, first, run.start, 0, 0)
        restart = wt + 600.0  # the job was preempted and restarted ten minutes later
        more, _, _ = _write_pytorch(run, run_dir, rng, run.budget - files[0].records, restart, step, 0)
        files += more
    else:
        files, _, _ = _write_pytorch(run, run_dir, rng, run.budget, run.start, 0, 0)
    for f in files:
        f.close()
    return files


def plan(runs: int, records: int) -> Iterator[_Run]:
    """The runs to generate: sizes vary about 0.3x to 2x around the mean, deterministically."""
    rng = random.Random(1234)
    weights = [0.3 + 1.7 * rng.random() for _ in range(runs)]
    total = sum(weights)
    base_time = 1_735_000_000.0
    for i in range(runs):
        dataset = DATASETS[i % len(DATASETS)]
        lr = ("1e-4", "3e-4", "1e-3", "3e-3")[i % 4]
        name = f"lr{lr}_bs{(64, 128, 256)[i % 3]}_seed{i}"
        style = STYLES[i % len(STYLES)]
        yield _Run(dataset, name, style, max(10, int(records * weights[i] / total)),
                   base_time + i * 3600.0, i)


def read_marker(root: Path) -> TreeInfo | None:
    try:
        data = json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if data.get("format") != _FORMAT:
        return None
    return TreeInfo(root, data["runs"], data["records"], data["files"], data["bytes"])


def ensure_tree(path: Path | str = DEFAULT_ROOT, runs: int = DEFAULT_RUNS, records: int = DEFAULT_RECORDS,
                *, force: bool = False, log: Callable[[str], None] = print) -> Path:
    """The benchmark tree at ``path``, generated unless a marker shows it already holds ``runs`` runs
    and (about) ``records`` records. Refuses to replace a non-empty folder without the marker."""
    root = Path(path)
    data: dict[str, object] = {}
    with contextlib.suppress(OSError, ValueError):
        data = json.loads((root / MARKER).read_text())
    wanted = {"format": _FORMAT, "runs": runs, "requested_records": records}
    if not force and all(data.get(k) == v for k, v in wanted.items()):
        return root
    if root.exists() and any(root.iterdir()):
        if not (root / MARKER).exists():
            raise SystemExit(f"{root} is not empty and holds no {MARKER}: not replacing it")
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    n_records = n_bytes = n_files = 0
    for i, run in enumerate(plan(runs, records)):
        files = _write_run(run, root)
        n_files += len(files)
        n_records += sum(f.records for f in files)
        n_bytes += sum(f.bytes for f in files)
        if (i + 1) % 10 == 0:
            log(f"  {i + 1}/{runs} runs, {n_records:,} records, {n_bytes / 1e9:.2f} GB "
                f"({time.monotonic() - started:.0f} s)")
    marker = {**wanted, "runs": runs, "records": n_records, "files": n_files, "bytes": n_bytes}
    (root / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    log(f"generated {root}: {runs} runs, {n_files} files, {n_records:,} records, {n_bytes / 1e9:.2f} GB "
        f"in {time.monotonic() - started:.0f} s")
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("dir", nargs="?", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument("--records", type=int, default=DEFAULT_RECORDS)
    parser.add_argument("--force", action="store_true", help="regenerate even if the marker matches")
    args = parser.parse_args(argv)
    root = ensure_tree(args.dir, args.runs, args.records, force=args.force)
    info = read_marker(root)
    if info:
        print(f"{root}: {info.runs} runs, {info.files} files, {info.records:,} records, "
              f"{info.bytes / 1e9:.2f} GB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
