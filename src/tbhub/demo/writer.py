"""Writing the demo log roots: events with TensorBoard's protos, framed as its ``RecordWriter`` frames them."""

from __future__ import annotations

import json
import os
import random
import struct
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import google_crc32c
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from tensorboard.plugins.histogram import summary_v2 as histogram_summary

from tbhub.demo.curves import HIST_BUCKETS, lora_weights, noise, stream_scalars
from tbhub.demo.plans import (
    LIVE_KINDS,
    LORA_HIST_EVERY,
    LORA_HIST_TAG,
    LoraParams,
    RunKind,
    RunPlan,
    Stream,
    plan_runs,
)

__all__ = ["MARKER", "DemoLogs", "DemoRun", "encode", "stream_events", "write_demo_logs"]

#: The file a demo trainer drops in its run folder when it is done; the demo's status rules look for it
#: (``alerts.marker_files``), as many teams' do.
MARKER = "DONE"


@dataclass(frozen=True, slots=True)
class DemoRun:
    """One demo run: ``path`` is ``roots[endpoint] / dataset / run``."""

    endpoint: str
    dataset: str
    run: str
    path: Path
    kind: RunKind


@dataclass(frozen=True, slots=True)
class DemoLogs:
    """What ``write_demo_logs`` wrote: the log root of each endpoint and every run in it.

    ``live`` is the subset of ``runs`` that a ``LiveWriter`` appends to: one run per endpoint that trains
    for the whole demo, a LoRA run that diverges and a router run that finishes. ``_plans``
    holds how each run's curves are generated so a ``LiveWriter`` can continue them; it is private.
    """

    roots: dict[str, Path]
    runs: list[DemoRun]
    live: list[DemoRun]
    _plans: Mapping[Path, RunPlan] = field(default_factory=dict, repr=False, compare=False)


def _scalar_event(tag: str, value: float, step: int, wall_time: float) -> event_pb2.Event:
    value_pb = summary_pb2.Summary.Value(tag=tag, simple_value=value)
    return event_pb2.Event(wall_time=wall_time, step=step, summary=summary_pb2.Summary(value=[value_pb]))


def stream_events(
    plan: RunPlan, stream: Stream, steps: Sequence[int], walls: Sequence[float], rng: random.Random
) -> list[event_pb2.Event]:
    """One event per scalar per step (as TensorBoard's writers do), plus LoRA's weight histogram."""
    scalars = stream_scalars(plan, stream, steps, rng)
    with_histogram = isinstance(plan.params, LoraParams) and stream.subdir == "train"
    events: list[event_pb2.Event] = []
    for i, step in enumerate(steps):
        wall = walls[i]
        for tag, values in scalars.items():
            events.append(_scalar_event(tag, values[i], step, wall))
        if with_histogram and step % LORA_HIST_EVERY == 0:
            summary = histogram_summary.histogram_pb(
                LORA_HIST_TAG, lora_weights(plan, step, rng), buckets=HIST_BUCKETS
            )
            events.append(event_pb2.Event(wall_time=wall, step=step, summary=summary))
    return events


def _masked_crc(data: bytes) -> bytes:
    crc: int = google_crc32c.value(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def encode(events: Sequence[event_pb2.Event]) -> bytes:
    """TFRecord-frame events in memory so each file is written (or appended to) with one write.

    The framing of tensorboard's ``RecordWriter`` (length, masked CRC-32C of the length, payload,
    masked CRC-32C of the payload), but with google-crc32c's C CRC: tensorboard's own is pure Python
    and was half the time of ``write_demo_logs``.
    """
    parts: list[bytes] = []
    for event in events:
        payload = event.SerializeToString()
        header = struct.pack("<Q", len(payload))
        parts += (header, _masked_crc(header), payload, _masked_crc(payload))
    return b"".join(parts)


def _file_version_event(wall_time: float) -> event_pb2.Event:
    # The first record of every event file, as EventFileWriter writes it (but with our wall time).
    return event_pb2.Event(
        wall_time=wall_time,
        file_version="brain.Event:2",
        source_metadata=event_pb2.SourceMetadata(writer="tbhub.demo"),
    )


def _plan_events(plan: RunPlan, wall_time: float) -> list[event_pb2.Event]:
    """The plan a trainer logs when it starts, where tbhub finds it with no configuration
    (docs/frameworks.md): the LoRA runs are Hugging Face Trainer runs, whose ``TensorBoardCallback``
    writes the ``TrainingArguments`` as JSON in the text summary ``args/text_summary``."""
    if not isinstance(plan.params, LoraParams):
        return []
    args = {"max_steps": plan.total_steps, "num_train_epochs": 3.0, "per_device_train_batch_size": 8,
            "gradient_accumulation_steps": 2, "learning_rate": plan.params.lr, "logging_steps": plan.log_every}
    text = summary_pb2.Summary.Value(
        tag="args/text_summary",
        metadata=summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="text")),
        tensor=tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[json.dumps(args, indent=2).encode()],
                                      tensor_shape=tensor_shape_pb2.TensorShapeProto(
                                          dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=1)])),
    )
    return [event_pb2.Event(wall_time=wall_time, step=0, summary=summary_pb2.Summary(value=[text]))]


def _write_plan_file(run_dir: Path, plan: RunPlan) -> Path | None:
    """The router runs come from a PyTorch Lightning trainer: its logger writes ``hparams.yaml``, where
    this one saved ``max_steps`` (``save_hyperparameters``)."""
    if isinstance(plan.params, LoraParams):
        return None
    path = run_dir / "hparams.yaml"
    path.write_text(f"experts: {plan.params.experts}\ntop_k: {plan.params.top_k}\nmax_steps: {plan.total_steps}\n")
    return path


def _write_run(run_dir: Path, plan: RunPlan) -> dict[Path, float]:
    """Write one run's event files; returns each created path (files and folders) → its mtime."""
    rng = noise(plan)
    start = plan.start_time
    # A folder's mtime changes when entries are created in it, i.e. when the run started.
    mtimes: dict[Path, float] = {run_dir: start}
    for number, stream in enumerate(plan.streams):
        folder = run_dir / stream.subdir if stream.subdir else run_dir
        folder.mkdir(parents=True, exist_ok=True)
        steps = range(stream.every, plan.steps_done + 1, stream.every)
        walls = [start + step * plan.sec_per_step for step in steps]
        head = [_file_version_event(start), *(_plan_events(plan, start) if number == 0 else [])]
        events = [*head, *stream_events(plan, stream, steps, walls, rng)]
        # Named like EventFileWriter names them, with a fixed host and pid so output is deterministic.
        name = f"events.out.tfevents.{int(start):010d}.{plan.host}.{4000 + 37 * plan.index}.{number}"
        path = folder / name
        path.write_bytes(encode(events))
        mtimes[path] = walls[-1] if walls else start
        mtimes[folder] = start
    plan_file = _write_plan_file(run_dir, plan)
    if plan_file is not None:
        mtimes[plan_file] = start
    return mtimes


def write_demo_logs(base: Path, *, now: float | None = None, seed: int = 0) -> DemoLogs:
    """Write the ``lora`` and ``router`` demo log roots under ``base`` and describe them.

    ``now`` (default: the current time) anchors every age: event wall times and file and folder
    mtimes are set relative to it. Output is deterministic in (``now``, ``seed``). Both roots must be
    absent or empty: the demo never overwrites or deletes existing logs (``FileExistsError``).
    """
    now = time.time() if now is None else now
    roots = {"lora": base / "lora", "router": base / "router"}
    for root in roots.values():
        if root.exists() and any(root.iterdir()):
            raise FileExistsError(f"{root} is not empty; choose an empty --dir for the demo logs")
    plans = plan_runs(now, seed)
    runs: list[DemoRun] = []
    mtimes: dict[Path, float] = {}
    for plan in plans:
        run_dir = roots[plan.endpoint] / plan.dataset / plan.run
        mtimes.update(_write_run(run_dir, plan))
        if plan.kind in ("finished", "old"):
            # Dropped by the trainer as its last act.
            marker = run_dir / MARKER
            marker.touch()
            mtimes[marker] = plan.end_time
        runs.append(DemoRun(plan.endpoint, plan.dataset, plan.run, run_dir, plan.kind))
        for folder in (run_dir.parent, roots[plan.endpoint]):
            mtimes[folder] = max(mtimes.get(folder, 0.0), plan.start_time)
    # Deepest first: utime on a file does not touch its folder, but creating the files did.
    for path in sorted(mtimes, key=lambda p: len(p.parts), reverse=True):
        os.utime(path, (mtimes[path], mtimes[path]))
    by_path = {r.path: plan for r, plan in zip(runs, plans, strict=True)}
    live = [r for r in runs if r.kind in LIVE_KINDS]
    return DemoLogs(roots=roots, runs=runs, live=live, _plans=by_path)
