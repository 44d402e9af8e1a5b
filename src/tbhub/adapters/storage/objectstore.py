"""The object-storage ``LogStore``: a log root that is a URL (``s3://bucket/prefix``, other fsspec URLs).

Object storage has no folders, inodes or renames, so this store maps the port onto what it has:

* **Discovery** is one recursive listing (``ListObjectsV2`` pages on S3): size and ``LastModified``
  come with every key, nothing is opened. An object's ``ETag`` changes whenever its bytes do, so a
  64-bit digest of it stands in for the inode: the scanner's index (keyed by inode, size, mtime)
  then rescans exactly the objects that were replaced, and never opens an unchanged one.
* **Reads** are ranged GETs (``cat_file`` with a range: no HEAD, the size comes from the listing).
  A read that seeks (the scanner skipping a payload) fetches exactly what was asked: a fixed
  read-ahead block (s3fs defaults to 50 MiB) would fetch the very payloads it skips. Reads that go
  on where the last one ended (a file of small records, where every byte is needed) fetch ahead,
  doubling up to ``READ_AHEAD_MAX``: at tens of milliseconds a request, round trips cost more than
  bytes, and a 2 MB file takes 4 requests instead of 9.
* **Deleting a run** cannot be one atomic rename to trash. Instead a marker object
  ``RUN/.tbhub-deleting`` is written first; from then on discovery hides the whole run (a half-deleted
  run never shows as a smaller one), then every object is deleted, the marker last. A crash leaves
  the marker; ``finish_trash`` (run by the next ``clean``/``retention apply``) completes the job. The
  caller archives and verifies the run *before* asking for the delete, so nothing is lost.
* Keys that would escape a local copy (``..``, empty or ``.`` components, a leading ``/``) are
  reported in ``skipped``, never returned: the mirror and ``restore`` could not place them safely.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from tbhub.adapters.liveness import pid_alive
from tbhub.adapters.storage.local import TRASH_PREFIX, WORK_PREFIX, DeleteOutcome
from tbhub.adapters.storage.object_readers import CountingReader, RangeReader
from tbhub.adapters.storage.remote import join, open_filesystem, redact_url
from tbhub.core.models import FileEntry, SkippedEntry
from tbhub.errors import LogRootError, UnsafePathError

if TYPE_CHECKING:
    import fsspec

__all__ = [
    "DELETE_MARKER",
    "RESTORE_MARKER",
    "RUN_MARKERS",
    "ObjectDiscovery",
    "ObjectInfo",
    "ObjectLogStore",
    "content_tag",
    "etag_identity",
    "hidden_runs",
    "storage_error",
]

#: Written at the top of a run before its objects are deleted; the run is hidden while it exists.
DELETE_MARKER = f"{WORK_PREFIX}deleting"
#: Written at the top of a run while ``restore`` uploads it; hidden until the marker is removed.
RESTORE_MARKER = f"{WORK_PREFIX}restoring"
#: The markers that hide a run from the scanner and the mirror.
RUN_MARKERS = (DELETE_MARKER, RESTORE_MARKER)


def hidden_runs(relpaths: Iterable[str]) -> tuple[str, ...]:
    """The folders (``dataset/run/``) of the runs that a marker among ``relpaths`` hides: a ``clean``
    or ``restore`` of them is in progress. Test a relpath with ``relpath.startswith(hidden)``."""
    return tuple(rel.rpartition("/")[0] + "/" for rel in relpaths if rel.rpartition("/")[2] in RUN_MARKERS)


def etag_identity(etag: str) -> int:
    """A stable non-negative 63-bit integer for an ETag (the index stores identities as BIGINT)."""
    digest = hashlib.blake2b(etag.strip('"').encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & ((1 << 63) - 1)


def storage_error(error: BaseException, where: str) -> str:
    """One line for an error of the object store, without credentials or a traceback."""
    if isinstance(error, FileNotFoundError):
        return f"{where} does not exist"
    if isinstance(error, PermissionError):
        return f"{where} is not readable (access denied)"
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return f"{where}: {text[:300]}"


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One object below a run or the root: its path relative to that, size, mtime and ETag."""

    relpath: str
    size: int
    mtime_ns: int
    etag: str


@dataclass
class ObjectDiscovery:
    files: list[FileEntry] = field(default_factory=list)
    skipped: list[SkippedEntry] = field(default_factory=list)


def _mtime_ns(info: Mapping[str, Any]) -> int:
    value = info.get("LastModified") or info.get("mtime") or info.get("last_modified") or info.get("updated")
    if isinstance(value, datetime):
        return int(value.timestamp() * 1_000_000) * 1000
    if isinstance(value, int | float):
        return int(value * 1_000_000_000)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1_000_000) * 1000
    return 0


def content_tag(info: Mapping[str, Any]) -> str | None:
    """An object's content tag as the backend lists it (S3's ETag, GCS's md5Hash or crc32c, ...),
    without the quotes S3 puts around it; ``None`` when the backend gives none. The one reader of it:
    the scanner's identity of a file and the mirror's both come from here."""
    for key in ("ETag", "etag", "md5Hash", "crc32c", "checksum"):
        value = info.get(key)
        if value:
            return str(value).strip('"')
    return None


def _etag(info: Mapping[str, Any]) -> str:
    # No content tag on this backend: size and mtime are the best identity there is.
    return content_tag(info) or f"{info.get('size')}-{_mtime_ns(info)}"


def _unsafe(relpath: str) -> bool:
    return not relpath or relpath.startswith("/") or "\x00" in relpath or any(
        part in ("", ".", "..") for part in relpath.split("/")
    )


class ObjectLogStore:
    """A log root in object storage. Discovery and reads never write; only the delete verbs do.

    ``bytes_fetched`` and ``objects_opened`` count what this instance read (a rescan of an
    unchanged root opens nothing).
    """

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        self.root = redact_url(url.rstrip("/"))
        self.fs: fsspec.AbstractFileSystem
        self.fs, self._root = open_filesystem(url, options or {})
        self._listed: dict[str, Mapping[str, Any]] = {}  # relpath -> its listing entry, for open()
        self.bytes_fetched = 0
        self.objects_opened = 0
        self._counts = threading.Lock()  # the scanner reads several objects at once

    def count(self, *, opened: int = 0, fetched: int = 0) -> None:
        """Add to ``objects_opened`` and ``bytes_fetched`` (thread-safe)."""
        with self._counts:
            self.objects_opened += opened
            self.bytes_fetched += fetched

    # -- paths -------------------------------------------------------------------------------------
    def resolve(self, relpath: str) -> str:
        """The path of ``relpath`` inside the filesystem (``bucket/prefix/relpath``); refuses escapes."""
        if _unsafe(relpath):
            raise UnsafePathError(f"path {relpath!r} is not inside log root {self.root}")
        return f"{self._root}/{relpath}"

    def url(self, relpath: str = "") -> str:
        """``relpath`` as a URL (the root itself for ``""``), for messages and manifests."""
        return join(self.root, relpath) if relpath else self.root

    def _bucket(self) -> str:
        return self._root.split("/", 1)[0]

    # -- the LogStore port -------------------------------------------------------------------------
    def check(self) -> None:
        """Raise ``LogRootError`` unless the bucket exists and the prefix can be listed.

        An empty prefix is an empty log root, not an error: object storage has no folders, and the
        last run of a root being cleaned away must not break its endpoint.
        """
        bucket = self._bucket()
        try:
            self.fs.ls(bucket, detail=False)  # FileNotFoundError only for a missing bucket
        except FileNotFoundError:
            raise LogRootError(f"log root {self.root}: bucket {bucket} does not exist") from None
        except Exception as error:  # botocore and aiohttp raise their own trees
            raise LogRootError(storage_error(error, f"log root {self.root}")) from None

    def _list(self, base: str) -> dict[str, dict[str, Any]]:
        try:
            found = self.fs.find(base, detail=True, withdirs=False)
        except FileNotFoundError:
            return {}
        except Exception as error:
            raise LogRootError(storage_error(error, f"log root {self.root}")) from None
        return cast(dict[str, dict[str, Any]], found)

    def discover(self) -> ObjectDiscovery:
        """Every event-file object below the root, sorted by relpath, from one listing.

        Objects below a ``.tbhub-*`` path component (a restore or delete in progress, trash) and runs
        holding a delete or restore marker are left out; unsafe keys are reported in ``skipped``. The
        listing's pages are the only requests (the bucket is checked only when nothing is listed).
        """
        listing = self._list(self._root)
        if not listing:
            self.check()  # nothing listed: a missing bucket is an error, an empty prefix is not
        found = ObjectDiscovery()
        prefix = self._root + "/"
        objects = {path[len(prefix) :]: info for path, info in listing.items() if path.startswith(prefix)}
        hidden = hidden_runs(objects)
        listed: dict[str, Mapping[str, Any]] = {}
        for rel, info in objects.items():
            if "tfevents" not in rel.rpartition("/")[2]:  # markers too
                continue
            if any(part.startswith((WORK_PREFIX, TRASH_PREFIX)) for part in rel.split("/")):
                continue
            if rel.startswith(hidden):
                continue
            if _unsafe(rel):
                found.skipped.append(SkippedEntry(rel, "object key cannot be a safe relative path"))
                continue
            size = int(info.get("size") or 0)
            found.files.append(FileEntry(rel, etag_identity(_etag(info)), size, _mtime_ns(info)))
            listed[rel] = info
        self._listed = listed
        found.files.sort(key=lambda f: f.relpath)
        found.skipped.sort(key=lambda s: s.relpath)
        return found

    def open(self, relpath: str) -> BinaryIO:
        """A seekable binary stream over one object: ranged GETs (see the module docstring)."""
        path = self.resolve(relpath)
        info = self._listed.get(relpath)
        if info is not None and hasattr(self.fs, "cat_file"):
            self.count(opened=1)
            return cast(BinaryIO, RangeReader(self.fs, path, int(info.get("size") or 0), self))
        kwargs: dict[str, Any] = {"block_size": 0, "cache_type": "none"}
        if info is not None:
            kwargs["size"] = int(info.get("size") or 0)  # known from the listing: no HEAD request
        try:
            inner = self.fs.open(path, "rb", **kwargs)
        except TypeError:  # a backend without these options
            inner = self.fs.open(path, "rb")
        if info is not None and hasattr(type(inner), "details"):  # the class: the property would look it up
            # s3fs looks the object up (a HEAD) on the first read unless it has its details: the
            # listing's are the same, and one request per object at tens of milliseconds is not free.
            with contextlib.suppress(AttributeError, TypeError, KeyError):
                inner.details = dict(info)
        self.count(opened=1)
        return cast(BinaryIO, CountingReader(inner, self))

    def local_path(self, relpath: str) -> str | None:
        self.resolve(relpath)
        return None

    # -- what the manage commands use ------------------------------------------------------------------
    def run_objects(self, relpath: str) -> list[ObjectInfo]:
        """Every object of a run (a prefix, or one loose event file), relative to the run, sorted.

        Markers and other ``.tbhub-*`` objects are left out.
        """
        path = self.resolve(relpath)
        listing = self._list(path)
        out: list[ObjectInfo] = []
        for key, info in listing.items():
            if key == path:  # a loose event file: the run is the object itself
                out.append(ObjectInfo(relpath.rpartition("/")[2], int(info.get("size") or 0), _mtime_ns(info),
                                      _etag(info)))
                continue
            if not key.startswith(path + "/"):
                continue
            rel = key[len(path) + 1 :]
            if any(part.startswith(WORK_PREFIX) for part in rel.split("/")):
                continue
            out.append(ObjectInfo(rel, int(info.get("size") or 0), _mtime_ns(info), _etag(info)))
        out.sort(key=lambda o: o.relpath)
        return out

    def is_loose_file(self, relpath: str) -> bool:
        """True when the run ``relpath`` is one object (an event file outside the layout)."""
        path = self.resolve(relpath)
        try:
            return bool(self.fs.isfile(path))
        except Exception as error:
            raise LogRootError(storage_error(error, self.url(relpath))) from None

    def exists(self, relpath: str) -> bool:
        """True when ``relpath`` is an object or has objects below it."""
        path = self.resolve(relpath)
        return bool(self._list(path)) or bool(self.fs.exists(path))

    def put_marker(self, relpath: str, marker: str, detail: Mapping[str, Any]) -> str:
        path = f"{self.resolve(relpath)}/{marker}"
        body = {**detail, "at": time.time(), "host": socket.gethostname(), "pid": os.getpid()}
        self.fs.pipe_file(path, json.dumps(body).encode())
        return path

    def delete_run(self, relpath: str, *, remove_links: bool = False) -> DeleteOutcome:
        """Delete every object of a run, crash-safely (see the module docstring for the order).

        ``remove_links`` is accepted for the port's sake: object storage has no symlinks. Raises
        ``UnsafePathError`` for the root itself or an escaping path and ``OSError``/``LogRootError``
        when the store refuses; a failed delete leaves the marker, so the run stays hidden and the
        next ``finish_trash`` completes it.
        """
        path = self.resolve(relpath)
        if path.rstrip("/") == self._root:
            raise UnsafePathError(f"refusing to delete the log root {self.root} itself")
        if self.is_loose_file(relpath):
            self._rm([path])  # one object: a single DELETE is atomic
            return DeleteOutcome(relpath, "file", None)
        marker = self.put_marker(relpath, DELETE_MARKER, {"run": relpath})
        self._remove_below(path, marker)
        return DeleteOutcome(relpath, "folder", marker)

    def remove_marked(self, relpath: str, marker: str) -> None:
        """Delete every object below the run ``relpath``, then its ``marker`` (a full path)."""
        self._remove_below(self.resolve(relpath), marker)

    def _remove_below(self, path: str, marker: str) -> None:
        keys = [k for k in self._list(path) if k != marker and k.startswith(path + "/")]
        if keys:
            self._rm(keys)
        self._rm([marker])

    def _rm(self, paths: list[str]) -> None:
        try:
            self.fs.rm(paths)
        except FileNotFoundError:
            pass  # already gone (a concurrent or earlier delete)
        except Exception as error:
            raise LogRootError(storage_error(error, f"deleting below {self.root}")) from None

    def _markers(self) -> Iterator[tuple[str, str, str]]:
        """(run relpath, marker name, full marker path) for every marker below the root."""
        prefix = self._root + "/"
        for path in self._list(self._root):
            if not path.startswith(prefix):
                continue
            rel = path[len(prefix) :]
            run, _, name = rel.rpartition("/")
            if name in RUN_MARKERS and run:
                yield run, name, path

    def leftover_trash(self) -> list[str]:
        """Runs an interrupted delete or restore left half-done (hidden by their marker), relpaths."""
        return sorted(run for run, _, _ in self._markers())

    def finish_trash(self) -> list[str]:
        """Complete interrupted deletes; remove what interrupted restores uploaded (the archive still
        holds the run, so the restore can simply be run again). Returns the relpaths handled."""
        done = []
        for run, name, marker in sorted(self._markers()):
            path = self.resolve(run)
            if name == RESTORE_MARKER and not _marker_stale(self.fs, marker):
                continue  # a restore still in progress elsewhere
            self._remove_below(path, marker)
            done.append(run)
        return done

    def commit(self) -> None:
        """Object stores apply each DELETE as it is acknowledged: nothing to flush."""


def _marker_stale(fs: fsspec.AbstractFileSystem, marker: str) -> bool:
    """True unless the marker was written by a process still alive on this host."""
    try:
        detail = json.loads(fs.cat_file(marker))
    except Exception:
        return True
    if detail.get("host") != socket.gethostname():
        return time.time() - float(detail.get("at", 0)) > 24 * 3600
    return not pid_alive(int(detail.get("pid", 0)))
