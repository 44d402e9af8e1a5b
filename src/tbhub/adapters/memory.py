"""Hand the heap's free pages back to the operating system after a large pass.

CPython frees what a pass (the alert engine parsing every scalar, a scan) allocated, but glibc keeps
the freed pages inside its heap unless they sit at its very top, so an always-on process keeps the
peak of its largest pass for good. ``malloc_trim(0)`` returns every free page (glibc ≥ 2.8 releases
the ones in the middle of the heap too). A no-op where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable

__all__ = ["release_free_memory"]


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return None
    return trim


def release_free_memory() -> bool:
    """Return the C heap's free pages to the OS; False where that is not possible."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
