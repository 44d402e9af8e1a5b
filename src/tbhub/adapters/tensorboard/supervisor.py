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
  to the whole group, and a group counts as gone only when no member is left.
- A group is tracked from launch until it is confirmed empty; ``stop()`` signals every tracked group,
  including one the monitor is tearing down for a restart, and nothing is launched once stopping began.
- The supervisor never passes a flag that makes TensorBoard write into the log root (no ``--db*``,
  ``--inspect``); ``ChildSpec`` rejects extra arguments that override the flags it owns.
- All public methods are thread-safe; one lock guards the mutable state and is never held while
  waiting on a process or the network.
- Restart history is an append-only tuple of frozen ``RestartRecord`` values.

Safety nets for the hub process itself: an ``atexit`` hook stops every child; each child gets SIGKILL
when the hub dies (``lifeline``); a pid file next to each child's log lets the next ``start()`` stop
what a hard-killed hub still left behind (``reaper``). Children see only the environment they need
(``environment``: none of the hub's secrets).
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import logging
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO

import httpx

from tbhub.adapters.storage.mirror import MANIFEST as MIRROR_MANIFEST
from tbhub.adapters.tensorboard.environment import child_environment
from tbhub.adapters.tensorboard.lifeline import dying_with_parent
from tbhub.adapters.tensorboard.reaper import group_alive as _group_alive
from tbhub.adapters.tensorboard.reaper import reap_leftovers, write_pid_file
from tbhub.adapters.tensorboard.reaper import signal_group as _signal_group
from tbhub.core.models import EndpointSpec
from tbhub.errors import ConfigError, ServeError, UnknownEndpoint

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

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_LOAD_FAST_CHOICES = frozenset({"true", "auto", "false"})
# Flags the supervisor owns, and flags that make TensorBoard write somewhere (``--db_import`` imports
# into a database) or do something other than serve. Extra arguments may not contain them.
_RESERVED_FLAGS = frozenset(
    {
        "--logdir",
        "--logdir_spec",
        "--host",
        "--bind_all",
        "--port",
        "--reuse_port",
        "--path_prefix",
        "--load_fast",
        "--reload_interval",
        "--db",
        "--db_import",
        "--inspect",
        "--event_file",
        "--tag",
        "--version_tb",
    }
)
_LAUNCH_MARKER = "--- tbhub: launching"
# Rotate a child's log when it grows past this at launch: a crash loop must not fill the disk.
_LOG_ROTATE_BYTES = 5 * 1024 * 1024
_LOG_TAIL_BYTES = 16 * 1024
_MAX_MESSAGE = 300
# absl log prefix, e.g. "E1128 21:00:34.789965 139989772221312 program.py:300] ".
_ABSL_PREFIX = re.compile(r"^[EWIF]\d{4} [\d:.]+ +\d+ [^\]]+\] ")
_ERROR_LINE = re.compile(r"^(ERROR:|E\d{4} |[\w.]*(Error|Exception)\b|.*\berror: )")


# ---------------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """How to run the TensorBoard of one endpoint.

    Invariants (checked on construction, ``ConfigError`` otherwise): ``name`` is a slug usable in a URL
    path and a file name; ``path_prefix`` starts with ``/`` and does not end with ``/``; ``port`` is
    1–65535; ``extra_args`` contains none of the flags the supervisor owns. A local ``logdir`` is
    absolute; a URL (``s3://…``) is kept as given.

    ``mirror_of``: the object-storage URL whose local mirror (``storage/mirror.py``) ``logdir`` is.
    TensorBoard's fast loader reads that folder; the child waits until a first sync has completed
    there, so it starts with every run in place.
    """

    name: str
    logdir: str
    port: int
    log_path: Path
    host: str = "127.0.0.1"
    load_fast: str = "true"
    reload_interval: int = 30
    path_prefix: str = ""
    extra_args: tuple[str, ...] = ()
    mirror_of: str | None = None

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ConfigError(f"endpoint name {self.name!r} must be letters, digits, '.', '_' or '-'")
        if not 0 < self.port < 65536:
            raise ConfigError(f"port {self.port} for endpoint {self.name!r} is out of range")
        if self.load_fast not in _LOAD_FAST_CHOICES:
            raise ConfigError(f"load_fast must be one of true, auto, false, not {self.load_fast!r}")
        if self.reload_interval < 0:
            raise ConfigError(f"reload_interval for endpoint {self.name!r} must not be negative")
        if not self.path_prefix:
            object.__setattr__(self, "path_prefix", f"/tb/{self.name}")
        if not self.path_prefix.startswith("/") or self.path_prefix.endswith("/"):
            raise ConfigError(f"path_prefix {self.path_prefix!r} must start and not end with '/'")
        if not self.is_remote:
            object.__setattr__(self, "logdir", os.path.abspath(os.path.expanduser(self.logdir)))
        for arg in self.extra_args:
            if arg.split("=", 1)[0] in _RESERVED_FLAGS:
                raise ConfigError(f"extra TensorBoard argument {arg!r} is set by tbhub and not allowed")

    @classmethod
    def from_endpoint(
        cls,
        endpoint: EndpointSpec,
        *,
        state_dir: Path,
        exposed: bool = False,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        mirror_dir: Path | None = None,
    ) -> ChildSpec:
        """Build the spec of an endpoint; its log goes to ``state_dir/logs/tensorboard-NAME.log``.

        ``port`` overrides ``endpoint.port``; one of them must be set (the config assigns ports).
        ``exposed`` binds all interfaces (``0.0.0.0``) instead of loopback. ``mirror_dir``: for a URL
        log root, the local mirror TensorBoard reads instead of the URL (with the fast loader).
        """
        chosen = port if port is not None else endpoint.port
        if chosen is None:
            raise ConfigError(f"endpoint {endpoint.name!r} has no port")
        remote = _is_url(endpoint.logdir)
        mirrored = remote and mirror_dir is not None
        return cls(
            name=endpoint.name,
            logdir=str(mirror_dir) if mirrored else endpoint.logdir,
            port=chosen,
            log_path=Path(state_dir) / "logs" / f"tensorboard-{endpoint.name}.log",
            host="0.0.0.0" if exposed else "127.0.0.1",
            # The fast loader reads local paths (and gs://) only; "auto" falls back to the Python
            # loader where it cannot read, e.g. an s3:// URL served without a mirror.
            load_fast="auto" if remote and not mirrored else "true",
            reload_interval=endpoint.reload_interval,
            extra_args=tuple(extra_args),
            mirror_of=endpoint.logdir if mirrored else None,
        )

    @property
    def is_remote(self) -> bool:
        return _is_url(self.logdir)

    @property
    def pid_path(self) -> Path:
        return self.log_path.with_suffix(".pid")

    @property
    def probe_host(self) -> str:
        """Where the supervisor itself reaches the child (a wildcard bind answers on loopback)."""
        if self.host in ("0.0.0.0", "", "localhost"):
            return "127.0.0.1"
        if self.host == "::":
            return "::1"
        return self.host

    @property
    def url(self) -> str:
        """The child's own (direct, not proxied) URL, ending in ``/``."""
        host = self.probe_host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}{self.path_prefix}/"

    @property
    def health_url(self) -> str:
        # Cheap: answered from flags, no data-provider call, and TensorBoard logs nothing for it.
        return f"{self.url}data/environment"

    def command(self, python: str = sys.executable) -> list[str]:
        """The argv of the child. Nothing here writes into the log root."""
        return [
            python,
            "-m",
            "tensorboard.main",
            "--logdir",
            self.logdir,
            "--load_fast",
            self.load_fast,
            "--reload_interval",
            str(self.reload_interval),
            "--path_prefix",
            self.path_prefix,
            "--port",
            str(self.port),
            "--host",
            self.host,
            *self.extra_args,
        ]

    def root_problem(self) -> str | None:
        """Why the log root cannot be served right now, or ``None``. URLs are not checked here."""
        if self.is_remote:
            return None
        if self.mirror_of is not None:
            if not os.path.exists(os.path.join(self.logdir, MIRROR_MANIFEST)):
                return f"waiting for the first sync of {self.mirror_of}"
            return None
        if not os.path.exists(self.logdir):
            return f"log root {self.logdir} does not exist"
        if not os.path.isdir(self.logdir):
            return f"log root {self.logdir} is not a directory"
        if not os.access(self.logdir, os.R_OK | os.X_OK):
            return f"log root {self.logdir} is not readable"
        return None


@dataclass(frozen=True, slots=True)
class SupervisorTiming:
    """Intervals in seconds. Defaults suit production; tests shorten them.

    A hung child is restarted after about ``health_interval * health_failures`` (plus timeouts); a
    crashing one is relaunched after ``backoff_initial * 2**n`` capped at ``backoff_max``, where ``n``
    resets once the child has been up for ``healthy_reset``.
    """

    tick: float = 0.25
    health_interval: float = 5.0
    health_timeout: float = 2.0
    health_failures: int = 3
    startup_timeout: float = 60.0
    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    healthy_reset: float = 60.0
    root_check_interval: float = 5.0
    stop_grace: float = 5.0


# ---------------------------------------------------------------------------------------------------
# Values handed out


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
class StartLaunched:
    """The child was launched (it may still be starting; see ``wait_ready``)."""

    name: str
    pid: int
    port: int
    url: str


@dataclass(frozen=True, slots=True)
class StartWaiting:
    """The log root is unavailable; the child launches by itself when it appears."""

    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class StartFailed:
    """The process could not be executed; the monitor retries with backoff."""

    name: str
    reason: str


StartOutcome = StartLaunched | StartWaiting | StartFailed


# ---------------------------------------------------------------------------------------------------
# The supervisor


@dataclass(eq=False, slots=True)
class _Child:
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
        self._python = python
        self._env = dict(os.environ if env is None else env)
        # Output reaches the log file as it happens, so crash messages are not lost in a buffer.
        self._env["PYTHONUNBUFFERED"] = "1"
        _check_unique(self._specs)
        self._lock = threading.RLock()
        self._children = {s.name: _Child(spec=s) for s in self._specs}
        self._groups: dict[int, subprocess.Popen[bytes]] = {}  # pgid → leader, until group is empty
        self._records: tuple[RestartRecord, ...] = ()
        self._started = False
        self._stopping = threading.Event()
        self._monitor: threading.Thread | None = None
        self._http: httpx.Client | None = None

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
        problems = [p for s in self._specs if (p := _port_problem(s)) is not None]
        if problems:
            with self._lock:
                for child in self._children.values():
                    child.state = ChildState.STOPPED
                self._stopping.set()
            raise ServeError("; ".join(problems))
        # Never route health checks through an HTTP(S)_PROXY from the environment.
        self._http = httpx.Client(timeout=self._timing.health_timeout, trust_env=False)
        atexit.register(self._atexit_stop)
        outcomes: list[StartOutcome] = []
        now = time.monotonic()
        with self._lock:
            for child in self._children.values():
                problem = child.spec.root_problem()
                if problem is not None:
                    child.state = ChildState.ERROR
                    child.last_error = problem
                    child.next_action_at = now + self._timing.root_check_interval
                    outcomes.append(StartWaiting(child.spec.name, problem))
                    continue
                outcomes.append(self._launch(child))
            self._monitor = threading.Thread(target=self._run, name="tbhub-tb-supervisor", daemon=True)
            self._monitor.start()
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
            return [self._snapshot(c) for c in self._children.values()]

    def child_status(self, name: str) -> ChildStatus:
        """A snapshot of one child; ``UnknownEndpoint`` if no child has that name."""
        with self._lock:
            return self._snapshot(self._child(name))

    def restarts(self) -> tuple[RestartRecord, ...]:
        """Every restart so far, oldest first."""
        with self._lock:
            return self._records

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

    def log_tail(self, name: str, max_bytes: int = _LOG_TAIL_BYTES) -> str:
        """The end of the child's log (stdout and stderr of every launch, with tbhub markers)."""
        return _read_tail(self._child(name).spec.log_path, max_bytes)

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
            groups = list(self._groups.values())
        if first:
            with contextlib.suppress(Exception):
                atexit.unregister(self._atexit_stop)
        for proc in groups:
            _signal_group(proc.pid, signal.SIGTERM)
            _signal_group(proc.pid, signal.SIGCONT)
        kill_at = start + min(self._timing.stop_grace, timeout * 0.8)
        if not _wait_groups(groups, kill_at):
            for proc in groups:
                _signal_group(proc.pid, signal.SIGKILL)
            _wait_groups(groups, deadline)
        with self._lock:
            for proc in groups:
                if proc.returncode is not None and not _group_alive(proc.pid):
                    self._groups.pop(proc.pid, None)
            leftover = sorted(self._groups)
        if leftover:
            # Keep the pid files: the next start() stops what is left.
            logger.error("TensorBoard process groups %s did not exit within %.0f s", leftover, timeout)
        else:
            for spec in self._specs:
                with contextlib.suppress(OSError):
                    spec.pid_path.unlink()
        monitor = self._monitor
        if monitor is not None and monitor is not threading.current_thread():
            monitor.join(max(0.0, deadline - time.monotonic()))
        if self._http is not None and (monitor is None or not monitor.is_alive()):
            self._http.close()

    def __enter__(self) -> TensorBoardSupervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals ----------------------------------------------------------------------------------

    def _child(self, name: str) -> _Child:
        try:
            return self._children[name]
        except KeyError:
            raise UnknownEndpoint(f"no TensorBoard for endpoint {name!r}") from None

    def _snapshot(self, child: _Child) -> ChildStatus:
        spec = child.spec
        return ChildStatus(
            name=spec.name,
            state=child.state,
            pid=child.proc.pid if child.proc is not None else None,
            port=spec.port,
            url=spec.url,
            logdir=spec.logdir,
            log_path=spec.log_path,
            restarts=child.restarts,
            last_restart_reason=child.last_restart_reason,
            last_error=child.last_error,
            started_at=child.started_at if child.proc is not None else None,
        )

    def _atexit_stop(self) -> None:
        self.stop(timeout=min(10.0, self._timing.stop_grace + 2.0))

    def _backoff(self, child: _Child) -> float:
        t = self._timing
        return float(min(t.backoff_initial * 2 ** min(child.attempts, 30), t.backoff_max))

    def _launch(self, child: _Child) -> StartOutcome:
        """Spawn the child's process. Caller holds the lock; never launches once stopping."""
        spec = child.spec
        now = time.monotonic()
        if self._stopping.is_set():
            return StartFailed(spec.name, "supervisor is stopping")
        cmd = spec.command(self._python)
        try:
            spec.log_path.parent.mkdir(parents=True, exist_ok=True)
            _rotate(spec.log_path)
            with open(spec.log_path, "ab") as log_file:
                _write_marker(log_file, f"{_LAUNCH_MARKER} {shlex.join(cmd)}")
                proc = subprocess.Popen(
                    dying_with_parent(cmd, self._python),
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    env=child_environment(self._env, reads_url=spec.is_remote),
                    # Own session → own process group, so the data server can be signalled with it.
                    start_new_session=True,
                )
        except OSError as exc:
            message = _one_line(f"cannot launch TensorBoard: {exc}")
            child.state = ChildState.ERROR
            child.last_error = message
            child.next_action_at = now + self._backoff(child)
            child.attempts += 1
            logger.error("endpoint %s: %s", spec.name, message)
            return StartFailed(spec.name, message)
        self._groups[proc.pid] = proc
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

    def _run(self) -> None:
        """The monitor loop: tend every child each tick until stopping."""
        while not self._stopping.wait(self._timing.tick):
            self._prune_groups()
            for child in self._children.values():
                if self._stopping.is_set():
                    return
                try:
                    self._tend(child)
                except Exception:  # the monitor must outlive any one child's surprise
                    logger.exception("endpoint %s: supervisor error", child.spec.name)

    def _prune_groups(self) -> None:
        """Forget groups whose leader is reaped and whose members are all gone."""
        with self._lock:
            for pgid, proc in list(self._groups.items()):
                if proc.returncode is not None and not _group_alive(pgid):
                    del self._groups[pgid]

    def _tend(self, child: _Child) -> None:
        t = self._timing
        now = time.monotonic()
        with self._lock:
            if self._stopping.is_set() or child.state is ChildState.STOPPED:
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
        error = self._probe(child.spec)
        now = time.monotonic()
        with self._lock:
            if child.proc is not proc or self._stopping.is_set():
                return
            if error is None:
                if child.state is ChildState.STARTING:
                    child.state = ChildState.UP
                    child.up_since = now
                    child.last_error = None
                    logger.info("endpoint %s: TensorBoard is up", child.spec.name)
                child.failures = 0
                child.next_health_at = now + t.health_interval
                return
            if child.state is ChildState.STARTING:
                child.next_health_at = now + t.tick
                if now - child.started_mono < t.startup_timeout:
                    return
                reason = f"did not answer within {t.startup_timeout:g} s ({error})"
            else:
                child.failures += 1
                child.next_health_at = now + t.health_interval
                if child.failures < t.health_failures:
                    return
                reason = f"stopped answering ({child.failures} failed health checks: {error})"
        self._replace(child, proc, reason, now, delay=None)

    def _on_exit(self, child: _Child, proc: subprocess.Popen[bytes], now: float) -> None:
        """Record a child that exited by itself and schedule its relaunch. Caller holds the lock."""
        rc = proc.returncode
        reason = _describe_exit(rc)
        detail = _error_line(_read_tail(child.spec.log_path, _LOG_TAIL_BYTES))
        # Kill what the dead TensorBoard left in its group (the data server it never reaps).
        _signal_group(proc.pid, signal.SIGKILL)
        if not _group_alive(proc.pid):
            self._groups.pop(proc.pid, None)
        child.proc = None
        child.last_error = _one_line(f"TensorBoard {reason}: {detail}" if detail else f"TensorBoard {reason}")
        self._schedule_restart(child, reason, rc, proc.pid, now, delay=None)

    def _replace(
        self, child: _Child, proc: subprocess.Popen[bytes], reason: str, now: float, delay: float | None
    ) -> None:
        """Tear down a live (maybe hung) child and schedule its relaunch. Caller does NOT hold the lock."""
        with self._lock:
            if child.proc is not proc or self._stopping.is_set():
                return
            child.proc = None
            child.state = ChildState.RESTARTING
            child.next_action_at = float("inf")  # not before the old group is gone: it holds the port
        logger.warning("endpoint %s: restarting TensorBoard pid %d: %s", child.spec.name, proc.pid, reason)
        rc = _terminate_group(proc, self._timing.stop_grace)
        with self._lock:
            if not _group_alive(proc.pid):
                self._groups.pop(proc.pid, None)
            if self._stopping.is_set():
                return
            child.last_error = _one_line(f"TensorBoard {reason}")
            self._schedule_restart(child, reason, rc, proc.pid, time.monotonic(), delay=delay)

    def _schedule_restart(
        self, child: _Child, reason: str, rc: int | None, pid: int, now: float, delay: float | None
    ) -> None:
        """Caller holds the lock. ``delay=None``: exponential backoff."""
        wait = self._backoff(child) if delay is None else delay
        if delay is None:
            child.attempts += 1
        child.state = ChildState.RESTARTING
        child.up_since = None
        child.next_action_at = now + wait
        child.restarts += 1
        child.last_restart_reason = reason
        self._records = (*self._records, RestartRecord(child.spec.name, time.time(), reason, rc, pid))
        with contextlib.suppress(OSError), open(child.spec.log_path, "ab") as log_file:
            _write_marker(log_file, f"--- tbhub: {reason}; relaunch in {wait:g} s")
        logger.warning("endpoint %s: TensorBoard %s; relaunch in %g s", child.spec.name, reason, wait)

    def _relaunch(self, child: _Child, now: float) -> None:
        """Caller holds the lock."""
        problem = child.spec.root_problem()
        if problem is not None:
            if child.last_error != problem:
                logger.warning("endpoint %s: %s", child.spec.name, problem)
            child.state = ChildState.ERROR
            child.last_error = problem
            child.next_action_at = now + self._timing.root_check_interval
            return
        self._launch(child)

    def _probe(self, spec: ChildSpec) -> str | None:
        """One health check; ``None`` when the child answered 200, else why not (one line)."""
        http = self._http
        if http is None:
            return "no HTTP client"
        try:
            response = http.get(spec.health_url)
        except httpx.HTTPError as exc:
            return _one_line(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        if response.status_code != 200:
            return f"HTTP {response.status_code} from {spec.health_url}"
        return None


# ---------------------------------------------------------------------------------------------------
# Process groups, ports, files


def _is_url(logdir: str) -> bool:
    return "://" in logdir


def _check_unique(specs: Sequence[ChildSpec]) -> None:
    names: set[str] = set()
    ports: dict[int, str] = {}
    for spec in specs:
        if spec.name in names:
            raise ConfigError(f"endpoint {spec.name!r} is defined twice")
        names.add(spec.name)
        other = ports.setdefault(spec.port, spec.name)
        if other != spec.name:
            raise ConfigError(f"endpoints {other!r} and {spec.name!r} both use port {spec.port}")


def _port_problem(spec: ChildSpec) -> str | None:
    """Why the child's port cannot be bound on its host, or ``None``."""
    try:
        infos = socket.getaddrinfo(spec.host, spec.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        return f"host {spec.host!r} for endpoint {spec.name!r} cannot be resolved: {exc}"
    family, socktype, proto, _, address = infos[0]
    with socket.socket(family, socktype, proto) as sock:
        # As TensorBoard's server does: a port in TIME_WAIT is free; one with a listener is not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {spec.port} for endpoint {spec.name!r} is already in use"
            return f"port {spec.port} for endpoint {spec.name!r} cannot be bound: {exc.strerror or exc}"
    return None


def _wait_groups(procs: Sequence[subprocess.Popen[bytes]], deadline: float) -> bool:
    """Reap the leaders and wait until every group is empty; ``False`` at the deadline."""
    while True:
        for proc in procs:
            proc.poll()
        if not any(p.returncode is None or _group_alive(p.pid) for p in procs):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _terminate_group(proc: subprocess.Popen[bytes], grace: float) -> int | None:
    """SIGTERM the group (SIGCONT too: a stopped process acts on SIGTERM only once continued),
    SIGKILL it after ``grace``; returns the leader's exit code."""
    _signal_group(proc.pid, signal.SIGTERM)
    _signal_group(proc.pid, signal.SIGCONT)
    if not _wait_groups([proc], time.monotonic() + grace):
        _signal_group(proc.pid, signal.SIGKILL)
        _wait_groups([proc], time.monotonic() + 5.0)
    return proc.returncode


def _describe_exit(rc: int | None) -> str:
    if rc is None:
        return "exited"
    if rc < 0:
        try:
            return f"was killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"was killed by signal {-rc}"
    return f"exited with code {rc}"


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _MAX_MESSAGE else line[: _MAX_MESSAGE - 1] + "…"


def _error_line(tail: str) -> str | None:
    """The most telling error line of the latest launch in a log tail, without absl's prefix."""
    latest = tail.rsplit(_LAUNCH_MARKER, 1)[-1]
    for raw in reversed(latest.splitlines()):
        line = raw.strip()
        if not line or line.startswith("--- tbhub:"):
            continue
        if _ERROR_LINE.match(line):
            return _one_line(_ABSL_PREFIX.sub("", line).removeprefix("ERROR:").strip())
    return None


def _read_tail(path: Path, max_bytes: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    if len(data) == max_bytes and size > max_bytes:
        text = text.split("\n", 1)[-1]  # drop the partial first line
    return text


def _rotate(log_path: Path) -> None:
    with contextlib.suppress(OSError):
        if log_path.stat().st_size > _LOG_ROTATE_BYTES:
            os.replace(log_path, log_path.with_name(log_path.name + ".1"))


def _write_marker(log_file: IO[bytes], text: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    log_file.write(f"{text} ({stamp})\n".encode())
    log_file.flush()
