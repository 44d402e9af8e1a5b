"""Keeping the demo's live runs growing while it is served (``LiveWriter``)."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader

from tbhub.demo.curves import noise
from tbhub.demo.plans import RunPlan
from tbhub.demo.writer import MARKER, DemoLogs, DemoRun, encode, stream_events

__all__ = ["LiveWriter"]

logger = logging.getLogger(__name__)


class _RunGone(Exception):
    """A live run's files were deleted (or replaced by something we must not follow)."""


class _RunEnded(Exception):
    """A live run's job is over: it finished (and dropped its marker) or died of its NaN loss."""


@dataclass(slots=True)
class _LiveRun:
    """A live run's progress, owned by the LiveWriter thread."""

    plan: RunPlan
    root: Path
    folder: Path
    files: dict[str, Path]
    step: int
    wall_time: float


def _is_within(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def _resume(run: DemoRun, plan: RunPlan, root: Path) -> _LiveRun:
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
    return _LiveRun(plan=plan, root=root, folder=run.path, files=files, step=step, wall_time=wall)


def _drop_marker(folder: Path, root: Path) -> None:
    """Create the run's ``MARKER`` file, as a trainer does when it is done: never over or through a link."""
    try:
        if not _is_within(folder, root):
            raise _RunGone(f"{folder} resolves outside {root}")
        fd = os.open(folder / MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise _RunGone(str(folder)) from exc
    except FileExistsError:
        return
    os.close(fd)


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
    (or killing the process) between ticks never leaves a torn record. A run whose plan ends
    (``RunPlan.last_live_step``) stops there: a finishing run drops its ``DONE`` marker, a diverging one
    simply stops after its NaN steps. The marker is the only file it ever creates: a live run whose
    folder was deleted (say, by a retention demo) is dropped, not resurrected, and nothing outside the
    demo roots is ever written.
    """

    def __init__(self, logs: DemoLogs, interval: float = 3.0) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be positive, got {interval}")
        self._interval = interval
        self._targets: list[tuple[DemoRun, RunPlan, Path]] = []
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
                live = _resume(run, plan, root)
            except _RunGone:
                logger.info("demo run %s is gone; not appending to it", run.path)
                continue
            last = plan.last_live_step
            if last is None or live.step < last:  # a job that already ended is not started again
                self._runs.append(live)
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
                except _RunEnded:
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
        rng = noise(plan, step)
        for stream in plan.streams:
            if step % stream.every == 0:
                events = stream_events(plan, stream, [step], [wall], rng)
                _append(live.files[stream.subdir], live.root, encode(events))
        live.step, live.wall_time = step, wall
        last = plan.last_live_step
        if last is not None and step >= last:
            if plan.kind == "finishing":
                _drop_marker(live.folder, live.root)
            raise _RunEnded(plan.run)
