"""Children that die with the hub: a parent-death signal set before TensorBoard starts (Linux).

A hub killed with SIGKILL runs no ``atexit`` hook and no ``stop()``; without this its TensorBoards
would keep their ports until the next start reaped them. The kernel sends ``PR_SET_PDEATHSIG``'s
signal when the thread that forked the child ends, so children are launched only from threads that
live as long as the supervisor (the one that calls ``start()`` and the monitor thread).

The signal is set by a tiny launcher that then ``exec``s TensorBoard (the setting survives ``exec``),
not by ``preexec_fn``: the hub has threads, and Python documents ``preexec_fn`` as unsafe then. The
data server, TensorBoard's own child, is not covered (the setting is cleared on ``fork``); TensorBoard
starts it with ``--die-after-stdin``, so it exits when TensorBoard does, and ``reaper`` stops one
that could not.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

__all__ = ["dying_with_parent"]

# PR_SET_PDEATHSIG is 1 (linux/prctl.h). If the parent died between fork and prctl, the signal never
# comes: compare the parent pid with the hub's, as prctl(2) advises.
_LAUNCHER = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None).prctl(1, int(signal.SIGKILL), 0, 0, 0)\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    os._exit(1)\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def dying_with_parent(command: Sequence[str], python: str = sys.executable) -> list[str]:
    """``command`` (whose first word is an absolute path) wrapped so that it gets SIGKILL when this
    process dies; unchanged where the platform has no parent-death signal."""
    if not sys.platform.startswith("linux"):
        return list(command)
    # -I -S: the launcher needs only the standard library; skipping site keeps it at a few ms.
    return [python, "-I", "-S", "-c", _LAUNCHER, str(os.getpid()), *command]
