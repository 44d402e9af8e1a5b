"""A log root with many runs (10,000 by default), written fast: for the explorer's tests and benchmark.

Every run is a real ``{dataset}/{run}`` folder with one real event file (TensorBoard's own framing and
protos, from ``eventfiles``); the files are built from a few templates so 10,000 take seconds, and their
mtimes are spread over 90 days so ages, sorts and age filters have something to work on. Run ``i``'s
name and age are a pure function of ``i`` (``run_name``, ``age_s``), so tests can predict the order.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from eventfiles import file_version_event, frame, scalar_event

__all__ = ["DATASETS", "age_s", "run_name", "run_path", "write_many_runs"]

DATASETS = ("alpaca", "dolly", "oasst", "gsm8k", "mmlu", "squad", "wiki", "code")
_DAY = 86400.0


def run_name(i: int) -> str:
    return f"r{i:05d}-lr{(i % 7) + 1}e-4"


def run_path(i: int) -> str:
    """The run's relpath below the log root."""
    return f"{DATASETS[i % len(DATASETS)]}/{run_name(i)}"


def age_s(i: int) -> float:
    """Seconds since run ``i`` was last written to: spread from 1 minute to about 90 days, not in ``i`` order."""
    return 60.0 + ((i * 7919) % 10_000) / 10_000 * 90 * _DAY


def _template(steps: int) -> bytes:
    payloads = [file_version_event()] + [scalar_event(s, 1.0 / (s + 1)) for s in range(steps)]
    return b"".join(frame(p) for p in payloads)


def write_many_runs(root: Path, n: int = 10_000, *, now: float | None = None) -> list[str]:
    """Write ``n`` runs under ``root``; returns their relpaths in ``i`` order."""
    now = time.time() if now is None else now
    templates = [_template(steps) for steps in (3, 10, 40, 120)]
    out = []
    for i in range(n):
        relpath = run_path(i)
        folder = root / relpath
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"events.out.tfevents.{1_700_000_000 + i}.host.{i}.0"
        path.write_bytes(templates[i % len(templates)])
        t = now - age_s(i)
        os.utime(path, (t, t))
        out.append(relpath)
    return out
