"""Where a run is read from: a local folder (``LocalRunSource``) or a prefix in object storage
(``ObjectRunSource``), both behind ``RunSource``.

Only regular files and folders are archived: a run holding a symlink, FIFO, socket or device is
refused, and so is a run that changes while it is read (``archive_run`` compares a snapshot taken
before and after, and every file is checked against its entry while it streams).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tbhub.adapters.storage.archive.compression import Compressor
from tbhub.adapters.storage.archive.durable import io_errors, io_line
from tbhub.adapters.storage.archive.format import CHUNK, STREAM_BLOCK, check_relpath
from tbhub.adapters.storage.objectstore import ObjectLogStore, etag_identity, storage_error
from tbhub.errors import ArchiveError, LogRootError


@dataclass(frozen=True, slots=True)
class Entry:
    """A file or folder of a run as a snapshot saw it; ``ino`` tells a replaced file (an ETag's hash in
    object storage)."""

    is_dir: bool
    size: int
    mtime_ns: int
    mode: int
    ino: int


class RunSource(Protocol):
    """A run to archive: a local folder, or a prefix in object storage.

    ``snapshot`` lists every entry by relative POSIX path (``"."`` for the run itself), refusing what
    cannot be archived; ``copy`` streams one file into the archive and returns its SHA-256, failing
    (``changed``) if it no longer matches its entry.
    """

    location: str

    def snapshot(self) -> dict[str, Entry]: ...

    def copy(self, rel: str, entry: Entry, out: Compressor) -> str: ...

    def changed(self, detail: str) -> ArchiveError: ...


def run_changed(location: object, detail: str) -> ArchiveError:
    return ArchiveError(f"run {location} changed while being archived ({detail}); it is still being written")


def describe_change(before: Mapping[str, Entry], after: Mapping[str, Entry]) -> str:
    for path in sorted(after.keys() - before.keys()):
        return f"{path} appeared"
    for path in sorted(before.keys() - after.keys()):
        return f"{path} vanished"
    for path in sorted(before):
        if before[path] != after[path]:
            return f"{path} was modified"
    return "no difference"  # pragma: no cover - only called when the snapshots differ


def _copy(read: Callable[[int], bytes], entry: Entry, out: Compressor, location: object, rel: str) -> str:
    """Stream ``entry.size`` bytes from ``read`` into ``out``; their SHA-256. The run changed if fewer come."""
    digest = hashlib.sha256()
    left = entry.size
    while left:
        chunk = read(min(CHUNK, left))
        if not chunk:
            raise run_changed(location, f"{rel} shrank")
        digest.update(chunk)
        out.write(chunk)
        left -= len(chunk)
    return digest.hexdigest()


# --- a local folder ----------------------------------------------------------------------------------


class LocalRunSource:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.location = str(run_dir)

    def snapshot(self) -> dict[str, Entry]:
        return _snapshot(self.run_dir)

    def copy(self, rel: str, entry: Entry, out: Compressor) -> str:
        return _copy_source(self.run_dir, rel, entry, out)

    def changed(self, detail: str) -> ArchiveError:
        return run_changed(self.run_dir, detail)


def _snapshot(run_dir: Path) -> dict[str, Entry]:
    """Every entry below ``run_dir`` by relative POSIX path, ``"."`` for the folder itself.

    Refuses symlinks (the run folder itself included), special files and non-UTF-8 names.
    """
    with io_errors("reading", run_dir):
        st = os.lstat(run_dir)
    if stat.S_ISLNK(st.st_mode):
        raise ArchiveError(f"run folder {run_dir} is a symlink: archive the folder it points to instead")
    if not stat.S_ISDIR(st.st_mode):
        raise ArchiveError(f"run folder {run_dir} is not a folder")
    entries = {".": Entry(True, 0, st.st_mtime_ns, stat.S_IMODE(st.st_mode), st.st_ino)}
    stack = [("", str(run_dir))]
    while stack:
        prefix, folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                listing = list(it)
        except FileNotFoundError:
            raise run_changed(run_dir, f"{prefix or './'} vanished") from None
        except OSError as e:
            raise ArchiveError(io_line(e, "reading", folder)) from e
        for item in listing:
            rel = prefix + item.name
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:
                raise ArchiveError(f"run {run_dir} holds a name that is not valid UTF-8: {rel!r}") from None
            try:
                est = item.stat(follow_symlinks=False)
            except FileNotFoundError:
                raise run_changed(run_dir, f"{rel} vanished") from None
            except OSError as e:
                raise ArchiveError(io_line(e, "reading", item.path)) from e
            mode = est.st_mode
            if stat.S_ISDIR(mode):
                entries[rel] = Entry(True, 0, est.st_mtime_ns, stat.S_IMODE(mode), est.st_ino)
                stack.append((rel + "/", item.path))
            elif stat.S_ISREG(mode):
                entries[rel] = Entry(False, est.st_size, est.st_mtime_ns, stat.S_IMODE(mode), est.st_ino)
            elif stat.S_ISLNK(mode):
                raise ArchiveError(
                    f"run {run_dir} holds a symlink ({rel}): only regular files and folders can be archived"
                )
            else:
                raise ArchiveError(
                    f"run {run_dir} holds {rel}, which is neither a regular file nor a folder: not archiving it"
                )
    return entries


def _how(entry: Entry, st: os.stat_result) -> str:
    if st.st_ino != entry.ino:
        return "was replaced"
    if st.st_size != entry.size:
        return "grew" if st.st_size > entry.size else "shrank"
    return "was modified"


def _open_source(path: str) -> int:
    """Open a run file for reading without following a symlink that replaced it meanwhile."""
    return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)


def _copy_source(run_dir: Path, rel: str, entry: Entry, out: Compressor) -> str:
    """Stream one run file into the archive; its SHA-256. Fails if it differs from ``entry`` at any point."""
    path = os.path.join(run_dir, rel)
    try:
        fd = _open_source(path)
    except FileNotFoundError:
        raise run_changed(run_dir, f"{rel} vanished") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise run_changed(run_dir, f"{rel} became a symlink") from None
        raise ArchiveError(io_line(e, "reading", path)) from e
    try:
        with io_errors("reading", path):
            st = os.fstat(fd)
            if (st.st_ino, st.st_size, st.st_mtime_ns) != (entry.ino, entry.size, entry.mtime_ns):
                raise run_changed(run_dir, f"{rel} {_how(entry, st)}")
            digest = _copy(lambda n: os.read(fd, n), entry, out, run_dir, rel)
            grew = os.read(fd, 1)
            st = os.fstat(fd)
        if grew or (st.st_size, st.st_mtime_ns) != (entry.size, entry.mtime_ns):
            raise run_changed(run_dir, f"{rel} {'grew' if grew else _how(entry, st)}")
        return digest
    finally:
        os.close(fd)


# --- a prefix in object storage ----------------------------------------------------------------------


class ObjectRunSource:
    """A run in an object-storage log root, read object by object.

    Object storage has no folders: the run's folders are the prefixes of its keys (mode 0755, mtime
    the newest object below them), files get mode 0644 and their ``LastModified``. The ETag stands
    in for the inode, so the snapshot after reading notices an object replaced meanwhile.
    """

    def __init__(self, store: ObjectLogStore, relpath: str) -> None:
        self.store = store
        self.relpath = relpath
        self.location = store.url(relpath)

    def snapshot(self) -> dict[str, Entry]:
        try:
            if self.store.is_loose_file(self.relpath):
                raise ArchiveError(f"run folder {self.location} is not a folder")
            objects = self.store.run_objects(self.relpath)
        except LogRootError as e:
            raise ArchiveError(e.message) from None
        if not objects:
            raise ArchiveError(f"run {self.location} has no objects (deleted meanwhile?)")
        entries: dict[str, Entry] = {}
        newest: dict[str, int] = {".": 0}
        for obj in objects:
            try:
                check_relpath(obj.relpath, f"object key in run {self.location}:")
            except ArchiveError as e:
                raise ArchiveError(f"{e.message}; not archiving it") from None
            entries[obj.relpath] = Entry(False, obj.size, obj.mtime_ns, 0o644, etag_identity(obj.etag))
            parts = obj.relpath.split("/")
            for depth in range(len(parts)):
                folder = "/".join(parts[:depth]) or "."
                newest[folder] = max(newest.get(folder, 0), obj.mtime_ns)
        for folder, mtime in newest.items():
            if folder in entries:
                raise ArchiveError(f"run {self.location} holds both an object and a folder named {folder!r}")
            entries[folder] = Entry(True, 0, mtime, 0o755, 0)
        return entries

    def copy(self, rel: str, entry: Entry, out: Compressor) -> str:
        path = self.store.resolve(f"{self.relpath}/{rel}")
        try:
            with self.store.fs.open(path, "rb", block_size=STREAM_BLOCK, cache_type="readahead", size=entry.size) as f:
                return _copy(f.read, entry, out, self.location, rel)
        except ArchiveError:
            raise
        except FileNotFoundError:
            raise self.changed(f"{rel} vanished") from None
        except Exception as e:  # botocore and aiohttp have their own error trees
            raise ArchiveError(storage_error(e, f"reading {self.store.url(f'{self.relpath}/{rel}')}")) from None

    def changed(self, detail: str) -> ArchiveError:
        return run_changed(self.location, detail)
