"""One real TensorBoard child process per endpoint, supervised.

Why child processes: TensorBoard has no supported embedding API (tensorflow/tensorboard#3709), and an
app built in-process can never be stopped (its ingester has ``start()`` only, and the Rust data server
dies only with its parent). A child process can be restarted, dropped and health-checked on its own.

Lifecycle of one child (``ChildState``)::

    start() ──root missing──▶ error ──root appears (checked every root_check_interval)──┐
       │                        ▲                                                        │
       ▼                        │ root gone / exec failed                                │
    starting ──answers──▶ up ───┴─ exits, or stops answering health_failures times ──▶ restarting
       ▲                                                                                 │
       └──────────────────── relaunch after backoff 1 s, 2 s, 4 s … ≤ 30 s ◀─────────────┘
    stop() ──▶ stopped (from any state; final)

Invariants:

- Every child runs in its own session, so its process-group id is its pid. TensorBoard does not reap
  its ``tensorboard_data_server``: a dead TensorBoard can leave the server behind. Every signal goes
  to the whole group, and a group counts as gone only when no member is left (``process``).
- A group is tracked from launch until it is confirmed empty; ``stop()`` signals every tracked group,
  including one the monitor is tearing down for a restart, and nothing is launched once stopping began.
- The supervisor never passes a flag that makes TensorBoard write into the log root (no ``--db*``,
  ``--inspect``); ``ChildSpec`` rejects extra arguments that override the flags it owns (``command``).
- All public methods are thread-safe; one lock guards the mutable state and is never held while
  waiting on a process or the network.
- Restart history is an append-only tuple of frozen ``RestartRecord`` values.

Safety nets for the hub process itself: an ``atexit`` hook stops every child; each child gets SIGKILL
when the hub dies (``lifeline``); a pid file next to each child's log lets the next ``start()`` stop
what a hard-killed hub still left behind (``reaper``). Children see only the environment they need
(``environment``: none of the hub's secrets).

Modules: ``command`` (``ChildSpec``: the command line and where the child answers), ``timing``
(``SupervisorTiming``: intervals and backoff), ``records`` (the values handed out and the per-child
bookkeeping), ``process`` (launch, port check, ending a process group, exit status), ``childlog``
(the child's log file), ``health`` (health check, hung and exited verdicts), ``monitor`` (what the
monitor thread does each tick) and this module: ``TensorBoardSupervisor``, the public face that
starts, stops and restarts the children and runs the monitor thread.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Iterable, Mapping

import httpx

from tbhub.adapters.tensorboard.childlog import LOG_TAIL_BYTES, read_tail
from tbhub.adapters.tensorboard.command import ChildSpec, check_unique
from tbhub.adapters.tensorboard.monitor import Monitor
from tbhub.adapters.tensorboard.process import end_groups, port_problem
from tbhub.adapters.tensorboard.reaper import group_alive, reap_leftovers
from tbhub.adapters.tensorboard.records import (
    Child,
    ChildState,
    ChildStatus,
    RestartRecord,
    StartFailed,
    StartLaunched,
    StartOutcome,
    StartWaiting,
)
from tbhub.adapters.tensorboard.timing import SupervisorTiming
from tbhub.errors import ServeError, UnknownEndpoint

__all__ = [
    "ChildSpec",
    "ChildState",
    "ChildStatus",
    "RestartRecord",
    "StartFailed",
    "StartLaunched",
    "StartOutcome",
    "StartWaiting",
    "SupervisorTiming",
    "TensorBoardSupervisor",
]

logger = logging.getLogger(__name__)


class TensorBoardSupervisor:
    """Runs one TensorBoard per ``ChildSpec``, restarts the ones that exit or hang.

    Use::

        sup = TensorBoardSupervisor([ChildSpec.from_endpoint(ep, state_dir=d) for ep in endpoints])
        outcomes = sup.start()          # ServeError if a port is taken: then nothing was started
        sup.wait_ready(60)
        sup.status()                    # list[ChildStatus], in spec order
        sup.stop()                      # idempotent; everything gone within the timeout

    ``start()`` may be called once; a stopped supervisor cannot be started again.
    """

    def __init__(
        self,
        specs: Iterable[ChildSpec],
        *,
        timing: SupervisorTiming | None = None,
        python: str = sys.executable,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._specs = tuple(specs)
        self._timing = timing or SupervisorTiming()
        child_env = dict(os.environ if env is None else env)
        # Output reaches the log file as it happens, so crash messages are not lost in a buffer.
        child_env["PYTHONUNBUFFERED"] = "1"
        check_unique(self._specs)
        self._lock = threading.RLock()
        self._children = {s.name: Child(spec=s) for s in self._specs}
        self._started = False
        self._stopping = threading.Event()
        self._monitor = Monitor(
            children=self._children, lock=self._lock, stopping=self._stopping,
            timing=self._timing, python=python, env=child_env,
        )
        self._thread: threading.Thread | None = None

    # -- public API ---------------------------------------------------------------------------------

    @property
    def specs(self) -> tuple[ChildSpec, ...]:
        return self._specs

    def start(self) -> tuple[StartOutcome, ...]:
        """Launch every child whose log root is available and start the monitor.

        Raises ``ServeError`` naming the port when any child's port cannot be bound; all ports are
        checked before anything is launched, so on error no process was started. Children a
        hard-killed earlier hub left behind (found by pid file) are stopped first.
        """
        with self._lock:
            if self._started or self._stopping.is_set():
                raise ServeError("the TensorBoard supervisor was already started or stopped")
            self._started = True
        for spec in self._specs:
            reap_leftovers(spec.name, spec.pid_path, spec.path_prefix, self._timing.stop_grace)
        problems = [p for s in self._specs if (p := port_problem(s)) is not None]
        if problems:
            with self._lock:
                for child in self._children.values():
                    child.state = ChildState.STOPPED
                self._stopping.set()
            raise ServeError("; ".join(problems))
        # Never route health checks through an HTTP(S)_PROXY from the environment.
        self._monitor.http = httpx.Client(timeout=self._timing.health_timeout, trust_env=False)
        atexit.register(self._atexit_stop)
        outcomes: list[StartOutcome] = []
        now = time.monotonic()
        with self._lock:
            for child in self._children.values():
                problem = child.spec.root_problem()
                if problem is not None:
                    self._monitor.wait_for_root(child, problem, now)
                    outcomes.append(StartWaiting(child.spec.name, problem))
                    continue
                outcomes.append(self._monitor.launch(child))
            self._thread = threading.Thread(target=self._monitor.run, name="tbhub-tb-supervisor", daemon=True)
            self._thread.start()
        return tuple(outcomes)

    def wait_ready(self, timeout: float) -> bool:
        """Wait until every child whose log root exists answers; ``False`` on timeout or if stopped."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if not self._started or self._stopping.is_set():
                    return False
                pending = [
                    c
                    for c in self._children.values()
                    if c.state is not ChildState.UP and c.spec.root_problem() is None
                ]
            if not pending:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def status(self) -> list[ChildStatus]:
        """A snapshot of every child, in spec order."""
        with self._lock:
            return [c.snapshot() for c in self._children.values()]

    def child_status(self, name: str) -> ChildStatus:
        """A snapshot of one child; ``UnknownEndpoint`` if no child has that name."""
        with self._lock:
            return self._child(name).snapshot()

    def restarts(self) -> tuple[RestartRecord, ...]:
        """Every restart so far, oldest first."""
        with self._lock:
            return self._monitor.records

    def restart(self, name: str, reason: str = "restart requested") -> None:
        """Ask the monitor to restart a child now (no backoff); returns before it happens."""
        with self._lock:
            self._child(name).restart_requested = reason

    def retry_now(self, name: str) -> None:
        """Check a waiting child's log root at the next tick instead of after ``root_check_interval``
        (its mirror just completed a first sync); no effect on a child that runs or backs off."""
        with self._lock:
            child = self._child(name)
            if child.state is ChildState.ERROR and child.proc is None:
                child.next_action_at = min(child.next_action_at, time.monotonic())

    def log_tail(self, name: str, max_bytes: int = LOG_TAIL_BYTES) -> str:
        """The end of the child's log (stdout and stderr of every launch, with tbhub markers)."""
        return read_tail(self._child(name).spec.log_path, max_bytes)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every child and the monitor; idempotent.

        Every group gets SIGTERM (and SIGCONT, so a stopped process can act on it) at once; groups
        still alive after ``stop_grace`` (at most 80 % of ``timeout``) get SIGKILL. Returns within
        about ``timeout`` seconds; afterwards no TensorBoard and no data server of ours is left.
        """
        start = time.monotonic()
        deadline = start + timeout
        with self._lock:
            first = not self._stopping.is_set()
            self._stopping.set()
            for child in self._children.values():
                child.state = ChildState.STOPPED
                child.proc = None
                child.up_since = None
            groups = list(self._monitor.groups.values())
        if first:
            with contextlib.suppress(Exception):
                atexit.unregister(self._atexit_stop)
        end_groups(groups, start + min(self._timing.stop_grace, timeout * 0.8), deadline)
        with self._lock:
            for proc in groups:
                if proc.returncode is not None and not group_alive(proc.pid):
                    self._monitor.groups.pop(proc.pid, None)
            leftover = sorted(self._monitor.groups)
        if leftover:
            # Keep the pid files: the next start() stops what is left.
            logger.error("TensorBoard process groups %s did not exit within %.0f s", leftover, timeout)
        else:
            for spec in self._specs:
                with contextlib.suppress(OSError):
                    spec.pid_path.unlink()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
        http = self._monitor.http
        if http is not None and (thread is None or not thread.is_alive()):
            http.close()

    def __enter__(self) -> TensorBoardSupervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals ----------------------------------------------------------------------------------

    def _child(self, name: str) -> Child:
        try:
            return self._children[name]
        except KeyError:
            raise UnknownEndpoint(f"no TensorBoard for endpoint {name!r}") from None

    def _atexit_stop(self) -> None:
        self.stop(timeout=min(10.0, self._timing.stop_grace + 2.0))
