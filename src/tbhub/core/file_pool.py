"""Work on many local event files at once: in worker processes when there is enough of it, the largest
files first (so one big file does not finish last on an otherwise idle pool), results in input order.
Shared by the scanner (``scan_many``) and the scalar reader (``summarize_many``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.context import BaseContext
from typing import Any, TypeVar

__all__ = ["largest_first"]

T = TypeVar("T")


def largest_first(
    task: Callable[..., T],
    calls: Sequence[tuple[Any, ...]],
    sizes: Sequence[int],
    *,
    workers: int,
    min_bytes: int,
    mp_context: BaseContext | None = None,
) -> list[T]:
    """``[task(*call) for call in calls]``, where ``sizes[i]`` is the bytes ``calls[i]`` has to read.

    Runs in up to ``workers`` processes of ``mp_context`` when there is more than one call and more
    than ``min_bytes`` in all (below that, starting processes costs more than it saves), serially
    otherwise. ``task`` and its arguments must be picklable. The first exception, in input order, is
    raised.
    """
    if workers <= 1 or len(calls) <= 1 or sum(sizes) <= min_bytes:
        return [task(*call) for call in calls]
    order = sorted(range(len(calls)), key=lambda i: -sizes[i])
    n_workers = min(workers, len(calls), os.cpu_count() or 1)
    with ProcessPoolExecutor(max_workers=n_workers, mp_context=mp_context) as pool:
        futures = {i: pool.submit(task, *calls[i]) for i in order}
        done = {i: future.result() for i, future in futures.items()}
    return [done[i] for i in range(len(calls))]
