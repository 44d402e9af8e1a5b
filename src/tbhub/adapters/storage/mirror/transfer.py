"""Copying one object into the mirror: whole (a temporary name, then a rename) or its appended range."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tbhub.adapters.storage.mirror.listing import RemoteFiles, RemoteObject, local_path, object_etag, one_line
from tbhub.adapters.storage.mirror.manifest import ObjectState, part_path

__all__ = ["APPEND_CHECK_BYTES", "Fetched", "Fetcher"]

#: Bytes before the append point fetched again to check that a grown object is a pure append:
#: the tail of the last record, CRC included, so a rewritten file almost surely differs there.
APPEND_CHECK_BYTES = 64
#: Ranged reads of at most this much, so memory stays bounded for event files of any size.
_CHUNK_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Fetched:
    """One object brought up to date: how, the bytes read from the store, and its manifest entry."""

    relpath: str
    kind: str  # "whole", "append" or "replace"
    bytes: int
    entry: ObjectState


def _write(out: BinaryIO, chunks: Iterable[bytes]) -> tuple[int, int]:
    """Write ``chunks`` to ``out``; the bytes written and the number of chunks."""
    written = count = 0
    for chunk in chunks:
        out.write(chunk)
        written += len(chunk)
        count += 1
    return written, count


def _stamp(path: Path, obj: RemoteObject) -> None:
    if obj.mtime is not None:
        os.utime(path, (obj.mtime, obj.mtime))


@dataclass(frozen=True, slots=True)
class Fetcher:
    """Fetches objects of ``fs`` into ``local_dir``; several threads may use one, each on its own object."""

    fs: RemoteFiles
    local_dir: Path

    def fetch(self, obj: RemoteObject, kind: str, old: ObjectState | None) -> Fetched | str | None:
        """The fetch's outcome, ``None`` if the object vanished meanwhile, or why it failed (one line)."""
        try:
            if kind == "append" and old is not None:
                return self._append(obj, old)
            return self._whole(obj, kind)
        except FileNotFoundError:
            return None  # deleted since the listing: the next sync removes the local copy
        except Exception as exc:  # one bad object must not stop the others (network, disk, odd key)
            return one_line(f"{type(exc).__name__}: {exc}")

    def _ranges(self, obj: RemoteObject, start: int) -> Iterator[bytes]:
        """The object's bytes from ``start`` to its listed size, in bounded ranged reads."""
        at = start
        while at < obj.size:
            chunk = self.fs.cat_file(obj.path, start=at, end=min(obj.size, at + _CHUNK_BYTES))
            if not chunk:
                return  # shrank since the listing; the next sync sees it
            yield chunk
            at += len(chunk)

    def _mirrored(self, obj: RemoteObject, size: int, reads: int) -> ObjectState:
        """The manifest entry of a copy of ``size`` bytes made in ``reads`` ranged reads. Its ETag is
        kept only when the copy is surely that version: several reads may straddle a rewrite."""
        etag = obj.etag if size == obj.size and (reads <= 1 or self._unchanged(obj)) else None
        return ObjectState(size, etag, obj.mtime)

    def _unchanged(self, obj: RemoteObject) -> bool:
        """Whether the object still has its listed ETag."""
        self.fs.invalidate_cache(obj.path)
        return obj.etag is not None and object_etag(self.fs.info(obj.path)) == obj.etag

    def _whole(self, obj: RemoteObject, kind: str) -> Fetched:
        target = local_path(self.local_dir, obj.relpath)
        target.parent.mkdir(parents=True, exist_ok=True)
        part = part_path(target.parent)
        try:
            with open(part, "wb") as out:
                got, reads = _write(out, self._ranges(obj, 0))
            _stamp(part, obj)
            os.replace(part, target)
        except BaseException:
            with contextlib.suppress(OSError):
                part.unlink()
            raise
        return Fetched(obj.relpath, kind, got, self._mirrored(obj, got, reads))

    def _append(self, obj: RemoteObject, old: ObjectState) -> Fetched:
        target = local_path(self.local_dir, obj.relpath)
        check = min(APPEND_CHECK_BYTES, old.size)
        ranges = self._ranges(obj, old.size - check)
        first = next(ranges, b"")
        with open(target, "rb") as f:
            f.seek(old.size - check)
            mine = f.read(check)
        if len(first) < check or first[:check] != mine:
            whole = self._whole(obj, "replace")
            return dataclasses.replace(whole, bytes=whole.bytes + len(first))
        with open(target, "ab") as out:
            out.write(first[check:])
            more, reads = _write(out, ranges)
        _stamp(target, obj)
        size = old.size + len(first) - check + more
        return Fetched(obj.relpath, "append", len(first) + more, self._mirrored(obj, size, 1 + reads))
