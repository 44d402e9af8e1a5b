"""What the supervisor knows of its children: the immutable values it hands out, and ``Child``, the
mutable bookkeeping of one child that only the supervisor touches, under its lock.

The states and their transitions are drawn in ``supervisor``.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from tbhub.adapters.tensorboard.command import ChildSpec

__all__ = [
    "Child", "ChildState", "ChildStatus", "RestartRecord",
    "StartFailed", "StartLaunched", "StartOutcome", "StartWaiting",
]


class ChildState(StrEnum):
    STARTING = "starting"  # launched, not answering yet
    UP = "up"  # answers health checks
    RESTARTING = "restarting"  # exited or hung; relaunch scheduled after backoff
    ERROR = "error"  # cannot run: log root unavailable or launch failed; retried automatically
    STOPPED = "stopped"  # stop() was called; final


@dataclass(frozen=True, slots=True)
class ChildStatus:
    """A snapshot of one child. Times are Unix wall-clock seconds."""

    name: str
    state: ChildState
    pid: int | None
    port: int
    url: str
    logdir: str
    log_path: Path
    restarts: int = 0
    last_restart_reason: str | None = None
    last_error: str | None = None
    started_at: float | None = None


@dataclass(frozen=True, slots=True)
class RestartRecord:
    """One restart: when it was decided, why, and how the old process ended (``None``: unknown)."""

    name: str
    at: float
    reason: str
    exit_code: int | None
    pid: int | None


@dataclass(frozen=True, slots=True)
class _NotLaunched:
    """What ``start()`` reports of a child it did not launch: why not."""

    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class StartWaiting(_NotLaunched):
    """The log root is unavailable; the child launches by itself when it appears."""


@dataclass(frozen=True, slots=True)
class StartFailed(_NotLaunched):
    """The process could not be executed; the monitor retries with backoff."""


@dataclass(frozen=True, slots=True)
class StartLaunched:
    """The child was launched (it may still be starting; see ``wait_ready``)."""

    name: str
    pid: int
    port: int
    url: str


StartOutcome = StartLaunched | StartWaiting | StartFailed


@dataclass(eq=False, slots=True)
class Child:
    """Mutable per-child bookkeeping; every field is guarded by the supervisor's lock."""

    spec: ChildSpec
    state: ChildState = ChildState.STOPPED
    proc: subprocess.Popen[bytes] | None = None
    started_at: float | None = None  # wall clock, for display
    started_mono: float = 0.0
    up_since: float | None = None
    failures: int = 0  # consecutive failed health checks while up
    attempts: int = 0  # consecutive restarts without a healthy period, for backoff
    next_action_at: float = 0.0  # when a restarting/error child is (re)tried
    next_health_at: float = 0.0
    restarts: int = 0
    last_restart_reason: str | None = None
    last_error: str | None = None
    restart_requested: str | None = None

    def snapshot(self) -> ChildStatus:
        """The immutable view of this child that leaves the supervisor's lock."""
        spec, proc = self.spec, self.proc
        return ChildStatus(
            spec.name, self.state, None if proc is None else proc.pid,
            spec.port, spec.url, spec.logdir, spec.log_path,
            restarts=self.restarts, last_restart_reason=self.last_restart_reason, last_error=self.last_error,
            started_at=None if proc is None else self.started_at,
        )
