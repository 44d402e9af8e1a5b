"""Realistic demo log roots for ``tbhub demo``: two endpoints of real TensorBoard event files.

``write_demo_logs(base)`` writes ``base/lora`` (LoRA fine-tuning runs with ``train/`` and ``eval/``
sub-folders) and ``base/router`` (mixture-of-experts router runs), both laid out
``{dataset}/{run}/...``. The runs are chosen to exercise everything tbhub shows: weeks-old runs (red,
retention candidates), runs a few days old (yellow), fresh ones (green), one run whose loss goes to NaN,
one that stopped being written mid-training three hours ago, and one live run per endpoint that a
``LiveWriter`` keeps appending to while the demo is served.

Event files are written with TensorBoard's protos and histogram helper (no TensorFlow) in the framing
of its ``RecordWriter`` (a test checks the bytes match), and every ``wall_time`` and every file and
folder mtime is back-dated to match the run's age, so both TensorBoard and tbhub's scanner see a
plausible history. Given ``seed`` and ``now`` the output is byte-for-byte
deterministic (file names included).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import struct
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import google_crc32c
import numpy as np
import numpy.typing as npt
from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.histogram import summary_v2 as histogram_summary

__all__ = ["DemoLogs", "DemoRun", "LiveWriter", "RunKind", "write_demo_logs"]

logger = logging.getLogger(__name__)

RunKind = Literal["finished", "old", "diverged", "stalled", "live"]

Floats = npt.NDArray[np.float64]
Steps = npt.NDArray[np.int64]

_DAY = 86400.0
_HOUR = 3600.0
# The histogram of a 4096-wide LoRA A matrix is summarised from a fixed sample: enough for smooth
# buckets, small enough that bucketing (a samples × buckets one-hot in histogram_pb) stays cheap.
_HIST_SAMPLE = 1024
_HIST_BUCKETS = 30


# --------------------------------------------------------------------------------------------------
# Public values


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

    ``live`` is the subset of ``runs`` (one per endpoint) that a ``LiveWriter`` appends to. ``_plans``
    holds how each run's curves are generated so a ``LiveWriter`` can continue them; it is private.
    """

    roots: dict[str, Path]
    runs: list[DemoRun]
    live: list[DemoRun]
    _plans: Mapping[Path, _RunPlan] = field(default_factory=dict, repr=False, compare=False)


# --------------------------------------------------------------------------------------------------
# Run plans: what each run is, independent of the disk


@dataclass(frozen=True, slots=True)
class _Stream:
    """One event file of a run: its folder relative to the run ("" = the run folder) and cadence."""

    subdir: str
    every: int


@dataclass(frozen=True, slots=True)
class _LoraParams:
    rank: int
    lr: float
    loss_init: float
    loss_floor: float
    acc_init: float
    acc_max: float


@dataclass(frozen=True, slots=True)
class _RouterParams:
    experts: int
    top_k: int
    loss_floor: float
    tokens_per_sec: float
    # Share of the initial expert imbalance that load balancing never removes (top-1 routing is worse).
    residual_imbalance: float


@dataclass(frozen=True, slots=True)
class _RunPlan:
    """Everything that determines a run's events; a pure function of (template, now, seed)."""

    index: int
    seed: int
    endpoint: str
    dataset: str
    run: str
    kind: RunKind
    steps_done: int
    total_steps: int
    sec_per_step: float
    end_time: float
    streams: tuple[_Stream, ...]
    host: str
    params: _LoraParams | _RouterParams
    # Diverged runs only: loss starts to blow up at ``diverge_from`` and is NaN from ``nan_from`` on.
    diverge_from: int | None = None
    nan_from: int | None = None

    @property
    def start_time(self) -> float:
        return self.end_time - self.steps_done * self.sec_per_step

    @property
    def log_every(self) -> int:
        return min(s.every for s in self.streams)


_LORA_STREAMS = (_Stream("train", 10), _Stream("eval", 100))
_LORA_HIST_EVERY = 50
_LORA_HIST_TAG = "lora_A/weights"
_ROUTER_STREAMS = (_Stream("", 10),)

# dataset: (loss_init, loss_floor, acc_init, acc_max): code is more predictable than open chat.
_LORA_DATASETS: dict[str, tuple[float, float, float, float]] = {
    "alpaca": (1.9, 1.05, 0.48, 0.64),
    "dolly": (2.1, 1.2, 0.45, 0.6),
    "code-instruct": (1.3, 0.62, 0.55, 0.74),
}

# (dataset, rank, lr, kind, days since the last write, steps written, steps planned)
_LORA_RUNS: tuple[tuple[str, int, str, RunKind, float, int, int], ...] = (
    ("alpaca", 8, "1e-4", "old", 34.0, 1200, 1200),
    ("alpaca", 16, "2e-4", "old", 27.5, 1500, 1500),
    ("alpaca", 16, "2e-4", "finished", 3.2, 1500, 1500),
    ("alpaca", 32, "2e-4", "live", 0.0, 600, 6000),
    ("dolly", 8, "3e-4", "old", 19.0, 800, 800),
    ("dolly", 16, "1e-3", "diverged", 2.4, 700, 1000),
    ("dolly", 16, "2e-4", "finished", 0.25, 800, 800),
    ("code-instruct", 64, "1e-4", "old", 12.0, 2000, 2000),
    ("code-instruct", 32, "2e-4", "stalled", 3 * _HOUR / _DAY, 900, 2000),
)

# (dataset, experts, top_k, capacity factor, kind, days since the last write, steps written, planned)
_ROUTER_RUNS: tuple[tuple[str, int, int, str, RunKind, float, int, int], ...] = (
    ("moe-8x", 8, 2, "1.25", "old", 31.0, 2000, 2000),
    ("moe-8x", 8, 1, "1.0", "finished", 4.1, 1500, 1500),
    ("moe-8x", 8, 2, "1.5", "live", 0.0, 400, 20000),
    ("moe-4x", 4, 2, "1.25", "finished", 0.6, 1000, 1000),
)

# Live runs look like they were written a moment ago: one record interval before ``now``.
_LIVE_LAG = 3.0


def _run_date(end_time: float, steps: int, sec_per_step: float) -> str:
    """The UTC start date that run names carry, as ML teams name runs."""
    return datetime.fromtimestamp(end_time - steps * sec_per_step, UTC).strftime("%Y%m%d")


def _plan_runs(now: float, seed: int) -> list[_RunPlan]:
    plans: list[_RunPlan] = []
    for dataset, rank, lr, kind, age_days, done, total in _LORA_RUNS:
        end = now - max(age_days * _DAY, _LIVE_LAG)
        sec_per_step = 1.8
        loss_init, loss_floor, acc_init, acc_max = _LORA_DATASETS[dataset]
        diverge_from = nan_from = None
        if kind == "diverged":
            # The blow-up builds over 16 logged points, then the last 5 logged losses are NaN.
            diverge_from, nan_from = done - 200, done - 40
        plans.append(
            _RunPlan(
                index=len(plans),
                seed=seed,
                endpoint="lora",
                dataset=dataset,
                run=f"r{rank}-lr{lr}-{_run_date(end, done, sec_per_step)}",
                kind=kind,
                steps_done=done,
                total_steps=total,
                sec_per_step=sec_per_step,
                end_time=end,
                streams=_LORA_STREAMS,
                host="gpu-node-07",
                params=_LoraParams(
                    rank=rank,
                    lr=float(lr),
                    # Higher rank fits a little better; the effect is small, as in practice.
                    loss_init=loss_init,
                    loss_floor=loss_floor - 0.02 * math.log2(rank / 8),
                    acc_init=acc_init,
                    acc_max=acc_max + 0.005 * math.log2(rank / 8),
                ),
                diverge_from=diverge_from,
                nan_from=nan_from,
            )
        )
    for dataset, experts, top_k, capacity, kind, age_days, done, total in _ROUTER_RUNS:
        end = now - max(age_days * _DAY, _LIVE_LAG)
        sec_per_step = 0.9
        plans.append(
            _RunPlan(
                index=len(plans),
                seed=seed,
                endpoint="router",
                dataset=dataset,
                run=f"top{top_k}-cap{capacity}-{_run_date(end, done, sec_per_step)}",
                kind=kind,
                steps_done=done,
                total_steps=total,
                sec_per_step=sec_per_step,
                end_time=end,
                streams=_ROUTER_STREAMS,
                host="moe-node-02",
                params=_RouterParams(
                    experts=experts,
                    top_k=top_k,
                    loss_floor=(2.6 if experts == 8 else 2.8) + (0.05 if top_k == 1 else 0.0),
                    tokens_per_sec=(41000.0 if top_k == 2 else 52000.0) * (8 / experts) ** 0.3,
                    residual_imbalance=0.25 if top_k == 1 else 0.05,
                ),
            )
        )
    keys = [(p.endpoint, p.dataset, p.run) for p in plans]
    assert len(set(keys)) == len(keys), "demo run names must be unique"
    return plans


# --------------------------------------------------------------------------------------------------
# Curves. Each takes the steps to log and a generator for the noise, so the initial write (all steps
# at once) and a LiveWriter tick (one step) share the same model and the curves continue smoothly.


def _cosine_lr(steps: Steps, peak: float, total: int) -> Floats:
    """Linear warmup over 5% of the planned steps, then cosine decay to 0 (clamped past the end)."""
    s = steps.astype(np.float64)
    warmup = max(1, round(0.05 * total))
    progress = np.clip((s - warmup) / max(1, total - warmup), 0.0, 1.0)
    cosine = peak * 0.5 * (1.0 + np.cos(np.pi * progress))
    return np.where(s < warmup, peak * s / warmup, cosine)


def _lora_tau(p: _LoraParams) -> float:
    # Steps for the loss to fall by 1/e: larger learning rates converge faster.
    return 250.0 * math.sqrt(2e-4 / p.lr)


def _blowup(plan: _RunPlan, steps: Steps) -> tuple[Floats, npt.NDArray[np.bool_]]:
    """Multiplier on the loss (>= 1) and the NaN mask of a diverging run; identity otherwise."""
    if plan.diverge_from is None or plan.nan_from is None:
        return np.ones(steps.shape), np.zeros(steps.shape, dtype=bool)
    over = np.clip((steps - plan.diverge_from) / (plan.nan_from - plan.diverge_from), 0.0, None)
    return np.exp(2.5 * over**2), steps >= plan.nan_from


def _lora_train(plan: _RunPlan, p: _LoraParams, steps: Steps, rng: np.random.Generator) -> dict[str, Floats]:
    n = steps.size
    s = steps.astype(np.float64)
    tau = _lora_tau(p)
    clean = p.loss_floor + (p.loss_init - p.loss_floor) * np.exp(-s / tau)
    loss = clean * np.exp(rng.normal(0.0, 0.03, n))
    loss += (rng.random(n) < 0.01) * 0.25 * clean  # the odd hard batch
    grad_norm = (0.3 + 1.6 * np.exp(-s / (0.5 * tau))) * np.exp(rng.normal(0.0, 0.2, n))
    growth, nan = _blowup(plan, steps)
    loss *= growth
    grad_norm *= growth**2
    loss[nan] = float("nan")
    grad_norm[nan] = float("nan")
    return {
        "train/loss": loss,
        "train/learning_rate": _cosine_lr(steps, p.lr, plan.total_steps),
        "train/grad_norm": grad_norm,
    }


def _lora_eval(plan: _RunPlan, p: _LoraParams, steps: Steps, rng: np.random.Generator) -> dict[str, Floats]:
    n = steps.size
    s = steps.astype(np.float64)
    tau = _lora_tau(p)
    decay = np.exp(-s / tau)
    # The generalisation gap widens slowly as the adapter starts to memorise.
    gap = 0.04 + 0.03 * np.clip(s / max(plan.total_steps, 1), 0.0, 1.0)
    loss = p.loss_floor + (p.loss_init - p.loss_floor) * decay + gap + rng.normal(0.0, 0.008, n)
    accuracy = p.acc_max - (p.acc_max - p.acc_init) * decay + rng.normal(0.0, 0.004, n)
    growth, nan = _blowup(plan, steps)
    loss *= growth
    accuracy /= growth
    loss[nan] = float("nan")
    accuracy[nan] = 0.1 * p.acc_init  # NaN logits argmax to token 0: near-zero, not NaN, accuracy
    return {"eval/loss": loss, "eval/accuracy": np.clip(accuracy, 0.0, 1.0)}


@functools.lru_cache(maxsize=32)
def _lora_init(seed: int, index: int) -> Floats:
    """A run's lora_A sample at step 0 (Kaiming-uniform, fan-in 4096), from its own generator."""
    bound = 1.0 / math.sqrt(4096)
    init = np.random.default_rng([seed, index, 1]).uniform(-bound, bound, _HIST_SAMPLE)
    init.flags.writeable = False  # shared by every call through the cache
    return init


def _lora_weights(plan: _RunPlan, step: int, rng: np.random.Generator) -> Floats:
    """A sample of lora_A: its init plus a drift that grows as training moves it."""
    init = _lora_init(plan.seed, plan.index)
    assert isinstance(plan.params, _LoraParams)
    spread = 0.012 * (1.0 - math.exp(-step / (2.0 * _lora_tau(plan.params))))
    return init + rng.normal(0.0, spread, _HIST_SAMPLE) if spread > 0 else init


def _router_scalars(
    plan: _RunPlan, p: _RouterParams, steps: Steps, rng: np.random.Generator
) -> dict[str, Floats]:
    n = steps.size
    s = steps.astype(np.float64)
    loss = p.loss_floor + 8.1 * np.exp(-s / 90.0) + 0.9 * np.exp(-s / 900.0)
    loss *= np.exp(rng.normal(0.0, 0.012, n))
    uniform = 1.0 / p.experts
    # The initial imbalance is fixed per run (drawn from its own generator) so live ticks agree.
    start = np.random.default_rng([plan.seed, plan.index, 1]).dirichlet(np.full(p.experts, 2.0))
    weight = np.exp(-s / 250.0)
    weight = weight + p.residual_imbalance * (1.0 - weight)
    load = uniform + (start - uniform)[None, :] * weight[:, None] + rng.normal(0.0, 0.004, (n, p.experts))
    load = np.clip(load, 1e-4, None)
    load /= load.sum(axis=1, keepdims=True)
    # Switch-Transformer balancing loss, alpha * E * sum(f_i * P_i) with f ≈ P: 0.01 when uniform.
    aux = 0.01 * p.experts * np.sum(load**2, axis=1) * np.exp(rng.normal(0.0, 0.02, n))
    tps = p.tokens_per_sec * (1.0 - 0.5 * np.exp(-s / 15.0)) * (1.0 + rng.normal(0.0, 0.015, n))
    tps *= np.where(rng.random(n) < 0.02, 0.55, 1.0)  # checkpoint saves stall the input pipeline
    out = {"loss": loss, "aux_loss": aux, "tokens_per_sec": tps}
    for e in range(p.experts):
        out[f"expert_load/expert_{e}"] = load[:, e]
    return out


def _stream_scalars(
    plan: _RunPlan, stream: _Stream, steps: Steps, rng: np.random.Generator
) -> dict[str, Floats]:
    p = plan.params
    if isinstance(p, _RouterParams):
        return _router_scalars(plan, p, steps, rng)
    if stream.subdir == "eval":
        return _lora_eval(plan, p, steps, rng)
    return _lora_train(plan, p, steps, rng)


# --------------------------------------------------------------------------------------------------
# Events and files


def _scalar_event(tag: str, value: float, step: int, wall_time: float) -> event_pb2.Event:
    value_pb = summary_pb2.Summary.Value(tag=tag, simple_value=value)
    return event_pb2.Event(wall_time=wall_time, step=step, summary=summary_pb2.Summary(value=[value_pb]))


def _stream_events(
    plan: _RunPlan, stream: _Stream, steps: Steps, walls: Floats, rng: np.random.Generator
) -> list[event_pb2.Event]:
    """One event per scalar per step (as TensorBoard's writers do), plus LoRA's weight histogram."""
    scalars = _stream_scalars(plan, stream, steps, rng)
    with_histogram = isinstance(plan.params, _LoraParams) and stream.subdir == "train"
    events: list[event_pb2.Event] = []
    for i, step in enumerate(steps.tolist()):
        wall = float(walls[i])
        for tag, values in scalars.items():
            events.append(_scalar_event(tag, float(values[i]), step, wall))
        if with_histogram and step % _LORA_HIST_EVERY == 0:
            summary = histogram_summary.histogram_pb(
                _LORA_HIST_TAG, _lora_weights(plan, step, rng), buckets=_HIST_BUCKETS
            )
            events.append(event_pb2.Event(wall_time=wall, step=step, summary=summary))
    return events


def _masked_crc(data: bytes) -> bytes:
    crc: int = google_crc32c.value(data)
    return struct.pack("<I", (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF)


def _encode(events: Sequence[event_pb2.Event]) -> bytes:
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


def _write_run(run_dir: Path, plan: _RunPlan) -> dict[Path, float]:
    """Write one run's event files; returns each created path (files and folders) → its mtime."""
    rng = np.random.default_rng([plan.seed, plan.index])
    start = plan.start_time
    # A folder's mtime changes when entries are created in it, i.e. when the run started.
    mtimes: dict[Path, float] = {run_dir: start}
    for number, stream in enumerate(plan.streams):
        folder = run_dir / stream.subdir if stream.subdir else run_dir
        folder.mkdir(parents=True, exist_ok=True)
        steps = np.arange(stream.every, plan.steps_done + 1, stream.every, dtype=np.int64)
        walls = (start + steps * plan.sec_per_step).astype(np.float64)
        events = [_file_version_event(start), *_stream_events(plan, stream, steps, walls, rng)]
        # Named like EventFileWriter names them, with a fixed host and pid so output is deterministic.
        name = f"events.out.tfevents.{int(start):010d}.{plan.host}.{4000 + 37 * plan.index}.{number}"
        path = folder / name
        path.write_bytes(_encode(events))
        mtimes[path] = float(walls[-1]) if walls.size else start
        mtimes[folder] = start
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
    plans = _plan_runs(now, seed)
    runs: list[DemoRun] = []
    mtimes: dict[Path, float] = {}
    for plan in plans:
        run_dir = roots[plan.endpoint] / plan.dataset / plan.run
        mtimes.update(_write_run(run_dir, plan))
        runs.append(DemoRun(plan.endpoint, plan.dataset, plan.run, run_dir, plan.kind))
        for folder in (run_dir.parent, roots[plan.endpoint]):
            mtimes[folder] = max(mtimes.get(folder, 0.0), plan.start_time)
    # Deepest first: utime on a file does not touch its folder, but creating the files did.
    for path in sorted(mtimes, key=lambda p: len(p.parts), reverse=True):
        os.utime(path, (mtimes[path], mtimes[path]))
    by_path = {r.path: plan for r, plan in zip(runs, plans, strict=True)}
    live = [r for r in runs if r.kind == "live"]
    return DemoLogs(roots=roots, runs=runs, live=live, _plans=by_path)


# --------------------------------------------------------------------------------------------------
# Live appends


class _RunGone(Exception):
    """A live run's files were deleted (or replaced by something we must not follow)."""


@dataclass(slots=True)
class _LiveRun:
    """A live run's progress, owned by the LiveWriter thread."""

    plan: _RunPlan
    root: Path
    files: dict[str, Path]
    step: int
    wall_time: float


def _is_within(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def _resume(run: DemoRun, plan: _RunPlan, root: Path) -> _LiveRun:
    """Find each stream's newest event file and the last step written, so a new writer continues."""
    files: dict[str, Path] = {}
    step, wall = 0, 0.0
    for stream in plan.streams:
        folder = run.path / stream.subdir if stream.subdir else run.path
        found = sorted(folder.glob("events.out.tfevents.*")) if folder.is_dir() else []
        if not found:
            raise _RunGone(str(folder))
        files[stream.subdir] = found[-1]
        for path in found:
            for event in LegacyEventFileLoader(str(path)).Load():
                step = max(step, int(event.step))
                wall = max(wall, float(event.wall_time))
    return _LiveRun(plan=plan, root=root, files=files, step=step, wall_time=wall)


def _append(path: Path, root: Path, data: bytes) -> None:
    """Append whole records to an existing event file inside ``root``; never create or follow links."""
    try:
        if not _is_within(path, root):
            raise _RunGone(f"{path} resolves outside {root}")
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise _RunGone(str(path)) from exc
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


class LiveWriter:
    """Keeps the demo's live runs growing: one logged step per run every ``interval`` seconds.

    Each tick advances every live run by its logging cadence (10 steps) and appends that step's
    scalars to the run's existing event files — the eval scalars and the weight histogram only when
    the step reaches their own, sparser cadence, as a trainer would. New records carry the real
    current time. Records are framed in memory and appended with one ``write`` per file, so stopping
    (or killing the process) between ticks never leaves a torn record. It never creates files: a live
    run whose folder was deleted (say, by a retention demo) is dropped, not resurrected, and nothing
    outside the demo roots is ever written.
    """

    def __init__(self, logs: DemoLogs, interval: float = 3.0) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be positive, got {interval}")
        self._interval = interval
        self._targets: list[tuple[DemoRun, _RunPlan, Path]] = []
        for run in logs.live:
            plan = logs._plans.get(run.path)
            root = logs.roots.get(run.endpoint)
            if plan is None:
                raise ValueError(f"{run.path} was not written by write_demo_logs")
            if root is None or not _is_within(run.path, root):
                raise ValueError(f"{run.path} is not inside the {run.endpoint!r} demo root")
            self._targets.append((run, plan, root))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._runs: list[_LiveRun] = []

    def start(self) -> None:
        """Resume from what is on disk and start appending on a daemon thread."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("LiveWriter is already running")
        self._runs = []
        for run, plan, root in self._targets:
            try:
                self._runs.append(_resume(run, plan, root))
            except _RunGone:
                logger.info("demo run %s is gone; not appending to it", run.path)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tbhub-demo-live", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop appending; returns once the thread has finished its current tick (or ``timeout``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> LiveWriter:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            for live in list(self._runs):
                try:
                    self._advance(live)
                except _RunGone:
                    logger.info("demo run %s is gone; no longer appending to it", live.plan.run)
                    self._runs.remove(live)
                except OSError:
                    logger.warning(
                        "appending to demo run %s failed; dropping it", live.plan.run, exc_info=True
                    )
                    self._runs.remove(live)

    def _advance(self, live: _LiveRun) -> None:
        plan = live.plan
        step = live.step + plan.log_every
        # Monotonic per run even if the clock steps back, so TensorBoard's wall-time axis stays sane.
        wall = max(time.time(), live.wall_time + 1e-3)
        rng = np.random.default_rng([plan.seed, plan.index, step])
        steps = np.array([step], dtype=np.int64)
        walls = np.array([wall], dtype=np.float64)
        for stream in plan.streams:
            if step % stream.every == 0:
                events = _stream_events(plan, stream, steps, walls, rng)
                _append(live.files[stream.subdir], live.root, _encode(events))
        live.step, live.wall_time = step, wall
