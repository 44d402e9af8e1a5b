"""The domain model: frozen values that every layer passes around.

Paths inside a log root are POSIX-style *relative* paths (``"ds/run/train/events.out.tfevents.1"``);
only the storage adapters know where a log root really lives.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "DEFAULT_LAYOUT",
    "Alert",
    "CorruptRecord",
    "EndpointSpec",
    "EventFileScan",
    "FileEntry",
    "RunStatus",
    "RunSummary",
    "SkippedEntry",
    "run_path",
]

DEFAULT_LAYOUT = "{dataset}/{run}"


def run_path(endpoint: str, dataset: str, run: str) -> str:
    """``endpoint/dataset/run``; under the ``{run}`` layout (no dataset) ``endpoint/run``, never ``endpoint//run``."""
    return "/".join(part for part in (endpoint, dataset, run) if part)


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    """One log root served as one TensorBoard: what the core needs of the config.

    ``reload_interval`` (seconds, at least 1) has no default here: its default and its check belong to
    the config's settings table, and a spec built elsewhere (a test, a benchmark) says what it wants.
    """

    name: str
    logdir: str
    layout: str = DEFAULT_LAYOUT
    port: int | None = None
    title: str | None = None
    reload_interval: int = field(kw_only=True)


@dataclass(frozen=True, slots=True)
class FileEntry:
    """An event file found by ``LogStore.discover``: identity and size, nothing read yet."""

    relpath: str
    inode: int
    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class SkippedEntry:
    """Something discovery saw and deliberately did not follow (a symlink leaving the root, ...)."""

    relpath: str
    reason: str


@dataclass(frozen=True, slots=True)
class CorruptRecord:
    """Where and why an event file stops being readable."""

    offset: int
    reason: str


@dataclass(frozen=True, slots=True)
class EventFileScan:
    """What the scanner knows of one event file, valid for exactly (inode, size, mtime_ns).

    ``scanned_offset`` is the byte offset just past the last complete, valid record: a later scan of
    the same inode that has grown resumes there. ``records`` counts exactly the records TensorBoard's
    ``RawEventFileLoader`` yields (with ``verified`` also payload CRCs were checked). ``last_step`` is
    the highest step logged (writers log text at step 0 after training), ``last_wall_time`` the last
    record's.
    """

    relpath: str
    inode: int
    size: int
    mtime_ns: int
    records: int
    scanned_offset: int
    first_step: int | None = None
    last_step: int | None = None
    first_wall_time: float | None = None
    last_wall_time: float | None = None
    truncated: bool = False
    corrupt: CorruptRecord | None = None
    verified: bool = False


class RunStatus(StrEnum):
    RUNNING = "running"
    IDLE = "idle"
    STALLED = "stalled"
    FINISHED = "finished"
    DIVERGED = "diverged"


@dataclass(frozen=True, slots=True)
class RunSummary:
    """A run: the folder the endpoint's layout matches and every event file beneath it.

    The aggregates over ``files`` are computed once, at construction: pages list thousands of runs.
    """

    endpoint: str
    dataset: str
    run: str
    relpath: str
    files: tuple[EventFileScan, ...] = field(default=())
    size_bytes: int = field(init=False)
    event_files: int = field(init=False)
    event_count: int = field(init=False)
    last_modified_ns: int = field(init=False)
    first_step: int | None = field(init=False)
    last_step: int | None = field(init=False)
    first_wall_time: float | None = field(init=False)
    last_wall_time: float | None = field(init=False)
    truncated: bool = field(init=False)

    def __post_init__(self) -> None:
        files = self.files
        first_steps = [f.first_step for f in files if f.first_step is not None]
        last_steps = [f.last_step for f in files if f.last_step is not None]
        first_times = [f.first_wall_time for f in files if f.first_wall_time is not None]
        last_times = [f.last_wall_time for f in files if f.last_wall_time is not None]
        for name, value in (
            ("size_bytes", sum(f.size for f in files)),
            ("event_files", len(files)),
            ("event_count", sum(f.records for f in files)),
            ("last_modified_ns", max((f.mtime_ns for f in files), default=0)),
            ("first_step", min(first_steps) if first_steps else None),
            ("last_step", max(last_steps) if last_steps else None),
            ("first_wall_time", min(first_times) if first_times else None),
            ("last_wall_time", max(last_times) if last_times else None),
            ("truncated", any(f.truncated for f in files)),
        ):
            object.__setattr__(self, name, value)

    @property
    def corrupt(self) -> list[tuple[str, CorruptRecord]]:
        return [(f.relpath, f.corrupt) for f in self.files if f.corrupt is not None]

    def age_seconds(self, now_ns: int) -> float:
        return max(0.0, (now_ns - self.last_modified_ns) / 1e9)

    @property
    def duration_s(self) -> float | None:
        """Wall time from the first record to the last (``None`` before the run logged one)."""
        first, last = self.first_wall_time, self.last_wall_time
        return None if first is None or last is None else max(0.0, last - first)

    @property
    def steps_per_s(self) -> float | None:
        """Steps per second over ``duration_s`` (idle gaps included; ``core.cost`` counts busy time)."""
        duration = self.duration_s
        first, last = self.first_step, self.last_step
        if not duration or first is None or last is None:
            return None
        return (last - first) / duration

    def counts(self) -> dict[str, int | float | None]:
        """Size, files, events, first and last step and wall time: what every JSON shape of a run
        (``--json``, the hub's API, an archive's manifest) says of it, in this order."""
        return {
            "size_bytes": self.size_bytes,
            "event_files": self.event_files,
            "event_count": self.event_count,
            "first_step": self.first_step,
            "last_step": self.last_step,
            "first_wall_time": self.first_wall_time,
            "last_wall_time": self.last_wall_time,
        }


@dataclass(frozen=True, slots=True)
class Alert:
    """A run changed status (diverged, stalled, finished): what notifiers deliver.

    ``key`` identifies the state change itself (endpoint, run, status and the evidence's step), so
    the same change is never alerted twice, across restarts too. ``details`` is JSON-able: for a
    finished run ``duration_s``, ``last_step`` and ``scalars`` ({tag: {"final", "best", "best_step"}});
    for a diverged one ``tag``, ``step``, ``value`` and ``reason``; for a stalled one ``idle_s``.
    """

    key: str
    endpoint: str
    dataset: str
    run: str
    status: RunStatus
    at: float
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)
    url: str | None = None
    id: int | None = None

    @property
    def title(self) -> str:
        return f"{run_path(self.endpoint, self.dataset, self.run)} {self.status.value}"
