"""``MirroredLogStore``: an object-storage log root whose event files are read from its local mirror.

When ``tbhub serve`` mirrors an ``s3://`` endpoint for TensorBoard, the mirror already holds every
byte of every event file. The scanner and the scalar reader behind alerts then read that copy
instead of the bucket, so each byte crosses the network once (for the mirror) rather than twice:

- ``discover()`` lists the mirror's manifest (what its last sync recorded), not the bucket: no
  request at all. Each file's identity is the one ``ObjectLogStore`` gives the same object version
  (a digest of its ETag, its size, its ``LastModified``), so the index rows the hub writes from the
  mirror and the rows the CLI writes from the bucket are interchangeable: a file scanned by one is
  not scanned again by the other.
- ``local_path()`` points the readers at the mirrored copy of each file discovery returned (or
  ``use_local`` accepted), read only up to the recorded size: a sync appends past it, and replaces
  a file by a rename, so a reader never sees a half-written file.
- Until the mirror's first sync has completed (no manifest, or one of another root), and for any
  file the mirror does not hold as the index knows it, everything is read from the bucket, as
  ``ObjectLogStore`` does. The manage verbs (``delete_run``, ``finish_trash``, ...) always act on
  the bucket, and ``on_change`` is called after them (the hub syncs the mirror then, so the
  runs just deleted or restored show at once).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from tbhub.adapters.storage.local import TRASH_PREFIX, WORK_PREFIX
from tbhub.adapters.storage.mirror.manifest import MANIFEST, ObjectState, read_manifest
from tbhub.adapters.storage.objectstore import ObjectDiscovery, ObjectLogStore, etag_identity
from tbhub.core.models import FileEntry

__all__ = ["MirroredLogStore", "mirrored_entry"]


def mirrored_entry(relpath: str, state: ObjectState) -> FileEntry:
    """The ``FileEntry`` ``ObjectLogStore.discover`` gives the object version ``state`` records."""
    # The very computation ObjectLogStore makes from the same LastModified (its float seconds).
    mtime_ns = int(state.mtime * 1_000_000) * 1000 if state.mtime is not None else 0
    # As ObjectLogStore: the ETag's digest, or size and mtime on a backend without content tags.
    tag = state.etag if state.etag is not None else f"{state.size}-{mtime_ns}"
    return FileEntry(relpath, etag_identity(tag), state.size, mtime_ns)


class MirroredLogStore(ObjectLogStore):
    """An ``ObjectLogStore`` whose event files are read from the mirror in ``mirror_dir`` (see the
    module docstring)."""

    def __init__(self, url: str, options: Mapping[str, Any] | None, mirror_dir: str | os.PathLike[str], *,
                 on_change: Callable[[], None] | None = None) -> None:
        super().__init__(url, options)
        self.mirror_dir = Path(mirror_dir).absolute()
        self._on_change = on_change
        self._local: dict[str, int] = {}  # relpath -> bytes to read from the mirror
        self.from_mirror = False  # whether the last discovery came from the mirror

    def _manifest(self) -> dict[str, ObjectState] | None:
        return read_manifest(self.mirror_dir / MANIFEST, self._root)

    def discover(self) -> ObjectDiscovery:
        """The event files of the mirror's last sync; the bucket's own listing until there is one."""
        manifest = self._manifest()
        if manifest is None:
            self.from_mirror, self._local = False, {}
            return super().discover()
        found = ObjectDiscovery()
        local: dict[str, int] = {}
        for relpath, state in manifest.items():
            if "tfevents" not in relpath.rpartition("/")[2]:
                continue
            if any(part.startswith((WORK_PREFIX, TRASH_PREFIX)) for part in relpath.split("/")):
                continue
            found.files.append(mirrored_entry(relpath, state))
            local[relpath] = state.size
        found.files.sort(key=lambda f: f.relpath)
        self.from_mirror, self._local = True, local
        return found

    def use_local(self, entries: Iterable[FileEntry]) -> list[str]:
        """Read from the mirror those of ``entries`` (files as the index knows them) that it holds in
        exactly that version; the others from the bucket. Returns the relpaths read locally."""
        manifest = self._manifest() or {}
        local = {}
        for entry in entries:
            state = manifest.get(entry.relpath)
            if state is not None and mirrored_entry(entry.relpath, state) == entry:
                local[entry.relpath] = entry.size
        self._local = local
        return sorted(local)

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    def commit(self) -> None:
        """After deletes (``clean`` calls this once at its end): the mirror follows the bucket now."""
        self._changed()

    def finish_trash(self) -> list[str]:
        done = super().finish_trash()
        if done:
            self._changed()
        return done

    def local_path(self, relpath: str) -> str | None:
        self.resolve(relpath)
        if relpath not in self._local:
            return None
        return str(self.mirror_dir / relpath)

    def open(self, relpath: str) -> BinaryIO:
        path = self.local_path(relpath)
        if path is None:
            return super().open(relpath)
        return open(path, "rb")
