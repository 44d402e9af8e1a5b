"""Whether a process of this host still runs: the one check behind every "was its owner killed?" question
(a partial archive's writer, an object-store run marker's writer, a cleanup lease's holder)."""

from __future__ import annotations

import os

__all__ = ["pid_alive"]


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` of this host exists (someone else's counts: ``EPERM`` means alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except OSError:
        return True
    return True
