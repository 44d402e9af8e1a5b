"""Process groups of TensorBoard children: signalling them, and reaping what a dead hub left behind.

Each child is the leader of its own process group, which also holds its ``tensorboard_data_server``.
The supervisor records every launched group in a pid file (``pid created-at``) next to the child's
log. A hub killed hard runs no clean-up; its children die with it (``lifeline``), but a member that
cannot act on that (a stopped data server never sees its stdin close) outlives it, and on platforms
without a parent-death signal the whole group does. The next ``start()`` reaps such groups from the
pid files before it checks or binds any port.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from pathlib import Path

import psutil

__all__ = ["group_alive", "reap_leftovers", "signal_group", "write_pid_file"]

logger = logging.getLogger("tbhub.adapters.tensorboard.supervisor")

# A member joined the group after its leader started; allow for the clock's resolution.
_CLOCK_SLACK_S = 1.0


def signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def group_alive(pgid: int) -> bool:
    """Whether any process is left in the group. A permission error means the id was reused."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def write_pid_file(path: Path, pid: int) -> None:
    try:
        created = psutil.Process(pid).create_time()
    except psutil.Error:
        created = 0.0
    with contextlib.suppress(OSError):
        path.write_text(f"{pid} {created!r}\n")


def reap_leftovers(name: str, pid_path: Path, path_prefix: str, grace: float) -> None:
    """Stop the group recorded in ``pid_path`` if an earlier hub left any of it running, then forget it.

    The leader counts only if its pid, start time and command line (``tensorboard.main`` with this
    child's ``--path_prefix``) match the record. With the leader gone, the group's id cannot have been
    handed to another group while a member lives, so the members are the leftovers; they must still
    be TensorBoard processes started after the leader.
    """
    try:
        pid_text, created_text = pid_path.read_text().split()
        pgid, created = int(pid_text), float(created_text)
    except (OSError, ValueError):
        return
    leftovers = _leftovers(pgid, created, path_prefix)
    if leftovers:
        logger.warning(
            "endpoint %s: stopping TensorBoard process group %d (pids %s) left by an earlier run",
            name, pgid, ", ".join(str(p) for p in leftovers),
        )
        signal_group(pgid, signal.SIGTERM)
        signal_group(pgid, signal.SIGCONT)  # a stopped process acts on SIGTERM only once continued
        _wait_empty(pgid, grace)
        signal_group(pgid, signal.SIGKILL)
        _wait_empty(pgid, 2.0)
    with contextlib.suppress(OSError):
        pid_path.unlink()


def _leftovers(pgid: int, created: float, path_prefix: str) -> list[int]:
    try:
        leader = psutil.Process(pgid)
        cmdline = leader.cmdline()
        ours = abs(leader.create_time() - created) < _CLOCK_SLACK_S and "tensorboard.main" in cmdline
        return [pgid] if ours and path_prefix in cmdline and os.getpgid(pgid) == pgid else []
    except psutil.NoSuchProcess:
        pass  # the leader is gone: look for members it left
    except (psutil.Error, OSError):
        return []
    members = []
    for proc in psutil.process_iter(["cmdline", "create_time"]):
        try:
            if os.getpgid(proc.pid) != pgid or proc.info["create_time"] < created - _CLOCK_SLACK_S:
                continue
        except OSError:
            continue
        if any("tensorboard" in arg for arg in proc.info["cmdline"] or ()):
            members.append(proc.pid)
    return members


def _wait_empty(pgid: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
