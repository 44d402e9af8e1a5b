"""The sync tools ``benchmarks/s3.py`` compares tbhub's mirror with, and the changes it makes to the bucket.

- ``aws s3 sync`` (awscli, pinned below) from a virtual environment of the benchmark's own under
  ``~/.cache/tbhub-bench/`` (created with pip on first use; never the project's ``.venv``).
- ``rclone sync`` when the ``rclone`` binary is installed (``apt-get install rclone``); skipped with a
  line otherwise.
- ``tbhub``: the mirror ``tbhub serve`` keeps (``Mirror``, default settings).

Each sync runs against the same bucket through the same latency proxy; its time, and the bytes and
requests the proxy saw, are recorded (``SyncRun``).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import google_crc32c
from tensorboard.compat.proto import event_pb2, summary_pb2

AWSCLI = "awscli==1.46.2"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tbhub-bench"


@dataclass
class SyncRun:
    tool: str
    seconds: float
    bytes_down: int  # what the proxy carried to the tool (bodies and HTTP headers)
    requests: dict[str, int] = field(default_factory=dict)
    payload_bytes: int | None = None  # tbhub: the bytes of objects it fetched (SyncStats.bytes_fetched)
    files: int = 0  # event files in the copy afterwards
    detail: str = ""


def aws_binary(log: Callable[[str], None]) -> Path:
    """``aws`` from the benchmark's own venv, created on first use."""
    venv = CACHE / "awscli-venv"
    binary = venv / "bin" / "aws"
    if binary.exists():
        return binary
    log(f"installing {AWSCLI} into {venv} (once)")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", AWSCLI], check=True)
    return binary


def rclone_binary() -> str | None:
    return shutil.which("rclone")


def _event_files(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file() and "tfevents" in p.name)


def run_aws(aws: Path, endpoint: str, url: str, dest: Path, env: dict[str, str]) -> tuple[float, str]:
    """``aws s3 sync URL DEST`` with its defaults (10 requests at once, 8 MB parts); seconds."""
    started = time.perf_counter()
    done = subprocess.run([str(aws), "--endpoint-url", endpoint, "s3", "sync", url, str(dest), "--only-show-errors"],
                          env={**os.environ, **env}, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"aws s3 sync failed: {done.stderr[-2000:]}")
    return seconds, "aws s3 sync (defaults: 10 requests at once)"


def run_rclone(rclone: str, endpoint: str, url: str, dest: Path, env: dict[str, str]) -> tuple[float, str]:
    """``rclone sync :s3:BUCKET/PREFIX DEST`` with its defaults (4 transfers, 8 checkers); seconds."""
    remote = ":s3:" + url.removeprefix("s3://")
    started = time.perf_counter()
    done = subprocess.run(
        [rclone, "sync", remote, str(dest), "--s3-provider", "Other", "--s3-endpoint", endpoint,
         "--s3-access-key-id", env["AWS_ACCESS_KEY_ID"], "--s3-secret-access-key", env["AWS_SECRET_ACCESS_KEY"],
         "--s3-region", env["AWS_DEFAULT_REGION"], "--s3-force-path-style=true", "--config", "/dev/null", "-q"],
        # Plain http to the proxy: rclone's S3 client refuses a custom CA bundle with its own transport.
        env={k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"rclone sync failed: {done.stderr[-2000:]}")
    return seconds, "rclone sync (defaults: 4 transfers, 8 checkers)"


def measured(tool: str, proxy: Any, dest: Path, run: Callable[[], tuple[float, str]]) -> SyncRun:
    """Run one sync with the proxy's counts reset first."""
    proxy.reset()
    seconds, detail = run()
    stats = proxy.stats()
    return SyncRun(tool, round(seconds, 3), stats["bytes_down"], stats["requests"], files=_event_files(dest),
                   detail=detail)


_MIRRORS: dict[Path, Any] = {}


def run_tbhub(endpoint: str, url: str, dest: Path, requests: int | None = None) -> tuple[float, str, Any]:
    """One sync of tbhub's mirror into ``dest``. As in ``serve``, a folder's ``Mirror`` (and its S3
    client) lives on between syncs; creating it is timed with the first."""
    from tbhub.adapters.storage.mirror import SYNC_REQUESTS, Mirror
    from tbhub.adapters.storage.remote import open_filesystem

    n = requests or SYNC_REQUESTS
    started = time.perf_counter()
    mirror = _MIRRORS.get(dest)
    if mirror is None:
        fs, root = open_filesystem(url, {"endpoint_url": endpoint})
        mirror = _MIRRORS[dest] = Mirror(fs, root, dest, label=url, requests=n)
    stats = mirror.sync()
    return time.perf_counter() - started, f"tbhub mirror ({n} requests at once)", stats


def tbhub_sync(proxy: Any, url: str, dest: Path, requests: int | None = None) -> SyncRun:
    proxy.reset()
    seconds, detail, stats = run_tbhub(proxy.url, url, dest, requests)
    counted = proxy.stats()
    return SyncRun("tbhub", round(seconds, 3), counted["bytes_down"], counted["requests"],
                   payload_bytes=stats.bytes_fetched, files=_event_files(dest), detail=detail)


# -- changes to the bucket ---------------------------------------------------------------------------------
def _frame(payload: bytes) -> bytes:
    def masked(data: bytes) -> int:
        crc = google_crc32c.value(data)
        return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF

    header = struct.pack("<Q", len(payload))
    return header + struct.pack("<I", masked(header)) + payload + struct.pack("<I", masked(payload))


def appended_records(nbytes: int, first_step: int, wall_time: float) -> bytes:
    """About ``nbytes`` of framed scalar events (tag ``bench/appended``), steps from ``first_step``."""
    out = bytearray()
    step = first_step
    while len(out) < nbytes:
        value = summary_pb2.Summary.Value(tag="bench/appended", simple_value=float(step % 1000) / 1000)
        event = event_pb2.Event(wall_time=wall_time + step, step=step, summary=summary_pb2.Summary(value=[value]))
        out += _frame(event.SerializeToString())
        step += 1
    return bytes(out)


def grow_runs(client: Any, bucket: str, prefix: str, root: Path, runs: int, nbytes: int) -> dict[str, tuple[int, int]]:
    """Append ``nbytes`` to the largest event file of ``runs`` runs spread over the tree (the local tree
    is not touched: the grown objects are uploaded); per key, its size before and the bytes appended."""
    by_run: dict[Path, Path] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and "tfevents" in path.name:
            run = Path(*path.relative_to(root).parts[:2])
            if run not in by_run or path.stat().st_size > by_run[run].stat().st_size:
                by_run[run] = path
    chosen = [by_run[run] for run in sorted(by_run)][:: max(1, len(by_run) // runs)][:runs]
    grown = {}
    for path in chosen:
        data = appended_records(nbytes, 10_000_000, 1_800_000_000.0)
        key = f"{prefix}/{path.relative_to(root).as_posix()}"
        client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes() + data)
        grown[key] = (path.stat().st_size, len(data))
    return grown


def idle_tree(client: Any, bucket: str, prefix: str, objects: int) -> None:
    """``objects`` small event files under ``prefix`` (10 datasets, runs of one file each)."""
    body = _frame(event_pb2.Event(wall_time=1_700_000_000.0, file_version="brain.Event:2").SerializeToString())
    body += appended_records(200, 0, 1_700_000_000.0)
    keys = [f"{prefix}/ds{i % 10}/run{i:04d}/events.out.tfevents.1700000000.bench.{i}" for i in range(objects)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda key: client.put_object(Bucket=bucket, Key=key, Body=body), keys))
