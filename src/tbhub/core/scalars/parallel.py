"""Many local event files at once, in worker processes when there is enough to parse."""

from __future__ import annotations

from collections.abc import Sequence
from multiprocessing.context import BaseContext

from tbhub.core.file_pool import largest_first
from tbhub.core.models import FileEntry
from tbhub.core.ports import Crc32c
from tbhub.core.scalars.decoding import EventDecoder
from tbhub.core.scalars.files import bytes_to_parse, summarize_file
from tbhub.core.scalars.summary import TAIL_SIZE, ScalarFileState

__all__ = ["PARALLEL_MIN_BYTES", "summarize_many"]

PARALLEL_MIN_BYTES = 32 * 1024 * 1024
"""``summarize_many`` uses worker processes only above this many bytes to parse (about 0.3 s of
work): below it, starting the processes costs more than it saves."""


def _summarize_path(
    path: str,
    entry: FileEntry,
    previous: ScalarFileState | None,
    decoder: EventDecoder,
    crc32c: Crc32c,
    tail_size: int,
) -> ScalarFileState | None:
    if (
        previous is not None
        and (previous.inode, previous.size, previous.mtime_ns) == (entry.inode, entry.size, entry.mtime_ns)
        and previous.relpath == entry.relpath
    ):
        return previous  # unchanged since the last pass: not even opened
    try:
        # Unbuffered: each read is one system call into the bytes object that gets sliced.
        with open(path, "rb", buffering=0) as f:
            return summarize_file(
                f,
                previous,
                relpath=entry.relpath,
                inode=entry.inode,
                size=entry.size,
                mtime_ns=entry.mtime_ns,
                decoder=decoder,
                crc32c=crc32c,
                tail_size=tail_size,
            )
    except FileNotFoundError:
        return None  # deleted between discovery and now


def summarize_many(
    jobs: Sequence[tuple[str, FileEntry, ScalarFileState | None]],
    *,
    decoder: EventDecoder,
    crc32c: Crc32c,
    workers: int,
    mp_context: BaseContext | None = None,
    tail_size: int = TAIL_SIZE,
) -> list[ScalarFileState | None]:
    """Summarize many local files (``(absolute path, entry, previous state)``), results in input
    order; a file deleted since discovery gives ``None``, other ``OSError``s propagate.

    A file whose inode, size and mtime match its previous state is not opened. Uses ``workers``
    processes when more than ``PARALLEL_MIN_BYTES`` are to be parsed (largest files first, so one big
    file does not finish last), serially otherwise. ``decoder`` and ``crc32c`` must be picklable.
    ``mp_context`` as for ``tbhub.core.scanner.scan_many`` (default: the platform's, ``fork`` on
    Linux; pass ``forkserver`` from a threaded process).
    """
    return largest_first(
        _summarize_path,
        [(path, entry, prev, decoder, crc32c, tail_size) for path, entry, prev in jobs],
        [bytes_to_parse(entry, prev) for _, entry, prev in jobs],
        workers=workers,
        min_bytes=PARALLEL_MIN_BYTES,
        mp_context=mp_context,
    )
