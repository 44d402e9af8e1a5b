"""What the supervisor's monitor thread does: launch the children, tend them each tick, relaunch them.

``Monitor`` shares the supervisor's lock, children and stop event. Each tick it reaps a child that
exited, health-checks a live one when due (never holding the lock while it waits on the network or a
process), tears down a hung one and relaunches it after backoff, and relaunches a waiting one once
its log root can be served.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from tbhub.adapters.storage.mirror.listing import one_line
from tbhub.adapters.tensorboard.childlog import write_marker
from tbhub.adapters.tensorboard.health import exit_report, judge, probe
from tbhub.adapters.tensorboard.process import spawn, terminate_group
from tbhub.adapters.tensorboard.reaper import group_alive, signal_group, write_pid_file
from tbhub.adapters.tensorboard.records import (
    Child,
    ChildState,
    RestartRecord,
    StartFailed,
    StartLaunched,
    StartOutcome,
)
from tbhub.adapters.tensorboard.timing import SupervisorTiming

__all__ = ["Monitor"]

# The supervisor's logger, named as it was when the supervisor was one module.
logger = logging.getLogger("tbhub.adapters.tensorboard.supervisor")


@dataclass(eq=False, slots=True, kw_only=True)
class Monitor:
    """The supervisor's mutable state beyond its children, and every change the monitor makes to it.

    ``groups`` maps each launched group's id to its leader until the group is confirmed empty;
    ``records`` is the append-only restart history; ``http`` is the health-check client (set by
    ``start``). Methods other than ``run`` and ``tend`` expect the caller to hold ``lock``.
    """

    children: Mapping[str, Child]
    lock: threading.RLock
    stopping: threading.Event
    timing: SupervisorTiming
    python: str
    env: Mapping[str, str]
    groups: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)  # pgid → leader, until empty
    records: tuple[RestartRecord, ...] = ()
    http: httpx.Client | None = None

    def run(self) -> None:
        """The monitor loop: tend every child each tick until stopping."""
        while not self.stopping.wait(self.timing.tick):
            self.prune_groups()
            for child in self.children.values():
                if self.stopping.is_set():
                    return
                try:
                    self.tend(child)
                except Exception:  # the monitor must outlive any one child's surprise
                    logger.exception("endpoint %s: supervisor error", child.spec.name)

    def prune_groups(self) -> None:
        """Forget groups whose leader is reaped and whose members are all gone."""
        with self.lock:
            for pgid, proc in list(self.groups.items()):
                if proc.returncode is not None and not group_alive(pgid):
                    del self.groups[pgid]

    def launch(self, child: Child) -> StartOutcome:
        """Spawn the child's process. Caller holds the lock; never launches once stopping."""
        spec = child.spec
        now = time.monotonic()
        if self.stopping.is_set():
            return StartFailed(spec.name, "supervisor is stopping")
        try:
            proc = spawn(spec, self.python, self.env)
        except OSError as exc:
            message = one_line(f"cannot launch TensorBoard: {exc}")
            child.state = ChildState.ERROR
            child.last_error = message
            child.next_action_at = now + self.timing.backoff(child.attempts)
            child.attempts += 1
            logger.error("endpoint %s: %s", spec.name, message)
            return StartFailed(spec.name, message)
        self.groups[proc.pid] = proc
        write_pid_file(spec.pid_path, proc.pid)
        child.proc = proc
        child.state = ChildState.STARTING
        child.started_at = time.time()
        child.started_mono = now
        child.up_since = None
        child.failures = 0
        child.next_health_at = now
        logger.info("endpoint %s: launched TensorBoard pid %d on port %d", spec.name, proc.pid, spec.port)
        return StartLaunched(spec.name, proc.pid, spec.port, spec.url)

    def wait_for_root(self, child: Child, problem: str, now: float) -> None:
        """The log root cannot be served (``problem``): check it again later. Caller holds the lock."""
        child.state = ChildState.ERROR
        child.last_error = problem
        child.next_action_at = now + self.timing.root_check_interval

    def tend(self, child: Child) -> None:
        t = self.timing
        now = time.monotonic()
        with self.lock:
            if self.stopping.is_set() or child.state is ChildState.STOPPED:
                return
            proc = child.proc
            requested, child.restart_requested = child.restart_requested, None
            if proc is not None and proc.poll() is not None:
                self._on_exit(child, proc, now)
                proc = None
            if proc is None:
                if requested is not None:
                    child.next_action_at = now
                if child.state in (ChildState.RESTARTING, ChildState.ERROR) and now >= child.next_action_at:
                    self._relaunch(child, now)
                return
            up_since = child.up_since
            if child.state is ChildState.UP and up_since is not None and now - up_since >= t.healthy_reset:
                child.attempts = 0
            if requested is None and now < child.next_health_at:
                return
        if requested is not None:
            self._replace(child, proc, requested, now, delay=0.0)
            return
        error = probe(self.http, child.spec)
        now = time.monotonic()
        with self.lock:
            if child.proc is not proc or self.stopping.is_set():
                return
            reason = judge(child, error, now, t)
            if reason is None:
                return
        self._replace(child, proc, reason, now, delay=None)

    def _on_exit(self, child: Child, proc: subprocess.Popen[bytes], now: float) -> None:
        """Record a child that exited by itself and schedule its relaunch. Caller holds the lock."""
        rc = proc.returncode
        reason, message = exit_report(rc, child.spec.log_path)
        # Kill what the dead TensorBoard left in its group (the data server it never reaps).
        signal_group(proc.pid, signal.SIGKILL)
        if not group_alive(proc.pid):
            self.groups.pop(proc.pid, None)
        child.proc = None
        child.last_error = message
        self._schedule_restart(child, reason, rc, proc.pid, now, delay=None)

    def _replace(
        self, child: Child, proc: subprocess.Popen[bytes], reason: str, now: float, delay: float | None
    ) -> None:
        """Tear down a live (maybe hung) child and schedule its relaunch. Caller does NOT hold the lock."""
        with self.lock:
            if child.proc is not proc or self.stopping.is_set():
                return
            child.proc = None
            child.state = ChildState.RESTARTING
            child.next_action_at = float("inf")  # not before the old group is gone: it holds the port
        logger.warning("endpoint %s: restarting TensorBoard pid %d: %s", child.spec.name, proc.pid, reason)
        rc = terminate_group(proc, self.timing.stop_grace)
        with self.lock:
            if not group_alive(proc.pid):
                self.groups.pop(proc.pid, None)
            if self.stopping.is_set():
                return
            child.last_error = one_line(f"TensorBoard {reason}")
            self._schedule_restart(child, reason, rc, proc.pid, time.monotonic(), delay=delay)

    def _schedule_restart(
        self, child: Child, reason: str, rc: int | None, pid: int, now: float, delay: float | None
    ) -> None:
        """Caller holds the lock. ``delay=None``: exponential backoff."""
        wait = self.timing.backoff(child.attempts) if delay is None else delay
        if delay is None:
            child.attempts += 1
        child.state = ChildState.RESTARTING
        child.up_since = None
        child.next_action_at = now + wait
        child.restarts += 1
        child.last_restart_reason = reason
        self.records = (*self.records, RestartRecord(child.spec.name, time.time(), reason, rc, pid))
        with contextlib.suppress(OSError), open(child.spec.log_path, "ab") as log_file:
            write_marker(log_file, f"--- tbhub: {reason}; relaunch in {wait:g} s")
        logger.warning("endpoint %s: TensorBoard %s; relaunch in %g s", child.spec.name, reason, wait)

    def _relaunch(self, child: Child, now: float) -> None:
        """Caller holds the lock."""
        problem = child.spec.root_problem()
        if problem is not None:
            if child.last_error != problem:
                logger.warning("endpoint %s: %s", child.spec.name, problem)
            self.wait_for_root(child, problem, now)
            return
        self.launch(child)
