"""Archive a run to cold storage, verify the archive, restore it byte-identical.

``tbhub clean --archive-to DEST`` runs this before it deletes what is often a team's only copy of a
run, so every step is written for crashes first and for speed second.

Layout under ``DEST``::

    DEST/{endpoint}/{dataset}/{run}--{YYYYmmddTHHMMSSZ}.tar.zst        (.tar.gz without zstandard)
    DEST/{endpoint}/{dataset}/{run}--{YYYYmmddTHHMMSSZ}.manifest.json  the sidecar manifest

An archive is a plain PAX tar, compressed as a sequence of zstd frames (or gzip members), so
``tar --zstd -xf`` / ``tar -xzf`` read it too::

    MANIFEST.json            first member, in a frame of its own: readable without the rest
    run/                     the run folder itself (with its mtime)
    run/train/               every sub-folder, empty ones included
    run/train/events...      regular files, in path order, with their mtimes to the nanosecond

Invariants
----------
* ``archive_run`` only reads the run folder and only writes below ``DEST``.
* A final archive name appears only for an archive that was fsynced and then re-read in full, with
  every file's size and SHA-256 checked against the manifest. Until then it has a hidden temporary
  name (``.NAME.partial-PID-XXXXXXXX``): a crash at any moment leaves either such temporary files,
  which ``list_archives`` ignores and ``remove_partial_archives`` deletes, or a complete archive.
  The sidecar is written after the archive (an archive may lack its sidecar; its embedded manifest
  says the same), never before.
* Archives are never overwritten: a name already taken (same run, same second) gets ``-1``, ``-2``...
* Only regular files and folders are archived. A run holding a symlink, FIFO, socket or device is
  refused, and so is a run that changes while it is read (sizes, mtimes, entries): it is still being
  written, and the caller must not delete it.
* ``restore_archive`` never writes over anything: the target must not exist (not even empty). It
  extracts into a hidden sibling (``.tbhub-restore-...``), verifies every file, sets mtimes and modes,
  and renames the folder into place.
* Every failure is an ``ArchiveError`` with a one-line message (``no space left on device writing
  /cold/...``); the temporary files of the failed call are removed before it is raised.

Object storage
--------------
Runs, archive folders and restore targets may also be URLs (``s3://bucket/prefix``); every verb takes
``storage_options`` (``Config.storage_options``) for them. The format is the same.

* A run in object storage (``ObjectRunSource``) is streamed object by object into the archive; the
  listing is taken before and after (sizes, ETags), so a run that changed meanwhile is refused.
* An archive for an ``s3://`` folder is built and verified in a local temporary folder, uploaded with
  an exclusive create (``If-None-Match: *``: never over an existing archive; an upload becomes
  visible only complete), then read back from the store and verified again, and only then gets its
  sidecar. A crash leaves at most an unverified archive without sidecar, and the run in place.
* ``restore_archive`` into an object-storage log root first checks that nothing exists at the
  target, extracts and verifies locally, then uploads under a ``.tbhub-restoring`` marker that hides
  the run until every object is there; an interrupted restore is removed by the next clean
  (``ObjectLogStore.finish_trash``) and can simply be run again.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import stat
import tarfile
import tempfile
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, Protocol, TypeVar, cast

from tbhub.adapters.storage.objectstore import RESTORE_MARKER, ObjectLogStore, etag_identity, storage_error
from tbhub.adapters.storage.remote import is_url, join, open_filesystem
from tbhub.errors import ArchiveError, LogRootError

if TYPE_CHECKING:
    import fsspec

try:
    import zstandard as _zstd
except ImportError:  # pragma: no cover - a dependency; gzip keeps archiving possible without it
    _zstd = None  # type: ignore[assignment]

__all__ = [
    "FORMAT",
    "MANIFEST_MEMBER",
    "RESTORE_PREFIX",
    "SIDECAR_SUFFIX",
    "SUFFIXES",
    "ArchiveInfo",
    "ArchiveManifest",
    "ArchiveResult",
    "ManifestFile",
    "ObjectRunSource",
    "RunSource",
    "archive_run",
    "list_archives",
    "remove_partial_archives",
    "restore_archive",
    "verify_archive",
]

log = logging.getLogger(__name__)

#: Version of the manifest (and archive layout); readers refuse other versions.
FORMAT: Final = 1
#: Name of the first tar member, the embedded manifest.
MANIFEST_MEMBER: Final = "MANIFEST.json"
#: The tar folder holding the run's contents (so a run's own MANIFEST.json cannot collide).
RUN_MEMBER: Final = "run"
SIDECAR_SUFFIX: Final = ".manifest.json"
SUFFIXES: Final[Mapping[str, str]] = {"zstd": ".tar.zst", "gzip": ".tar.gz"}
#: Prefix of the hidden sibling folder a restore extracts into before renaming it into place.
RESTORE_PREFIX: Final = ".tbhub-restore-"

ZSTD_LEVEL: Final = 3
GZIP_LEVEL: Final = 6  # gzip's own default, what `tar -czf` uses
_CHUNK: Final = 1 << 20
#: Read-ahead when streaming an object (a run file, a remote archive): few requests, bounded memory.
_STREAM_BLOCK: Final = 8 << 20
_MAX_MANIFEST: Final = 256 << 20
_BLOCK: Final = tarfile.BLOCKSIZE
_PARTIAL = re.compile(r"\.partial-(\d+)-[0-9a-f]{8}\Z")
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
_ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
_GZIP_MAGIC: Final = b"\x1f\x8b"
# link(2) failing with these means "this filesystem has no hard links" (FUSE mounts of object
# stores, vfat...), not "the name is taken".
_NO_HARDLINKS: Final = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EMLINK})
_TAR_TYPES: Final = {
    tarfile.SYMTYPE: "symlink",
    tarfile.LNKTYPE: "hard link",
    tarfile.CHRTYPE: "character device",
    tarfile.BLKTYPE: "block device",
    tarfile.FIFOTYPE: "FIFO",
}

_T = TypeVar("_T")


# --- the manifest ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ManifestFile:
    """One regular file of the run, exactly as it was read into the archive.

    ``path`` is POSIX and relative to the run folder; ``mode`` holds the permission bits
    (``stat.S_IMODE``); ``mtime_ns`` is restored to the nanosecond where the filesystem allows.
    """

    path: str
    size: int
    sha256: str
    mtime_ns: int
    mode: int


@dataclass(frozen=True, slots=True)
class ArchiveManifest:
    """What an archive holds and where it came from; embedded as ``MANIFEST.json`` and in the sidecar.

    ``files`` are sorted by path; ``folders`` lists every sub-folder (relative POSIX paths, empty ones
    included, the run folder itself not), sorted; ``folder_mtimes_ns`` and ``folder_modes`` map ``"."``
    (the run folder) and each sub-folder to its mtime and permission bits. Every parent of a file or
    folder is listed in ``folders``.
    ``summary`` is the scanner's summary of the run, stored as given (treat it as read-only).
    ``from_json`` checks all of this, and that no path is absolute or contains ``..``.
    """

    format: int
    endpoint: str
    dataset: str
    run: str
    relpath: str
    original_path: str
    created_at: str
    compression: str
    files: tuple[ManifestFile, ...]
    folders: tuple[str, ...]
    summary: dict[str, Any] = field(default_factory=dict)
    folder_mtimes_ns: dict[str, int] = field(default_factory=dict)
    folder_modes: dict[str, int] = field(default_factory=dict)

    @property
    def size_bytes(self) -> int:
        """Total size of the run's files (uncompressed)."""
        return sum(f.size for f in self.files)

    @property
    def created(self) -> datetime:
        return datetime.fromisoformat(self.created_at)

    def to_json(self) -> str:
        """Deterministic JSON (the same manifest always gives the same text)."""
        data = {
            "format": self.format,
            "endpoint": self.endpoint,
            "dataset": self.dataset,
            "run": self.run,
            "relpath": self.relpath,
            "original_path": self.original_path,
            "created_at": self.created_at,
            "compression": self.compression,
            "folders": list(self.folders),
            "folder_mtimes_ns": self.folder_mtimes_ns,
            "folder_modes": self.folder_modes,
            "files": [
                {"path": f.path, "size": f.size, "sha256": f.sha256, "mtime_ns": f.mtime_ns, "mode": f.mode}
                for f in self.files
            ],
            "summary": self.summary,
        }
        return json.dumps(data, indent=1, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> ArchiveManifest:
        """Parse and validate a manifest; ``ArchiveError`` for anything malformed or unsafe."""
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as e:
            raise ArchiveError(f"invalid manifest: {e}") from e
        if not isinstance(data, dict):
            raise ArchiveError("invalid manifest: not a JSON object")
        version = _get(data, "format", int)
        if version != FORMAT:
            raise ArchiveError(f"unsupported archive format {version} (this tbhub reads format {FORMAT})")
        endpoint, dataset, run, relpath, original_path, created_at, compression = (
            _get(data, key, str)
            for key in ("endpoint", "dataset", "run", "relpath", "original_path", "created_at", "compression")
        )
        if compression not in SUFFIXES:
            raise ArchiveError(f"invalid manifest: unknown compression {compression!r}")
        _check_relpath(relpath, "run path")
        try:
            aware = datetime.fromisoformat(created_at).tzinfo is not None
        except ValueError:
            aware = False
        if not aware:
            raise ArchiveError(f"invalid manifest: created_at {created_at!r} is not an ISO 8601 time with a zone")
        folders = tuple(_get(data, "folders", list))
        if not all(isinstance(folder, str) for folder in folders):
            raise ArchiveError("invalid manifest: folders must be strings")
        files = []
        for i, item in enumerate(_get(data, "files", list)):
            if not isinstance(item, dict):
                raise ArchiveError(f"invalid manifest: files[{i}] is not an object")
            where = f"files[{i}]."
            entry = ManifestFile(
                path=_get(item, "path", str, where),
                size=_get(item, "size", int, where),
                sha256=_get(item, "sha256", str, where),
                mtime_ns=_get(item, "mtime_ns", int, where),
                mode=_get(item, "mode", int, where),
            )
            if entry.size < 0 or not _SHA256.match(entry.sha256) or not 0 <= entry.mode <= 0o7777:
                raise ArchiveError(f"invalid manifest: bad size, sha256 or mode for {entry.path!r}")
            files.append(entry)
        summary = _get(data, "summary", dict)
        mtimes, modes = _folder_map(data, "folder_mtimes_ns"), _folder_map(data, "folder_modes")
        if not all(0 <= mode <= 0o7777 for mode in modes.values()):
            raise ArchiveError("invalid manifest: bad folder mode")
        _check_tree(files, folders, {**mtimes, **modes})
        return cls(
            format=version,
            endpoint=endpoint,
            dataset=dataset,
            run=run,
            relpath=relpath,
            original_path=original_path,
            created_at=created_at,
            compression=compression,
            files=tuple(files),
            folders=folders,
            summary=summary,
            folder_mtimes_ns=mtimes,
            folder_modes=modes,
        )


@dataclass(frozen=True, slots=True)
class ArchiveResult:
    """What ``archive_run`` did: ``bytes_in`` is the run's size, ``bytes_out`` the archive's."""

    archive: Path | str  # a URL for an archive in object storage
    manifest_path: Path | str
    manifest: ArchiveManifest
    bytes_in: int
    bytes_out: int
    seconds: float


@dataclass(frozen=True, slots=True)
class ArchiveInfo:
    """A complete archive found by ``list_archives``."""

    archive: Path | str  # a URL for an archive in object storage
    manifest: ArchiveManifest
    size_bytes: int


def _get(data: Mapping[str, Any], key: str, kind: type[_T], where: str = "") -> _T:
    value = data.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ArchiveError(f"invalid manifest: {where}{key} must be a {kind.__name__}")
    return value


def _check_relpath(path: str, what: str) -> None:
    """A relative POSIX path that stays where it is put: no absolute path, no ``..``, no ``.``/empty parts."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise ArchiveError(f"unsafe {what} {path!r}: not valid UTF-8") from None
    if not path or path.startswith("/") or "\0" in path or any(p in ("", ".", "..") for p in path.split("/")):
        raise ArchiveError(f"unsafe {what} {path!r}: must be a relative path without '..'")


def _folder_map(data: Mapping[str, Any], key: str) -> dict[str, int]:
    value = data.get(key, {})
    if not isinstance(value, dict) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value.values()):
        raise ArchiveError(f"invalid manifest: {key} must map folders to integers")
    return value


def _check_tree(files: list[ManifestFile], folders: tuple[str, ...], folder_keys: Mapping[str, int]) -> None:
    folder_set = set(folders)
    paths = [f.path for f in files]
    for path in (*paths, *folders):
        _check_relpath(path, "path in manifest")
        parent = path.rpartition("/")[0]
        if parent and parent not in folder_set:
            raise ArchiveError(f"invalid manifest: {path!r} lies in a folder the manifest does not list")
    if len(folder_set) != len(folders) or len(set(paths)) != len(paths) or folder_set.intersection(paths):
        raise ArchiveError("invalid manifest: a path is listed twice")
    if not set(folder_keys) <= folder_set | {"."}:
        raise ArchiveError("invalid manifest: folder metadata names a folder the manifest does not list")


def _check_name(value: str, what: str) -> None:
    if value in ("", ".", "..") or "/" in value or "\0" in value:
        raise ArchiveError(f"invalid {what} name {value!r}: must be a single path component")


# --- low-level I/O -----------------------------------------------------------------------------------


def _io_line(e: OSError, verb: str, path: os.PathLike[str] | str) -> str:
    """One line for the user: ``no space left on device writing /cold/ep/ds/.run...partial-12-ab``."""
    reason = e.strerror or str(e) or type(e).__name__
    return f"{reason[:1].lower()}{reason[1:]} {verb} {path}"


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until everything is written (a regular file may take less near a full disk)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class _DestFile:
    """A new file (never an existing one: O_EXCL, O_NOFOLLOW) whose errors become ``ArchiveError``."""

    def __init__(self, path: Path, mode: int = 0o644) -> None:
        self.path = path
        self.size = 0
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
        except OSError as e:
            raise ArchiveError(_io_line(e, "creating", path)) from e
        self._open = True

    def write(self, data: bytes) -> int:
        try:
            _write_all(self.fd, data)
        except OSError as e:
            raise ArchiveError(_io_line(e, "writing", self.path)) from e
        self.size += len(data)
        return len(data)

    def sync(self) -> None:
        try:
            os.fsync(self.fd)
        except OSError as e:
            raise ArchiveError(_io_line(e, "syncing", self.path)) from e

    def close(self) -> None:
        if self._open:
            self._open = False
            try:
                os.close(self.fd)
            except OSError as e:  # NFS reports some write errors only here
                raise ArchiveError(_io_line(e, "closing", self.path)) from e


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as e:
        raise ArchiveError(_io_line(e, "syncing", path)) from e


def _remove(path: Path | None) -> None:
    """Best-effort cleanup on an error path: the original error matters more than this one."""
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink()


def _shorten(name: str, limit: int = 160) -> str:
    """``name`` cut to ``limit`` UTF-8 bytes: temporary names must stay below NAME_MAX (255 bytes)."""
    return name.encode("utf-8")[:limit].decode("utf-8", "ignore")


def _temp_name(name: str, token: str, kind: str = "") -> str:
    """``.NAME{kind}.partial-PID-XXXXXXXX``; ``kind`` keeps one call's temporary files apart when
    ``NAME`` had to be cut."""
    return f".{_shorten(name)}{kind}.partial-{token}"


def _open_source(path: str) -> int:
    """Open a run file for reading without following a symlink that replaced it meanwhile."""
    return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)


class _Compressor:
    """One compressed stream (a zstd frame with checksum, or a gzip member) appended to a file."""

    def __init__(self, codec: str, out: _DestFile, threads: int = 0) -> None:
        self._out = out
        self._obj: Any
        if codec == "zstd":
            self._obj = _zstd.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True, threads=threads).compressobj()
        else:  # wbits 31: a gzip header and trailer (mtime 0, so the bytes depend on the data only)
            self._obj = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)

    def write(self, data: bytes) -> None:
        chunk = self._obj.compress(data)
        if chunk:
            self._out.write(chunk)

    def close(self) -> None:
        self._out.write(self._obj.flush())


def _decompressor(codec: str, raw: IO[bytes]) -> IO[bytes]:
    if codec == "zstd":
        reader: IO[bytes] = _zstd.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=False)
        return reader
    return cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))  # reads concatenated members


def _sniff(archive: Path | str, raw: IO[bytes]) -> str:
    magic = raw.read(4)
    raw.seek(0)
    if magic == _ZSTD_MAGIC:
        if _zstd is None:
            raise ArchiveError(f"{archive} is zstd-compressed but the zstandard package is not installed")
        return "zstd"
    if magic.startswith(_GZIP_MAGIC):
        return "gzip"
    raise ArchiveError(f"{archive} is not a tbhub archive (neither zstd nor gzip)")


def _check_zstd_frames(archive: Path | str, raw: IO[bytes]) -> None:
    """Fail unless ``raw`` is a sequence of complete zstd frames, walking only their headers.

    python-zstandard's stream reader ends quietly at a truncated frame: no error, and the frame's
    checksum is never checked. Frame and block headers (RFC 8878, section 3.1.1) give every frame's
    length, so a truncated archive shows as a file that ends inside one.
    """
    end = raw.seek(0, os.SEEK_END)
    pos = 0

    def read(n: int) -> int:
        raw.seek(pos)
        data = raw.read(n)
        if len(data) != n:
            raise ArchiveError(f"{archive} is truncated (it ends inside a zstd frame)")
        return int.from_bytes(data, "little")

    while pos < end:
        magic = read(4)
        if magic & 0xFFFFFFF0 == 0x184D2A50:  # a skippable frame: magic, 4-byte length, data
            pos += 4
            pos += 4 + read(4)
            continue
        if magic != 0xFD2FB528:
            raise ArchiveError(f"{archive} is corrupt: no zstd frame at byte {pos}")
        pos += 4
        descriptor = read(1)
        single_segment = descriptor >> 5 & 1
        window = 0 if single_segment else 1
        dictionary = (0, 1, 2, 4)[descriptor & 3]
        content_size = (single_segment, 2, 4, 8)[descriptor >> 6]
        pos += 1 + window + dictionary + content_size
        last = False
        while not last:
            block = read(3)
            last, kind, size = bool(block & 1), block >> 1 & 3, block >> 3
            if kind == 3:
                raise ArchiveError(f"{archive} is corrupt: reserved zstd block type at byte {pos}")
            pos += 3 + (1 if kind == 1 else size)  # an RLE block stores its byte once
        pos += 4 if descriptor & 4 else 0  # content checksum
    if pos != end:
        raise ArchiveError(f"{archive} is truncated (it ends inside a zstd frame)")
    raw.seek(0)


def _choose_codec(compression: str | None) -> str:
    if compression is None:
        return "zstd" if _zstd is not None else "gzip"
    if compression not in SUFFIXES:
        raise ArchiveError(f"unknown compression {compression!r} (zstd or gzip)")
    if compression == "zstd" and _zstd is None:
        raise ArchiveError("zstd compression needs the zstandard package (or use gzip)")
    return compression


# --- reading the run folder --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Entry:
    is_dir: bool
    size: int
    mtime_ns: int
    mode: int
    ino: int


def _changed(run_dir: Path, detail: str) -> ArchiveError:
    return ArchiveError(f"run {run_dir} changed while being archived ({detail}); it is still being written")


def _snapshot(run_dir: Path) -> dict[str, _Entry]:
    """Every entry below ``run_dir`` by relative POSIX path, ``"."`` for the folder itself.

    Refuses symlinks (the run folder itself included), special files and non-UTF-8 names.
    """
    try:
        st = os.lstat(run_dir)
    except OSError as e:
        raise ArchiveError(_io_line(e, "reading", run_dir)) from e
    if stat.S_ISLNK(st.st_mode):
        raise ArchiveError(f"run folder {run_dir} is a symlink: archive the folder it points to instead")
    if not stat.S_ISDIR(st.st_mode):
        raise ArchiveError(f"run folder {run_dir} is not a folder")
    entries = {".": _Entry(True, 0, st.st_mtime_ns, stat.S_IMODE(st.st_mode), st.st_ino)}
    stack = [("", str(run_dir))]
    while stack:
        prefix, folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                listing = list(it)
        except FileNotFoundError:
            raise _changed(run_dir, f"{prefix or './'} vanished") from None
        except OSError as e:
            raise ArchiveError(_io_line(e, "reading", folder)) from e
        for item in listing:
            rel = prefix + item.name
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:
                raise ArchiveError(f"run {run_dir} holds a name that is not valid UTF-8: {rel!r}") from None
            try:
                est = item.stat(follow_symlinks=False)
            except FileNotFoundError:
                raise _changed(run_dir, f"{rel} vanished") from None
            except OSError as e:
                raise ArchiveError(_io_line(e, "reading", item.path)) from e
            mode = est.st_mode
            if stat.S_ISDIR(mode):
                entries[rel] = _Entry(True, 0, est.st_mtime_ns, stat.S_IMODE(mode), est.st_ino)
                stack.append((rel + "/", item.path))
            elif stat.S_ISREG(mode):
                entries[rel] = _Entry(False, est.st_size, est.st_mtime_ns, stat.S_IMODE(mode), est.st_ino)
            elif stat.S_ISLNK(mode):
                raise ArchiveError(
                    f"run {run_dir} holds a symlink ({rel}): only regular files and folders can be archived"
                )
            else:
                raise ArchiveError(
                    f"run {run_dir} holds {rel}, which is neither a regular file nor a folder: not archiving it"
                )
    return entries


def _describe_change(before: Mapping[str, _Entry], after: Mapping[str, _Entry]) -> str:
    for path in sorted(after.keys() - before.keys()):
        return f"{path} appeared"
    for path in sorted(before.keys() - after.keys()):
        return f"{path} vanished"
    for path in sorted(before):
        if before[path] != after[path]:
            return f"{path} was modified"
    return "no difference"  # pragma: no cover - only called when the snapshots differ


def _how(entry: _Entry, st: os.stat_result) -> str:
    if st.st_ino != entry.ino:
        return "was replaced"
    if st.st_size != entry.size:
        return "grew" if st.st_size > entry.size else "shrank"
    return "was modified"


def _tar_header(name: str, entry: _Entry) -> bytes:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if entry.is_dir else tarfile.REGTYPE
    info.size = entry.size
    info.mode = entry.mode
    seconds, nanos = divmod(entry.mtime_ns, 1_000_000_000)
    info.mtime = seconds
    if entry.mtime_ns >= 0:  # plain `tar -x` restores nanoseconds too
        info.pax_headers = {"mtime": f"{seconds}.{nanos:09d}"}
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "strict")


def _copy_source(run_dir: Path, rel: str, entry: _Entry, out: _Compressor) -> str:
    """Stream one run file into the archive; its SHA-256. Fails if it differs from ``entry`` at any point."""
    path = os.path.join(run_dir, rel)
    try:
        fd = _open_source(path)
    except FileNotFoundError:
        raise _changed(run_dir, f"{rel} vanished") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise _changed(run_dir, f"{rel} became a symlink") from None
        raise ArchiveError(_io_line(e, "reading", path)) from e
    try:
        digest = hashlib.sha256()
        left = entry.size
        try:
            st = os.fstat(fd)
            if (st.st_ino, st.st_size, st.st_mtime_ns) != (entry.ino, entry.size, entry.mtime_ns):
                raise _changed(run_dir, f"{rel} {_how(entry, st)}")
            while left:
                chunk = os.read(fd, min(_CHUNK, left))
                if not chunk:
                    raise _changed(run_dir, f"{rel} shrank")
                digest.update(chunk)
                out.write(chunk)
                left -= len(chunk)
            grew = os.read(fd, 1)
            st = os.fstat(fd)
        except OSError as e:
            raise ArchiveError(_io_line(e, "reading", path)) from e
        if grew or (st.st_size, st.st_mtime_ns) != (entry.size, entry.mtime_ns):
            raise _changed(run_dir, f"{rel} {'grew' if grew else _how(entry, st)}")
        return digest.hexdigest()
    finally:
        os.close(fd)


# --- where a run is read from ------------------------------------------------------------------------


class RunSource(Protocol):
    """A run to archive: a local folder, or a prefix in object storage.

    ``snapshot`` lists every entry by relative POSIX path (``"."`` for the run itself), refusing what
    cannot be archived; ``copy`` streams one file into the archive and returns its SHA-256, failing
    (``changed``) if it no longer matches its entry.
    """

    location: str

    def snapshot(self) -> dict[str, _Entry]: ...

    def copy(self, rel: str, entry: _Entry, out: _Compressor) -> str: ...

    def changed(self, detail: str) -> ArchiveError: ...


class _LocalSource:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.location = str(run_dir)

    def snapshot(self) -> dict[str, _Entry]:
        return _snapshot(self.run_dir)

    def copy(self, rel: str, entry: _Entry, out: _Compressor) -> str:
        return _copy_source(self.run_dir, rel, entry, out)

    def changed(self, detail: str) -> ArchiveError:
        return _changed(self.run_dir, detail)


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

    def snapshot(self) -> dict[str, _Entry]:
        try:
            if self.store.is_loose_file(self.relpath):
                raise ArchiveError(f"run folder {self.location} is not a folder")
            objects = self.store.run_objects(self.relpath)
        except LogRootError as e:
            raise ArchiveError(e.message) from None
        if not objects:
            raise ArchiveError(f"run {self.location} has no objects (deleted meanwhile?)")
        entries: dict[str, _Entry] = {}
        newest: dict[str, int] = {".": 0}
        for obj in objects:
            try:
                _check_relpath(obj.relpath, f"object key in run {self.location}:")
            except ArchiveError as e:
                raise ArchiveError(f"{e.message}; not archiving it") from None
            entries[obj.relpath] = _Entry(False, obj.size, obj.mtime_ns, 0o644, etag_identity(obj.etag))
            parts = obj.relpath.split("/")
            for depth in range(len(parts)):
                folder = "/".join(parts[:depth]) or "."
                newest[folder] = max(newest.get(folder, 0), obj.mtime_ns)
        for folder, mtime in newest.items():
            if folder in entries:
                raise ArchiveError(f"run {self.location} holds both an object and a folder named {folder!r}")
            entries[folder] = _Entry(True, 0, mtime, 0o755, 0)
        return entries

    def copy(self, rel: str, entry: _Entry, out: _Compressor) -> str:
        path = self.store.resolve(f"{self.relpath}/{rel}")
        digest = hashlib.sha256()
        left = entry.size
        try:
            with self.store.fs.open(path, "rb", block_size=_STREAM_BLOCK, cache_type="readahead", size=entry.size) as f:
                while left:
                    chunk = f.read(min(_CHUNK, left))
                    if not chunk:
                        raise self.changed(f"{rel} shrank")
                    digest.update(chunk)
                    out.write(chunk)
                    left -= len(chunk)
        except ArchiveError:
            raise
        except FileNotFoundError:
            raise self.changed(f"{rel} vanished") from None
        except Exception as e:  # botocore and aiohttp have their own error trees
            raise ArchiveError(storage_error(e, f"reading {self.store.url(f'{self.relpath}/{rel}')}")) from None
        return digest.hexdigest()

    def changed(self, detail: str) -> ArchiveError:
        return ArchiveError(f"run {self.location} changed while being archived ({detail}); it is still being written")


def _write_body(
    source: RunSource, entries: Mapping[str, _Entry], path: Path, codec: str, threads: int
) -> dict[str, str]:
    """The tar members of the run (folder, sub-folders, files), compressed into ``path``; file digests."""
    out = _DestFile(path, 0o600)
    try:
        stream = _Compressor(codec, out, threads)
        stream.write(_tar_header(RUN_MEMBER, entries["."]))
        digests = {}
        # Sorted paths put every folder before its contents (a parent is a prefix of its children).
        for rel in sorted(entries.keys() - {"."}):
            entry = entries[rel]
            stream.write(_tar_header(f"{RUN_MEMBER}/{rel}", entry))
            if not entry.is_dir:
                digests[rel] = source.copy(rel, entry, stream)
                stream.write(tarfile.NUL * (-entry.size % _BLOCK))
        stream.write(tarfile.NUL * (2 * _BLOCK))  # end-of-archive marker
        stream.close()
        return digests
    finally:
        out.close()


def _write_archive(path: Path, manifest: bytes, body: Path, codec: str, created: datetime) -> None:
    """``path`` = [the manifest member, compressed on its own] + [the body's compressed bytes], fsynced.

    Concatenated zstd frames (gzip members) decompress to the concatenated tar stream, so the run's
    files are read once, hashed while they stream into the body, and the manifest holding those
    hashes still comes first.
    """
    info = tarfile.TarInfo(MANIFEST_MEMBER)
    info.size = len(manifest)
    info.mode = 0o644
    info.mtime = int(created.timestamp())
    member = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "strict") + manifest + tarfile.NUL * (-len(manifest) % _BLOCK)
    out = _DestFile(path)
    try:
        head = _Compressor(codec, out)
        head.write(member)
        head.close()
        try:
            src = open(body, "rb")  # noqa: SIM115 - closed below; open errors need their own message
        except OSError as e:
            raise ArchiveError(_io_line(e, "reading", body)) from e
        with src:
            while True:
                try:
                    chunk = src.read(_CHUNK)
                except OSError as e:
                    raise ArchiveError(_io_line(e, "reading", body)) from e
                if not chunk:
                    break
                out.write(chunk)
        out.sync()
    finally:
        out.close()


# --- reading an archive ------------------------------------------------------------------------------


class _Sink(Protocol):
    def write(self, data: bytes) -> int: ...

    def close(self) -> None: ...


class _Visitor:
    """What to do with an archive's entries while it is verified; the default only verifies."""

    def begin(self, manifest: ArchiveManifest) -> None:
        pass

    def folder(self, rel: str) -> None:
        pass

    def open_file(self, entry: ManifestFile) -> _Sink | None:
        return None

    def close_file(self, entry: ManifestFile, sink: _Sink) -> None:
        pass


def _corruption_errors() -> tuple[type[BaseException], ...]:
    errors: tuple[type[BaseException], ...] = (
        tarfile.TarError,
        EOFError,
        zlib.error,
        gzip.BadGzipFile,
        UnicodeDecodeError,
    )
    return (*errors, _zstd.ZstdError) if _zstd is not None else errors


@dataclass(frozen=True, slots=True)
class _RemoteFile:
    """An archive in object storage: its filesystem and path there (the URL is for messages)."""

    fs: fsspec.AbstractFileSystem
    path: str


def _read_archive(
    archive: Path | str,
    visitor: _Visitor | None = None,
    *,
    manifest_only: bool = False,
    expect: bytes | None = None,
    remote: _RemoteFile | None = None,
) -> tuple[ArchiveManifest, bytes]:
    """Stream through ``archive``, checking everything; the manifest and its exact bytes.

    Checks: the first member is the manifest (equal to ``expect`` if given); every other member is
    ``run`` or below it, a regular file or folder, listed in the manifest, seen once, and every file's
    size and SHA-256 match; nothing in the manifest is missing; the compressed stream is intact to its
    last byte (frame checksums) with nothing but tar padding after the end-of-archive marker.
    ``remote`` reads ``archive`` (then its URL) from object storage, streaming.
    """
    raw: IO[bytes]
    try:
        if remote is not None:
            raw = remote.fs.open(remote.path, "rb", block_size=_STREAM_BLOCK, cache_type="readahead")
        else:
            raw = open(archive, "rb")  # noqa: SIM115 - closed below; open errors need their own message
    except FileNotFoundError as e:
        if remote is None:
            raise ArchiveError(_io_line(e, "reading", archive)) from e
        raise ArchiveError(f"archive {archive} does not exist") from None
    except OSError as e:
        raise ArchiveError(_io_line(e, "reading", archive)) from e
    except Exception as e:  # an object store's own errors
        raise ArchiveError(storage_error(e, f"reading {archive}")) from None
    with raw:
        try:
            return _read_stream(archive, raw, visitor or _Visitor(), manifest_only, expect)
        except ArchiveError:
            raise
        except _corruption_errors() as e:
            raise ArchiveError(f"{archive} is corrupt: {e}") from e
        except OSError as e:
            raise ArchiveError(_io_line(e, "reading", archive)) from e
        except Exception as e:
            if remote is None:
                raise
            raise ArchiveError(storage_error(e, f"reading {archive}")) from None


def _read_stream(
    archive: Path | str, raw: IO[bytes], visitor: _Visitor, manifest_only: bool, expect: bytes | None
) -> tuple[ArchiveManifest, bytes]:
    codec = _sniff(archive, raw)
    if codec == "zstd":
        _check_zstd_frames(archive, raw)
    with _decompressor(codec, raw) as stream, tarfile.open(fileobj=stream, mode="r|", bufsize=_CHUNK) as tar:
        return _read_members(archive, codec, stream, tar, visitor, manifest_only, expect)


def _read_members(
    archive: Path | str,
    codec: str,
    stream: IO[bytes],
    tar: tarfile.TarFile,
    visitor: _Visitor,
    manifest_only: bool,
    expect: bytes | None,
) -> tuple[ArchiveManifest, bytes]:
    first = tar.next()
    if first is None or first.name != MANIFEST_MEMBER or not first.isreg():
        raise ArchiveError(f"{archive} is not a tbhub archive: its first member is not {MANIFEST_MEMBER}")
    if first.size > _MAX_MANIFEST:
        raise ArchiveError(f"{archive}: {MANIFEST_MEMBER} is implausibly large ({first.size} bytes)")
    reader = tar.extractfile(first)
    assert reader is not None  # a regular file always has a reader
    text = reader.read()
    if expect is not None and text != expect:
        raise ArchiveError(f"{archive}: the embedded manifest differs from the one written")
    manifest = ArchiveManifest.from_json(text)
    if manifest.compression != codec:
        raise ArchiveError(f"{archive}: manifest says {manifest.compression} but the archive is {codec}")
    if manifest_only:
        return manifest, text
    visitor.begin(manifest)
    files = {f.path: f for f in manifest.files}
    folders = set(manifest.folders)
    seen: set[str] = set()
    # tar.next(), not iteration: iterating a stream-mode TarFile yields MANIFEST.json again.
    while (member := tar.next()) is not None:
        name = member.name
        if name == RUN_MEMBER:
            rel = "."
        elif name.startswith(RUN_MEMBER + "/"):
            rel = name[len(RUN_MEMBER) + 1 :]
            _check_relpath(rel, f"member in {archive}:")
        else:
            raise ArchiveError(f"{archive}: unexpected member {name!r} outside {RUN_MEMBER}/")
        if not (member.isdir() or member.type in (tarfile.REGTYPE, tarfile.AREGTYPE)):
            kind = _TAR_TYPES.get(member.type, "special file")
            raise ArchiveError(f"{archive}: member {name!r} is a {kind}: only regular files and folders are allowed")
        if rel in seen:
            raise ArchiveError(f"{archive}: member {name!r} appears twice")
        seen.add(rel)
        if member.isdir():
            if rel != "." and rel not in folders:
                raise ArchiveError(f"{archive}: folder {name!r} is not in the manifest")
            visitor.folder(rel)
            continue
        entry = files.get(rel)
        if entry is None:
            raise ArchiveError(f"{archive}: file {name!r} is not in the manifest")
        if member.size != entry.size:
            raise ArchiveError(f"{archive}: {rel} is {member.size} bytes, the manifest says {entry.size}")
        data = tar.extractfile(member)
        assert data is not None
        sink = visitor.open_file(entry)
        try:
            digest = hashlib.sha256()
            size = 0
            while chunk := data.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                if sink is not None:
                    sink.write(chunk)
            if size != entry.size or digest.hexdigest() != entry.sha256:
                raise ArchiveError(f"{archive}: {rel} does not match the manifest (size or SHA-256 differs)")
        except BaseException:
            if sink is not None:
                with contextlib.suppress(Exception):
                    sink.close()
            raise
        if sink is not None:
            visitor.close_file(entry, sink)
    # tarfile ends quietly at a damaged header: missing entries are how that shows.
    missing = (files.keys() | folders | {"."}) - seen
    if missing:
        raise ArchiveError(f"{archive} is incomplete: {len(missing)} entries missing, e.g. {min(missing)!r}")
    # Read to the very end: the last frame's checksum is checked there, and nothing may follow.
    while rest := stream.read(_CHUNK):
        if rest.count(0) != len(rest):
            raise ArchiveError(f"{archive}: unexpected data after the end of the tar archive")
    return manifest, text


def _sidecar_for(archive: Path) -> Path | None:
    for suffix in SUFFIXES.values():
        if archive.name.endswith(suffix):
            return archive.with_name(archive.name[: -len(suffix)] + SIDECAR_SUFFIX)
    return None


# --- public verbs ------------------------------------------------------------------------------------


def archive_run(
    run_dir: Path | RunSource,
    dest: Path | str,
    *,
    endpoint: str,
    dataset: str,
    run: str,
    relpath: str,
    summary: Mapping[str, Any] | None = None,
    compression: str | None = None,
    now: datetime | None = None,
    zstd_threads: int = 0,
    storage_options: Mapping[str, Any] | None = None,
) -> ArchiveResult:
    """Archive ``run_dir`` to ``dest/{endpoint}/{dataset}/{run}--{stamp}.tar.zst`` plus its sidecar.

    ``relpath`` is the run's path below its log root (where ``restore_archive`` puts it back);
    ``compression`` is ``"zstd"`` (the default when zstandard is importable) or ``"gzip"``; ``now``
    (default: the current time; naive means UTC) names the archive and is its ``created_at``;
    ``zstd_threads`` > 0 compresses with that many worker threads.

    Order of work: snapshot the run folder; stream every file once into a hidden body file while
    hashing it (refusing the run if any file differs from the snapshot, or the snapshot afterwards
    differs); write manifest + body to a hidden temporary archive and fsync it; re-read and verify
    it in full; publish it under a name not yet taken (a hard link, which cannot replace anything);
    fsync the folder; write the sidecar (temporary, fsync, rename) and fsync the folder again.

    Raises ``ArchiveError`` for symlinks or special files in the run, a run that changed while it was
    read, a destination inside the run, or any I/O error; nothing final is left behind then.

    ``run_dir`` may be a ``RunSource`` (``ObjectRunSource``: a run in object storage) and ``dest`` a
    URL (``s3://bucket/archives``, reached with ``storage_options``); see "Object storage" above.
    """
    if isinstance(dest, str) and is_url(dest):
        return _archive_to_remote(
            run_dir, dest, storage_options or {}, endpoint=endpoint, dataset=dataset, run=run, relpath=relpath,
            summary=summary, compression=compression, now=now, zstd_threads=zstd_threads,
        )
    dest = Path(dest)
    started = time.monotonic()
    codec = _choose_codec(compression)
    for what, value in (("endpoint", endpoint), ("dataset", dataset), ("run", run)):
        _check_name(value, what)
    _check_relpath(relpath, "run path")
    summary_dict = dict(summary) if summary is not None else {}
    try:
        json.dumps(summary_dict)
    except (TypeError, ValueError) as e:
        raise ArchiveError(f"the run summary cannot be stored as JSON: {e}") from e
    if now is None:
        created = datetime.now(UTC)
    else:
        created = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    dest = Path(os.path.abspath(dest))
    source: RunSource
    if isinstance(run_dir, str | os.PathLike):
        run_dir = Path(os.path.abspath(run_dir))
        real_run, real_dest = os.path.realpath(run_dir), os.path.realpath(dest)
        if real_dest == real_run or real_dest.startswith(real_run + os.sep):
            raise ArchiveError(f"destination {dest} lies inside the run folder {run_dir}")
        source = _LocalSource(run_dir)
    else:
        source = run_dir

    stem = f"{run}--{created:%Y%m%dT%H%M%SZ}"
    suffix = SUFFIXES[codec]
    if len(f"{stem}-999{SIDECAR_SUFFIX}".encode()) > 255:  # NAME_MAX, with room for a -N suffix
        raise ArchiveError(f"run name {run!r} is too long for an archive file name")

    before = source.snapshot()
    folder = dest / endpoint / dataset
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ArchiveError(_io_line(e, "creating", folder)) from e
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    body = folder / _temp_name(f"{stem}{suffix}", token, ".body")
    temp = folder / _temp_name(f"{stem}{suffix}", token)
    try:
        digests = _write_body(source, before, body, codec, zstd_threads)
        after = source.snapshot()
        if after != before:
            raise source.changed(_describe_change(before, after))
        manifest = ArchiveManifest(
            format=FORMAT,
            endpoint=endpoint,
            dataset=dataset,
            run=run,
            relpath=relpath,
            original_path=source.location,
            created_at=created.isoformat(timespec="microseconds"),
            compression=codec,
            files=tuple(
                ManifestFile(path, e.size, digests[path], e.mtime_ns, e.mode)
                for path, e in sorted(before.items())
                if not e.is_dir
            ),
            folders=tuple(sorted(path for path, e in before.items() if e.is_dir and path != ".")),
            summary=summary_dict,
            folder_mtimes_ns={path: e.mtime_ns for path, e in sorted(before.items()) if e.is_dir},
            folder_modes={path: e.mode for path, e in sorted(before.items()) if e.is_dir},
        )
        manifest_bytes = manifest.to_json().encode("utf-8")
        _write_archive(temp, manifest_bytes, body, codec, created)
        _remove(body)
        _read_archive(temp, expect=manifest_bytes)
        final, sidecar = _publish(temp, folder, stem, suffix)
    except BaseException:
        _remove(body)
        _remove(temp)
        raise
    try:
        _write_replace(sidecar, manifest_bytes, token)
        _fsync_dir(folder)
    except BaseException:
        # Without its sidecar the archive would still be complete, but the caller is told it failed
        # and must not delete the run: leave nothing that looks like a success.
        _remove(final)
        raise
    size = final.stat().st_size
    return ArchiveResult(final, sidecar, manifest, manifest.size_bytes, size, time.monotonic() - started)


def _publish(temp: Path, folder: Path, stem: str, suffix: str) -> tuple[Path, Path]:
    """Give the verified ``temp`` its final name, one not taken yet; (archive, sidecar path)."""
    for n in range(1000):
        name = stem if n == 0 else f"{stem}-{n}"
        final, sidecar = folder / f"{name}{suffix}", folder / f"{name}{SIDECAR_SUFFIX}"
        if os.path.lexists(final) or os.path.lexists(sidecar):
            continue
        try:
            os.link(temp, final, follow_symlinks=False)  # atomic and never replaces an existing name
        except FileExistsError:
            continue
        except OSError as e:
            if e.errno not in _NO_HARDLINKS:
                raise ArchiveError(_io_line(e, "publishing", final)) from e
            # No hard links here: rename instead. Only a second writer choosing this same name in
            # this same moment (a race the lexists check cannot see) could be overwritten.
            try:
                os.rename(temp, final)
            except OSError as e2:
                raise ArchiveError(_io_line(e2, "publishing", final)) from e2
        else:
            _remove(temp)
        try:
            _fsync_dir(folder)
        except BaseException:
            _remove(final)  # not known to be durable: the caller must not delete the run
            raise
        return final, sidecar
    raise ArchiveError(f"no free archive name for {stem} in {folder}")


def _remote_folder(url: str, options: Mapping[str, Any]) -> tuple[fsspec.AbstractFileSystem, str]:
    try:
        return open_filesystem(url, options)
    except LogRootError as e:
        raise ArchiveError(e.message) from None


def _put_new(fs: fsspec.AbstractFileSystem, local: Path, path: str) -> None:
    """Upload ``local`` to ``path`` unless something is there; ``FileExistsError`` if it is.

    On S3 an exclusive create (``If-None-Match: *``) makes the check and the write one step; stores
    without it get a check, then the write.
    """
    try:
        fs.put_file(str(local), path, mode="create")
    except TypeError:  # an fsspec backend without exclusive create
        if fs.exists(path):
            raise FileExistsError(path) from None
        fs.put_file(str(local), path)


def _archive_to_remote(
    run_dir: Path | RunSource,
    dest: str,
    options: Mapping[str, Any],
    **kwargs: Any,
) -> ArchiveResult:
    """``archive_run`` into an object-storage folder: built locally, uploaded, read back and verified."""
    started = time.monotonic()
    fs, root = _remote_folder(dest, options)
    with tempfile.TemporaryDirectory(prefix="tbhub-archive-") as tmp:
        local = archive_run(run_dir, Path(tmp), **kwargs)
        assert isinstance(local.archive, Path)
        manifest = local.manifest
        suffix = SUFFIXES[manifest.compression]
        stem = local.archive.name[: -len(suffix)]
        folder = f"{root}/{kwargs['endpoint']}/{kwargs['dataset']}"
        manifest_bytes = manifest.to_json().encode("utf-8")
        for n in range(1000):
            name = stem if n == 0 else f"{stem}-{n}"
            final, sidecar = f"{folder}/{name}{suffix}", f"{folder}/{name}{SIDECAR_SUFFIX}"
            url = join(dest, kwargs["endpoint"], kwargs["dataset"], f"{name}{suffix}")
            try:
                if fs.exists(sidecar):
                    continue
                _put_new(fs, local.archive, final)
            except FileExistsError:
                continue
            except Exception as e:
                raise ArchiveError(storage_error(e, f"uploading {url}")) from None
            break
        else:
            where = join(dest, kwargs["endpoint"], kwargs["dataset"])
            raise ArchiveError(f"no free archive name for {stem} in {where}")
        try:
            # What the store holds, not what was sent, is what the run's deletion relies on.
            _read_archive(url, expect=manifest_bytes, remote=_RemoteFile(fs, final))
            fs.pipe_file(sidecar, manifest_bytes)
        except BaseException as e:
            with contextlib.suppress(Exception):
                fs.rm(final)
            if isinstance(e, ArchiveError) or not isinstance(e, Exception):
                raise
            raise ArchiveError(storage_error(e, f"writing {url}")) from None
        sidecar_url = join(dest, kwargs["endpoint"], kwargs["dataset"], f"{name}{SIDECAR_SUFFIX}")
        return ArchiveResult(url, sidecar_url, manifest, local.bytes_in, local.bytes_out, time.monotonic() - started)


def _write_replace(path: Path, data: bytes, token: str) -> None:
    temp = path.with_name(_temp_name(path.name, token, ".sidecar"))
    out = _DestFile(temp)
    try:
        out.write(data)
        out.sync()
        out.close()
        try:
            os.replace(temp, path)
        except OSError as e:
            raise ArchiveError(_io_line(e, "writing", path)) from e
    except BaseException:
        with contextlib.suppress(ArchiveError):
            out.close()
        _remove(temp)
        raise


def _remote_sidecar(path: str) -> str | None:
    for suffix in SUFFIXES.values():
        if path.endswith(suffix):
            return path[: -len(suffix)] + SIDECAR_SUFFIX
    return None


def _remote_archive(archive: str, options: Mapping[str, Any]) -> _RemoteFile:
    fs, path = _remote_folder(archive, options)
    return _RemoteFile(fs, path)


def verify_archive(archive: Path | str, *, storage_options: Mapping[str, Any] | None = None) -> ArchiveManifest:
    """Re-read the whole archive and check it against its embedded manifest; that manifest.

    Every member must be a regular file or folder the manifest lists, every file's size and SHA-256
    must match, nothing may be missing, the compression checksums must hold to the last byte, and a
    sidecar manifest, if present, must be byte-identical to the embedded one. ``ArchiveError``
    otherwise. ``archive`` may be a URL (``s3://...``), reached with ``storage_options``.
    """
    if isinstance(archive, str) and is_url(archive):
        remote = _remote_archive(archive, storage_options or {})
        manifest, text = _read_archive(archive, remote=remote)
        side_path = _remote_sidecar(remote.path)
        if side_path is not None:
            try:
                side = remote.fs.cat_file(side_path)
            except FileNotFoundError:
                return manifest
            except Exception as e:
                raise ArchiveError(storage_error(e, f"reading the sidecar of {archive}")) from None
            if side != text:
                raise ArchiveError(f"the sidecar of {archive} differs from the manifest inside it")
        return manifest
    archive = Path(archive)
    manifest, text = _read_archive(archive)
    sidecar = _sidecar_for(archive)
    if sidecar is not None and os.path.lexists(sidecar):
        try:
            side = sidecar.read_bytes()
        except OSError as e:
            raise ArchiveError(_io_line(e, "reading", sidecar)) from e
        if side != text:
            raise ArchiveError(f"{sidecar} differs from the manifest inside {archive}")
    return manifest


class _Restorer(_Visitor):
    """Extracts into a hidden sibling of the target, then renames it into place (see ``finish``)."""

    def __init__(self, archive: Path, root: Path, relpath: str | None) -> None:
        self.archive = archive
        self.root = root
        self.relpath = relpath
        self.manifest: ArchiveManifest | None = None
        self.target: Path | None = None
        self.temp: Path | None = None
        self.reserved = False

    def _path(self, rel: str) -> Path:
        assert self.temp is not None
        return self.temp if rel == "." else self.temp / rel

    def begin(self, manifest: ArchiveManifest) -> None:
        self.manifest = manifest
        target = self.root / (self.relpath or manifest.relpath)
        if os.path.lexists(target):
            raise ArchiveError(f"{target} already exists: not restoring over it")
        temp = target.parent / f"{RESTORE_PREFIX}{_shorten(target.name)}-{os.getpid()}-{secrets.token_hex(4)}"
        _make_parents_inside(self.root, target)
        try:
            temp.mkdir()
        except OSError as e:
            raise ArchiveError(_io_line(e, "creating", temp)) from e
        self.target, self.temp = target, temp

    def folder(self, rel: str) -> None:
        self._makedirs(self._path(rel))

    def _makedirs(self, path: Path) -> None:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ArchiveError(_io_line(e, "creating", path)) from e

    def open_file(self, entry: ManifestFile) -> _Sink:
        path = self._path(entry.path)
        self._makedirs(path.parent)
        return _DestFile(path, 0o600)

    def close_file(self, entry: ManifestFile, sink: _Sink) -> None:
        assert isinstance(sink, _DestFile)
        try:
            try:
                # Setuid/setgid/sticky bits are not restored (as tar's "data" filter does).
                os.fchmod(sink.fd, entry.mode & 0o777)
                os.utime(sink.fd, ns=(entry.mtime_ns, entry.mtime_ns))
            except OSError as e:
                raise ArchiveError(_io_line(e, "restoring metadata of", sink.path)) from e
            sink.sync()
        finally:
            sink.close()

    def finish(self) -> Path:
        manifest, target, temp = self.manifest, self.target, self.temp
        assert manifest is not None and target is not None and temp is not None
        # Deepest first: a folder's mtime is set after everything inside it exists, and its mode
        # (which may deny us writing) after everything inside it is done.
        for rel in [*sorted(manifest.folders, key=lambda p: -p.count("/")), "."]:
            path = self._path(rel)
            self._makedirs(path)  # a listed folder the archive held no member for
            _fsync_dir(path)
            mode, mtime = manifest.folder_modes.get(rel), manifest.folder_mtimes_ns.get(rel)
            try:
                if mode is not None:
                    os.chmod(path, mode & 0o777)
                if mtime is not None:
                    os.utime(path, ns=(mtime, mtime))
            except OSError as e:
                raise ArchiveError(_io_line(e, "restoring metadata of", path)) from e
        _check_parent_inside(self.root, target)  # again: a folder may have become a symlink meanwhile
        # mkdir claims the name atomically (EEXIST if anything is there); renaming a folder onto our
        # own empty folder then replaces it atomically, and fails if anything was put inside meanwhile.
        try:
            target.mkdir()
        except FileExistsError:
            raise ArchiveError(f"{target} already exists: not restoring over it") from None
        except OSError as e:
            raise ArchiveError(_io_line(e, "creating", target)) from e
        self.reserved = True
        try:
            os.rename(temp, target)
        except OSError as e:
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise ArchiveError(f"{target} was created by someone else while restoring: not replacing it") from e
            raise ArchiveError(_io_line(e, "renaming into", target)) from e
        self.reserved = False
        self.temp = None
        _fsync_dir(target.parent)
        return target

    def abort(self) -> None:
        if self.temp is not None:
            shutil.rmtree(self.temp, ignore_errors=True)
        if self.reserved and self.target is not None:
            with contextlib.suppress(OSError):
                self.target.rmdir()  # only ever our own empty placeholder


def _check_parent_inside(root: Path, target: Path) -> None:
    """Refuse a target whose parent folder resolves outside ``root`` (a symlinked dataset folder)."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(target.parent)
    if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
        raise ArchiveError(f"{target.parent} leads outside the log root {root} (to {real}): not restoring there")


def _make_parents_inside(root: Path, target: Path) -> None:
    """Create the folders between ``root`` and ``target`` one by one, each checked to resolve inside
    ``root`` before anything is created in it: a dataset folder that is a symlink out of the log root
    must not carry the restored files elsewhere."""
    folder = root
    for part in target.relative_to(root).parts[:-1]:
        folder = folder / part
        _check_parent_inside(root, folder / "x")
        try:
            folder.mkdir()
        except FileExistsError:
            pass
        except OSError as e:
            raise ArchiveError(_io_line(e, "creating", folder)) from e
    _check_parent_inside(root, target)


def restore_archive(
    archive: Path | str,
    root: Path | ObjectLogStore,
    *,
    relpath: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Path | str:
    """Restore ``archive`` to ``root/(relpath or manifest.relpath)``; the restored run folder.

    ``root`` (the log root) must exist; the target must not (``ArchiveError`` even for an empty
    folder). Members must be regular files or folders under ``run/`` that the manifest lists, with
    safe relative paths (no absolute paths, no ``..``). The run is extracted into a hidden sibling
    ``.tbhub-restore-*``, each file is checked against its size and SHA-256 while it is written and
    gets its mode and mtime (ns) from the manifest, folders get their mtimes, everything is fsynced,
    and the folder is renamed into place; the parent is fsynced. On any error the sibling is removed
    and the target does not exist.

    ``archive`` may be a URL (read with ``storage_options``), and ``root`` an object-storage log root
    (then the restored run's URL is returned; see "Object storage" above).
    """
    remote = _remote_archive(archive, storage_options or {}) if isinstance(archive, str) and is_url(archive) else None
    if isinstance(root, ObjectLogStore):
        return _restore_to_store(archive, root, relpath, remote)
    archive = archive if remote is not None else Path(archive)
    root = Path(os.path.abspath(root))
    if not root.is_dir():
        raise ArchiveError(f"log root {root} is not an existing folder")
    if relpath is not None:
        _check_relpath(relpath, "restore path")
    restorer = _Restorer(Path(str(archive)), root, relpath)
    try:
        _read_archive(archive, restorer, remote=remote)
        return restorer.finish()
    except BaseException:
        restorer.abort()
        raise


def _restore_to_store(
    archive: Path | str, store: ObjectLogStore, relpath: str | None, remote: _RemoteFile | None
) -> str:
    """Restore into object storage: target checked free, extracted and verified locally, uploaded under
    a restore marker (the run stays hidden until complete), sizes checked, marker removed."""
    manifest = _read_archive(archive, manifest_only=True, remote=remote)[0]
    target = relpath or manifest.relpath
    _check_relpath(target, "restore path")
    where = store.url(target)
    try:
        if store.exists(target):
            raise ArchiveError(f"{where} already exists: not restoring over it")
    except LogRootError as e:
        raise ArchiveError(e.message) from None
    with tempfile.TemporaryDirectory(prefix="tbhub-restore-") as tmp:
        local = Path(tmp) / "run"
        _restorer = _Restorer(Path(str(archive)), Path(tmp), "run")
        try:
            _read_archive(archive, _restorer, remote=remote)
            _restorer.finish()
        except BaseException:
            _restorer.abort()
            raise
        base = store.resolve(target)
        try:
            marker = store.put_marker(target, RESTORE_MARKER, {"archive": str(archive)})
        except Exception as e:
            raise ArchiveError(storage_error(e, f"writing to {where}")) from None
        try:
            for entry in manifest.files:
                try:
                    _put_new(store.fs, local / entry.path, f"{base}/{entry.path}")
                except FileExistsError:
                    raise ArchiveError(f"{where}/{entry.path} was created by someone else while restoring") from None
            uploaded = {o.relpath: o.size for o in store.run_objects(target)}
            expected = {f.path: f.size for f in manifest.files}
            if uploaded != expected:
                raise ArchiveError(f"{where} does not hold what was uploaded; restore it again")
            store.fs.rm(marker)
        except BaseException as e:
            # Remove what this restore uploaded (the marker last): the archive still holds the run.
            with contextlib.suppress(Exception):
                store.remove_marked(target, marker)
            if isinstance(e, ArchiveError) or not isinstance(e, Exception):
                raise
            raise ArchiveError(storage_error(e, f"writing to {where}")) from None
    return where


def _load_manifest(archive: Path) -> ArchiveManifest:
    sidecar = _sidecar_for(archive)
    if sidecar is not None:
        try:
            text = sidecar.read_bytes()
        except FileNotFoundError:
            pass  # killed between publishing the archive and writing its sidecar
        except OSError as e:
            raise ArchiveError(_io_line(e, "reading", sidecar)) from e
        else:
            return ArchiveManifest.from_json(text)
    return _read_archive(archive, manifest_only=True)[0]


def _list_remote(dest: str, options: Mapping[str, Any]) -> list[ArchiveInfo]:
    fs, root = _remote_folder(dest, options)
    bucket = root.split("/", 1)[0]
    try:
        fs.ls(bucket, detail=False)  # FileNotFoundError only when the bucket itself is missing
        listing = cast(dict[str, dict[str, Any]], fs.find(root, detail=True, withdirs=False))
    except FileNotFoundError:
        raise ArchiveError(f"archive folder {dest}: bucket {bucket} does not exist") from None
    except Exception as e:
        raise ArchiveError(storage_error(e, f"listing {dest}")) from None
    found: list[ArchiveInfo] = []
    for path, info in listing.items():
        if not path.endswith(tuple(SUFFIXES.values())) or _PARTIAL.search(path):
            continue
        url = join(dest, path[len(root) + 1 :]) if path.startswith(root + "/") else path
        side = _remote_sidecar(path)
        try:
            manifest: ArchiveManifest | None = None
            if side is not None and side in listing:
                manifest = ArchiveManifest.from_json(fs.cat_file(side))
            if manifest is None:
                manifest = _read_archive(url, manifest_only=True, remote=_RemoteFile(fs, path))[0]
        except Exception as e:
            log.warning("skipping %s: %s", url, e)
            continue
        found.append(ArchiveInfo(url, manifest, int(info.get("size") or 0)))
    found.sort(key=lambda info: (info.manifest.created, str(info.archive)))
    return found


def list_archives(dest: Path | str, *, storage_options: Mapping[str, Any] | None = None) -> list[ArchiveInfo]:
    """Every complete archive below ``dest``, oldest ``created_at`` first (then by path).

    Temporary files of running or interrupted ``archive_run`` calls are ignored. The manifest comes
    from the sidecar, or from the archive's first member when there is no sidecar. An archive whose
    manifest cannot be read is logged and left out. A missing ``dest`` holds no archives. ``dest``
    may be a URL (``s3://bucket/archives``), listed with ``storage_options``.
    """
    if isinstance(dest, str) and is_url(dest):
        return _list_remote(dest, storage_options or {})
    found: list[ArchiveInfo] = []
    for dirpath, _dirnames, filenames in os.walk(dest):
        for name in filenames:
            if _PARTIAL.search(name) or not name.endswith(tuple(SUFFIXES.values())):
                continue
            path = Path(dirpath) / name
            try:
                manifest = _load_manifest(path)
                size = path.stat().st_size
            except (ArchiveError, OSError) as e:
                log.warning("skipping %s: %s", path, e)
                continue
            found.append(ArchiveInfo(path, manifest, size))
    found.sort(key=lambda info: (info.manifest.created, str(info.archive)))
    return found


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except OSError:
        return True  # EPERM: alive, someone else's
    return True


def remove_partial_archives(dest: Path) -> list[Path]:
    """Delete the temporary files interrupted ``archive_run`` calls left below ``dest``; them, sorted.

    Temporary files carry the writer's pid: those of a process still alive on this machine are left
    alone (an archive in progress). Run it on one host at a time when ``dest`` is shared.
    """
    removed: list[Path] = []
    for dirpath, _dirnames, filenames in os.walk(dest):
        for name in filenames:
            match = _PARTIAL.search(name)
            if not name.startswith(".") or match is None or _pid_alive(int(match.group(1))):
                continue
            path = Path(dirpath) / name
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as e:
                raise ArchiveError(_io_line(e, "removing", path)) from e
            removed.append(path)
    return sorted(removed)
