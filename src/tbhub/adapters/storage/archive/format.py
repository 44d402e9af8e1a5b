"""The archive format: the manifest, the names of members and files, what a valid manifest is.

Layout under an archive folder ``DEST``::

    DEST/{endpoint}/{dataset}/{run}--{YYYYmmddTHHMMSSZ}.tar.zst        (.tar.gz without zstandard)
    DEST/{endpoint}/{dataset}/{run}--{YYYYmmddTHHMMSSZ}.manifest.json  the sidecar manifest

An archive is a plain PAX tar, compressed as a sequence of zstd frames (or gzip members), so
``tar --zstd -xf`` / ``tar -xzf`` read it too::

    MANIFEST.json            first member, in a frame of its own: readable without the rest
    run/                     the run folder itself (with its mtime)
    run/train/               every sub-folder, empty ones included
    run/train/events...      regular files, in path order, with their mtimes to the nanosecond

The manifest lists every file with its size and SHA-256: reading an archive checks each against it
(``stream.py``). Files being written carry a hidden temporary name (``.NAME.partial-PID-XXXXXXXX``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TypeVar

from tbhub.errors import ArchiveError

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
#: How much is read or written at once.
CHUNK: Final = 1 << 20
#: Read-ahead when streaming an object (a run file, a remote archive): few requests, bounded memory.
STREAM_BLOCK: Final = 8 << 20
PARTIAL: Final = re.compile(r"\.partial-(\d+)-[0-9a-f]{8}\Z")
_SHA256: Final = re.compile(r"[0-9a-f]{64}\Z")
#: Tries before an archive name counts as unavailable (same run, same second: ``-1``, ``-2``...).
_NAME_TRIES: Final = 1000

_T = TypeVar("_T")


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
        check_relpath(relpath, "run path")
        try:
            aware = datetime.fromisoformat(created_at).tzinfo is not None
        except ValueError:
            aware = False
        if not aware:
            raise ArchiveError(f"invalid manifest: created_at {created_at!r} is not an ISO 8601 time with a zone")
        folders = tuple(_get(data, "folders", list))
        if not all(isinstance(folder, str) for folder in folders):
            raise ArchiveError("invalid manifest: folders must be strings")
        files = [_file(item, i) for i, item in enumerate(_get(data, "files", list))]
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


def _file(item: object, i: int) -> ManifestFile:
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
    return entry


def check_relpath(path: str, what: str) -> None:
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
        check_relpath(path, "path in manifest")
        parent = path.rpartition("/")[0]
        if parent and parent not in folder_set:
            raise ArchiveError(f"invalid manifest: {path!r} lies in a folder the manifest does not list")
    if len(folder_set) != len(folders) or len(set(paths)) != len(paths) or folder_set.intersection(paths):
        raise ArchiveError("invalid manifest: a path is listed twice")
    if not set(folder_keys) <= folder_set | {"."}:
        raise ArchiveError("invalid manifest: folder metadata names a folder the manifest does not list")


def check_name(value: str, what: str) -> None:
    if value in ("", ".", "..") or "/" in value or "\0" in value:
        raise ArchiveError(f"invalid {what} name {value!r}: must be a single path component")


# --- file names --------------------------------------------------------------------------------------


def archive_stem(run: str, created: datetime) -> str:
    """``{run}--{YYYYmmddTHHMMSSZ}``, the name of an archive and its sidecar without their suffixes."""
    stem = f"{run}--{created:%Y%m%dT%H%M%SZ}"
    if len(f"{stem}-999{SIDECAR_SUFFIX}".encode()) > 255:  # NAME_MAX, with room for a -N suffix
        raise ArchiveError(f"run name {run!r} is too long for an archive file name")
    return stem


def free_names(stem: str) -> Iterator[str]:
    """The names an archive may take, in order: ``stem``, ``stem-1``, ``stem-2``... (never overwritten)."""
    for n in range(_NAME_TRIES):
        yield stem if n == 0 else f"{stem}-{n}"


def no_free_name(stem: str, where: object) -> ArchiveError:
    return ArchiveError(f"no free archive name for {stem} in {where}")


def is_archive_name(name: str) -> bool:
    """True for a complete archive's name (temporary names end in ``.partial-PID-XXXXXXXX`` instead)."""
    return name.endswith(tuple(SUFFIXES.values()))


def sidecar_name(name: str) -> str | None:
    """The sidecar of the archive named ``name`` (a file name, path or URL); None if not an archive name."""
    for suffix in SUFFIXES.values():
        if name.endswith(suffix):
            return name[: -len(suffix)] + SIDECAR_SUFFIX
    return None


def shorten(name: str, limit: int = 160) -> str:
    """``name`` cut to ``limit`` UTF-8 bytes: temporary names must stay below NAME_MAX (255 bytes)."""
    return name.encode("utf-8")[:limit].decode("utf-8", "ignore")


def temp_name(name: str, token: str, kind: str = "") -> str:
    """``.NAME{kind}.partial-PID-XXXXXXXX``; ``kind`` keeps one call's temporary files apart when
    ``NAME`` had to be cut."""
    return f".{shorten(name)}{kind}.partial-{token}"
