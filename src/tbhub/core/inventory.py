"""Scan an endpoint: discover its event files, rescan only what changed, group into runs.

This is the use-case behind ``tbhub runs``, the hub's background refresh and ``clean``. It receives
its storage and index as ports and never writes below a log root.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from tbhub.core.models import EndpointSpec, EventFileScan, FileEntry, RunSummary, SkippedEntry
from tbhub.core.ports import Crc32c, LogStore, ScanIndex
from tbhub.core.runs import group_runs, index_runs
from tbhub.core.scanner import bytes_to_read, can_reuse, scan_event_file, scan_many

__all__ = ["EndpointInventory", "Progress", "scan_endpoint"]

#: Called as files are scanned with (bytes done, bytes to read in total).
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class EndpointInventory:
    """One endpoint's runs as of one scan, with what the scan had to read to know them."""

    endpoint: EndpointSpec
    runs: list[RunSummary]
    skipped: list[SkippedEntry] = field(default_factory=list)
    files: int = 0
    files_read: int = 0
    bytes_read: int = 0
    duration_s: float = 0.0
    scanned_at_ns: int = 0


#: Progress is reported after each batch of about this many bytes (a 1.5 GB cold scan: ~12 updates).
BATCH_BYTES = 128 * 1024 * 1024
#: Reads in flight at once when the store has no local paths (object storage).
REMOTE_READERS = 16


def _batches(
    jobs: list[tuple[str, FileEntry, EventFileScan | None]], verify: bool
) -> list[list[tuple[str, FileEntry, EventFileScan | None]]]:
    batches: list[list[tuple[str, FileEntry, EventFileScan | None]]] = [[]]
    size = 0
    for job in jobs:
        if size >= BATCH_BYTES and batches[-1]:
            batches.append([])
            size = 0
        batches[-1].append(job)
        size += bytes_to_read(job[1], job[2], verify)
    return [b for b in batches if b]


def scan_endpoint(
    endpoint: EndpointSpec,
    store: LogStore,
    index: ScanIndex,
    *,
    verify: bool = False,
    crc32c: Crc32c,
    workers: int = 1,
    remote_readers: int = REMOTE_READERS,
    progress: Progress | None = None,
) -> EndpointInventory:
    """Bring the index of ``endpoint`` up to date and return its runs.

    Files whose (inode, size, mtime_ns) match the index are not opened; grown files are read from
    where the last scan stopped; new, replaced or shrunk files are read whole. Rows of files that are
    gone are dropped from the index. Raises ``LogRootError`` when the root is missing or unreadable.

    Local files are read by ``workers`` processes; files of a store with no local path (object
    storage) by ``remote_readers`` threads.
    """
    started = time.monotonic()
    discovery = store.discover()
    previous: Mapping[str, EventFileScan] = index.load(endpoint.name)
    kept: list[EventFileScan] = []
    todo: list[tuple[FileEntry, EventFileScan | None]] = []
    for entry in discovery.files:
        old = previous.get(entry.relpath)
        if old is not None and can_reuse(old, entry, verify):
            kept.append(old)
        else:
            todo.append((entry, old))
    total = sum(bytes_to_read(e, old, verify) for e, old in todo)
    if progress:
        progress(0, total)
    fresh: list[EventFileScan] = []
    local = [(store.local_path(e.relpath), e, old) for e, old in todo]
    if all(path is not None for path, _, _ in local):
        # Batches keep the progress bar moving; each batch is large enough to use every worker.
        done = 0
        for batch in _batches([(p, e, old) for p, e, old in local if p is not None], verify):
            scanned = scan_many(batch, verify=verify, crc32c=crc32c, workers=workers)
            fresh.extend(s for s in scanned if s is not None)
            done += sum(bytes_to_read(e, old, verify) for _, e, old in batch)
            if progress:
                progress(done, total)
    else:
        # Object storage: each read waits on the network far more than on the CPU, so several are
        # in flight at once (threads: the store's client is shared, and the GIL is released on I/O).
        def read(item: tuple[FileEntry, EventFileScan | None]) -> EventFileScan | None:
            entry, old = item
            try:
                with store.open(entry.relpath) as fh:
                    return scan_event_file(fh, entry, old, verify=verify, crc32c=crc32c)
            except FileNotFoundError:
                return None  # deleted since discovery: dropped from the index below

        done = 0
        with ThreadPoolExecutor(max(1, min(remote_readers, len(todo))), thread_name_prefix="tbhub-read") as pool:
            for (entry, old), scan in zip(todo, pool.map(read, todo), strict=True):
                if scan is not None:
                    fresh.append(scan)
                done += bytes_to_read(entry, old, verify)
                if progress:
                    progress(done, total)
    scanned_paths = {s.relpath for s in fresh} | {s.relpath for s in kept}
    current = {e.relpath for e in discovery.files} & scanned_paths
    removed = [relpath for relpath in previous if relpath not in current]
    if fresh or removed:
        index.save(endpoint.name, fresh, removed)
        runs = group_runs(endpoint.name, [*kept, *fresh], layout=endpoint.layout)
    else:
        # Nothing changed: the index is the mapping grouped last time (by this scan or the hub's pages).
        runs = index_runs(endpoint.name, previous, layout=endpoint.layout)
    return EndpointInventory(
        endpoint=endpoint,
        runs=runs,
        skipped=list(discovery.skipped),
        files=len(discovery.files),
        files_read=len(fresh),
        bytes_read=total,
        duration_s=time.monotonic() - started,
        scanned_at_ns=time.time_ns(),
    )
