"""The process of one TensorBoard child: its launch, its port, ending its process group, its exit status.

Every child runs in its own session, so its process-group id is its pid. TensorBoard does not reap its
``tensorboard_data_server``: a dead TensorBoard can leave the server behind. Every signal goes to the
whole group (``reaper.signal_group``), and a group counts as gone only when no member is left.
"""

from __future__ import annotations

import errno
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence

from tbhub.adapters.tensorboard.childlog import LAUNCH_MARKER, rotate, write_marker
from tbhub.adapters.tensorboard.command import ChildSpec
from tbhub.adapters.tensorboard.environment import child_environment
from tbhub.adapters.tensorboard.lifeline import dying_with_parent
from tbhub.adapters.tensorboard.reaper import group_alive, signal_group

__all__ = ["describe_exit", "end_groups", "port_problem", "spawn", "terminate_group", "wait_groups"]


def spawn(spec: ChildSpec, python: str, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Launch the child of ``spec``, its output appended to its log after a launch marker.

    It dies with this process (``lifeline``) and sees only the environment it needs (``environment``).
    Raises ``OSError`` when the log cannot be opened or the process cannot be executed.
    """
    cmd = spec.command(python)
    spec.log_path.parent.mkdir(parents=True, exist_ok=True)
    rotate(spec.log_path)
    with open(spec.log_path, "ab") as log_file:
        write_marker(log_file, f"{LAUNCH_MARKER} {shlex.join(cmd)}")
        return subprocess.Popen(
            dying_with_parent(cmd, python),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=child_environment(env, reads_url=spec.is_remote),
            # Own session → own process group, so the data server can be signalled with it.
            start_new_session=True,
        )


def port_problem(spec: ChildSpec) -> str | None:
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


def wait_groups(procs: Sequence[subprocess.Popen[bytes]], deadline: float) -> bool:
    """Reap the leaders and wait until every group is empty; ``False`` at the deadline."""
    while True:
        for proc in procs:
            proc.poll()
        if not any(p.returncode is None or group_alive(p.pid) for p in procs):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def end_groups(procs: Sequence[subprocess.Popen[bytes]], kill_at: float, deadline: float | None = None) -> None:
    """SIGTERM every group (SIGCONT too: a stopped process acts on SIGTERM only once continued), SIGKILL
    the groups still alive at ``kill_at`` and wait for them until ``deadline`` (by default 5 s on)."""
    for proc in procs:
        signal_group(proc.pid, signal.SIGTERM)
        signal_group(proc.pid, signal.SIGCONT)
    if not wait_groups(procs, kill_at):
        for proc in procs:
            signal_group(proc.pid, signal.SIGKILL)
        wait_groups(procs, time.monotonic() + 5.0 if deadline is None else deadline)


def terminate_group(proc: subprocess.Popen[bytes], grace: float) -> int | None:
    """End one child's group, SIGKILL after ``grace``; returns the leader's exit code."""
    end_groups([proc], time.monotonic() + grace)
    return proc.returncode


def describe_exit(rc: int | None) -> str:
    if rc is None:
        return "exited"
    if rc < 0:
        try:
            return f"was killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"was killed by signal {-rc}"
    return f"exited with code {rc}"
