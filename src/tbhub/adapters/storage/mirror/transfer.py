"""Copying objects into the mirror: many ranged GETs in flight, each file written in order.

A sync's work is a list of ``Transfer``s (one per object that needs bytes), each split into ranges
of at most ``PART_BYTES``; ``fetch_all`` runs every range of every transfer on one pool of
``requests`` threads, so a big file and many small ones alike keep that many requests in flight
(object storage is latency-bound: one request at a time leaves the link idle for a round trip).
A transfer's ranges are written in order as they arrive (a range that arrives early waits in
memory), so a file on disk is always a valid prefix of its object: what a killed sync leaves can be
continued from its length.

Where bytes go: a new or replaced object is written to a temporary name of its own
(``manifest.part_path``: no ``tfevents`` in it, so TensorBoard never reads it, and the same name for
the same key, so a killed sync's part is continued) and renamed into place when complete; a grown
object is appended to its copy in place. Every continued write (append, resumed part, a copy a kill
left unrecorded) first fetches the ``APPEND_CHECK_BYTES`` before its start again and compares them
with what is on disk; a mismatch means the object was rewritten, and it is fetched whole instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tbhub.adapters.storage.mirror.listing import RemoteFiles, RemoteObject, local_path, object_etag, one_line
from tbhub.adapters.storage.mirror.manifest import ObjectState, part_path

__all__ = ["APPEND_CHECK_BYTES", "PART_BYTES", "Fetched", "Transfer", "fetch_all", "plan_transfer"]

#: Bytes before the append point fetched again to check that a grown object is a pure append:
#: the tail of the last record, CRC included, so a rewritten file almost surely differs there.
APPEND_CHECK_BYTES = 64
#: One ranged GET fetches at most this much: a big file is fetched by several requests at once, and
#: memory stays bounded (requests in flight x this).
PART_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Fetched:
    """One object brought up to date: how, the bytes read from the store, and its manifest entry."""

    relpath: str
    kind: str  # "whole", "append", "replace" or "resume"
    bytes: int
    entry: ObjectState


@dataclass(eq=False)
class Transfer:
    """The bytes one object needs: from ``start`` (``0``: whole) to its size, into ``dest``.

    ``check`` bytes before ``start`` are fetched too and compared with ``dest``'s; ``into_part``:
    ``dest`` is the temporary name, renamed to ``target`` when complete.
    """

    obj: RemoteObject
    kind: str
    target: Path
    dest: Path
    start: int
    check: int
    into_part: bool
    ranges: list[tuple[int, int]] = field(default_factory=list)
    # -- progress, under ``lock``
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: dict[int, bytes] = field(default_factory=dict)
    written_ranges: int = 0
    fetched: int = 0
    out: IO[bytes] | None = None
    mine: bytes = b""
    mismatch: bool = False
    vanished: bool = False
    error: str | None = None
    finished: Fetched | str | None = None  # set by the thread that wrote the last range
    done: bool = False


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def plan_transfer(obj: RemoteObject, kind: str, local_dir: Path, part_bytes: int = PART_BYTES) -> Transfer:
    """The transfer that brings ``obj`` up to date, given ``fetch_kind``'s ``kind``: ``append`` and
    ``resume`` continue the copy on disk from its length; ``whole`` and ``replace`` write a part
    (continuing a killed sync's part of this key, if there is one) and rename it into place."""
    target = local_path(local_dir, obj.relpath)
    have = _size(target)
    if kind in ("append", "resume") and have and have <= obj.size:
        return _ranged(Transfer(obj, kind, target, target, have, min(APPEND_CHECK_BYTES, have), False), part_bytes)
    part = part_path(target.parent, obj.relpath)
    started = _size(part)
    if started and started <= obj.size:
        return _ranged(Transfer(obj, "resume" if kind == "whole" else "replace", target, part, started,
                                min(APPEND_CHECK_BYTES, started), True), part_bytes)
    return _whole(obj, "whole" if kind == "whole" else "replace", target, part_bytes)


def _whole(obj: RemoteObject, kind: str, target: Path, part_bytes: int) -> Transfer:
    return _ranged(Transfer(obj, kind, target, part_path(target.parent, obj.relpath), 0, 0, True), part_bytes)


def _ranged(transfer: Transfer, part_bytes: int) -> Transfer:
    at, end = transfer.start - transfer.check, transfer.obj.size
    if at >= end:
        transfer.ranges = [(at, end)]  # nothing new: still one (empty) range, so the file is finished
    while at < end:
        transfer.ranges.append((at, min(end, at + part_bytes)))
        at += part_bytes
    return transfer


def _open(transfer: Transfer) -> IO[bytes]:
    """``dest`` opened at ``start``; the ``check`` bytes before it are kept in ``transfer.mine``."""
    transfer.dest.parent.mkdir(parents=True, exist_ok=True)
    if transfer.start == 0:
        return open(transfer.dest, "wb")
    out = open(transfer.dest, "r+b")  # noqa: SIM115  (closed by fetch_all, after its last range)
    out.seek(transfer.start - transfer.check)
    transfer.mine = out.read(transfer.check)
    out.truncate(transfer.start)  # bytes past it (an append a kill cut short) come again
    out.seek(transfer.start)
    return out


def _write_ready(transfer: Transfer) -> None:
    """Write the ranges that are next in order (holding ``transfer.lock``)."""
    while not transfer.mismatch and transfer.written_ranges in transfer.arrived:
        index = transfer.written_ranges
        data = transfer.arrived.pop(index)
        if transfer.out is None:
            transfer.out = _open(transfer)
        if index == 0 and transfer.check:
            if data[: transfer.check] != transfer.mine:
                transfer.mismatch = True  # rewritten since: fetched whole instead
                transfer.arrived.clear()
                return
            data = data[transfer.check :]
        transfer.out.write(data)
        transfer.written_ranges += 1


def _fetch_range(fs: RemoteFiles, transfer: Transfer, index: int) -> None:
    start, end = transfer.ranges[index]
    with transfer.lock:
        if transfer.mismatch or transfer.error or transfer.vanished:
            return
    try:
        data = fs.cat_file(transfer.obj.path, start=start, end=end) if end > start else b""
        if len(data) != end - start:
            raise OSError(f"got {len(data)} bytes of {end - start}: the object changed during the sync")
    except FileNotFoundError:
        with transfer.lock:
            transfer.vanished = True
        return
    except Exception as exc:  # one bad object must not stop the others (network, disk, odd key)
        with transfer.lock:
            transfer.error = transfer.error or one_line(f"{type(exc).__name__}: {exc}")
        return
    with transfer.lock:
        transfer.fetched += len(data)
        transfer.arrived[index] = data
        try:
            _write_ready(transfer)
        except OSError as exc:
            transfer.error = transfer.error or one_line(f"{type(exc).__name__}: {exc}")
        if transfer.written_ranges == len(transfer.ranges) and not transfer.done:
            # Complete: renamed into place (and its ETag confirmed) now, while other files still
            # download, not in a row after the last of them.
            transfer.done = True
            assert transfer.out is not None
            transfer.out.close()
            try:
                transfer.finished = _finish(fs, transfer)
            except FileNotFoundError:
                transfer.finished = None
            except Exception as exc:
                transfer.finished = one_line(f"{type(exc).__name__}: {exc}")


def _unchanged(fs: RemoteFiles, obj: RemoteObject) -> bool:
    """Whether the object still has its listed ETag."""
    fs.invalidate_cache(obj.path)
    return obj.etag is not None and object_etag(fs.info(obj.path)) == obj.etag


def _finish(fs: RemoteFiles, transfer: Transfer) -> Fetched | str | None:
    """Rename a complete part into place and stamp the mtime; the transfer's outcome (see ``fetch_all``)."""
    if transfer.vanished:
        return None  # deleted since the listing: the next sync removes the local copy
    if transfer.error:
        return transfer.error
    obj = transfer.obj
    if transfer.out is None:
        return "no bytes arrived"  # not reached: every transfer has a range
    if transfer.into_part:
        os.replace(transfer.dest, transfer.target)
    if obj.mtime is not None:
        os.utime(transfer.target, (obj.mtime, obj.mtime))
    # The ETag is kept only when the copy is surely that version: several reads may straddle a rewrite.
    sure = len(transfer.ranges) <= 1 or _unchanged(fs, obj)
    return Fetched(obj.relpath, transfer.kind, transfer.fetched, ObjectState(obj.size, obj.etag if sure else None,
                                                                            obj.mtime))


def fetch_all(fs: RemoteFiles, transfers: Sequence[Transfer], requests: int,
              part_bytes: int = PART_BYTES) -> list[Fetched | str | None]:
    """Run ``transfers`` with ``requests`` ranged GETs in flight; per transfer its ``Fetched``, ``None``
    if the object vanished meanwhile, or why it failed (one line). A transfer whose checked bytes
    differ (the object was rewritten) is fetched whole again: a replace, counting both fetches."""
    jobs = [(t, i) for t in transfers for i in range(len(t.ranges))]
    if jobs:
        with ThreadPoolExecutor(max(1, min(requests, len(jobs))), thread_name_prefix="tbhub-mirror") as pool:
            for _ in pool.map(lambda job: _fetch_range(fs, *job), jobs):
                pass
    outcomes: list[Fetched | str | None] = []
    again: dict[int, Transfer] = {}
    for i, transfer in enumerate(transfers):
        if transfer.done:
            outcomes.append(transfer.finished)
            continue
        if transfer.out is not None:
            transfer.out.close()
        if transfer.mismatch and not transfer.error and not transfer.vanished:
            if transfer.into_part:
                with contextlib.suppress(OSError):
                    transfer.dest.unlink()
            again[i] = _whole(transfer.obj, "replace", transfer.target, part_bytes)
            outcomes.append(None)
            continue
        try:
            outcomes.append(_finish(fs, transfer))
        except FileNotFoundError:
            outcomes.append(None)
        except Exception as exc:
            outcomes.append(one_line(f"{type(exc).__name__}: {exc}"))
    if again:
        redone = fetch_all(fs, list(again.values()), requests, part_bytes)
        for (i, _), outcome in zip(again.items(), redone, strict=True):
            spent = transfers[i].fetched
            outcomes[i] = dataclasses.replace(outcome, bytes=outcome.bytes + spent) if isinstance(
                outcome, Fetched) else outcome
    return outcomes
