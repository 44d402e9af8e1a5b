"""What the remote root holds (its event files, listed safely) and what each one needs to be mirrored."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tbhub.adapters.storage.local import WORK_PREFIX
from tbhub.adapters.storage.mirror.manifest import ObjectState
from tbhub.adapters.storage.objectstore import content_tag, hidden_runs
from tbhub.errors import LogRootError

__all__ = [
    "RemoteFiles",
    "RemoteObject",
    "fetch_kind",
    "list_event_files",
    "local_path",
    "object_etag",
    "one_line",
    "safe_relpath",
]

# The package's one logger, named as it was when the mirror was one module.
logger = logging.getLogger("tbhub.adapters.storage.mirror")


class RemoteFiles(Protocol):
    """The part of an ``fsspec`` filesystem the mirror uses (s3fs, gcsfs, ``memory``, ...)."""

    def find(self, path: str, *, detail: bool) -> Mapping[str, Mapping[str, Any]]: ...

    def ls(self, path: str, *, detail: bool) -> Sequence[Mapping[str, Any]]: ...

    def cat_file(self, path: str, start: int | None = None, end: int | None = None) -> bytes: ...

    def info(self, path: str) -> Mapping[str, Any]: ...

    def invalidate_cache(self, path: str | None = None) -> None: ...


@dataclass(frozen=True, slots=True)
class RemoteObject(ObjectState):
    """One listed event file: its state now, its key below the root and its path for the filesystem."""

    relpath: str
    path: str


def safe_relpath(relpath: str) -> str | None:
    """``relpath`` if it names a path strictly inside a folder, else ``None``.

    Object keys are arbitrary strings: ``../x``, ``a//b``, ``/etc/x`` and ``a/./b`` are all valid keys
    that would resolve elsewhere, or ambiguously, on a local disk.
    """
    if not relpath or relpath.startswith("/") or "\x00" in relpath:
        return None
    if any(part in ("", ".", "..") for part in relpath.split("/")):
        return None
    return relpath


def local_path(local_dir: Path, relpath: str) -> Path:
    """Where the copy of ``relpath`` lives in ``local_dir`` (absolute); ``LogRootError`` if outside it."""
    target = local_dir / relpath
    # safe_relpath already rules out escapes; this is the belt to its braces.
    if not os.path.abspath(target).startswith(str(local_dir) + os.sep):
        raise LogRootError(f"key {relpath!r} leaves the mirror folder")
    return target


def object_etag(info: Mapping[str, Any]) -> str | None:
    """The object's content tag, read as the scanner reads it (``objectstore.content_tag``)."""
    return content_tag(info)


def _mtime(info: Mapping[str, Any]) -> float | None:
    value = info.get("LastModified", info.get("mtime", info.get("updated", info.get("created"))))
    if isinstance(value, dt.datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return None


def one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _list_by_prefix(fs: RemoteFiles, remote_root: str, requests: int) -> Mapping[str, Mapping[str, Any]]:
    """Every object below ``remote_root``: one delimited listing of its top, then each top-level
    prefix (a dataset) listed on its own, ``requests`` at once. A listing's pages follow one another
    (each names where the next starts), so a big root listed as one takes a round trip per 1,000 keys."""
    try:
        top = fs.ls(remote_root, detail=True)
    except FileNotFoundError:
        return fs.find(remote_root, detail=True)  # an empty prefix, or no bucket: find tells which
    listing: dict[str, Mapping[str, Any]] = {
        str(info["name"]): info for info in top if info.get("type", "file") == "file"
    }
    folders = [str(info["name"]) for info in top if info.get("type") == "directory"]
    if folders:
        with ThreadPoolExecutor(max(1, min(requests, len(folders))), thread_name_prefix="tbhub-list") as pool:
            for found in pool.map(lambda folder: fs.find(folder, detail=True), folders):
                listing.update(found)
    return listing


#: Above this many keys (a listing page) a root is listed by prefix, several listings at once.
PAGE_KEYS = 1000


def list_event_files(
    fs: RemoteFiles, remote_root: str, label: str, *, by_prefix: bool = False, requests: int = 1
) -> tuple[dict[str, RemoteObject], list[str]]:
    """The event files under ``remote_root`` by relpath, and the keys rejected as unsafe.

    ``by_prefix``: list each top-level prefix on its own, ``requests`` at once (for a root of more
    than one listing page); else one recursive listing. Raises ``LogRootError`` (naming the root by
    ``label``) when the root cannot be listed.
    """
    try:
        # Listings are cached by fsspec filesystems (s3fs's dircache): always ask the store.
        fs.invalidate_cache(remote_root)
        listing = _list_by_prefix(fs, remote_root, requests) if by_prefix else fs.find(remote_root, detail=True)
    except FileNotFoundError:
        raise LogRootError(f"log root {label} does not exist") from None
    except Exception as exc:  # any transport error (botocore, aiohttp, ...) means "cannot list now"
        raise LogRootError(one_line(f"cannot list {label}: {type(exc).__name__}: {exc}")) from None
    prefix = remote_root + "/"
    found: dict[str, RemoteObject] = {}
    rejected: list[str] = []
    # A run being deleted or restored (``clean``/``restore`` on the bucket) carries a marker at its
    # top: the scanner hides it, and so does the mirror, so TensorBoard never shows a half-deleted
    # or half-restored run (a marked run's local copy is removed like a deleted one).
    hidden = hidden_runs(path[len(prefix) :] for path in listing if path.startswith(prefix))
    for path, info in listing.items():
        if info.get("type", "file") != "file" or not path.startswith(prefix):
            continue
        relpath = path[len(prefix) :]
        name = relpath.rsplit("/", 1)[-1]
        if "tfevents" not in name or relpath.startswith(hidden):
            continue
        if safe_relpath(relpath) is None:
            rejected.append(relpath)
            continue
        if any(part.startswith(WORK_PREFIX) for part in relpath.split("/")):
            continue
        found[relpath] = RemoteObject(
            size=int(info.get("size") or 0), etag=object_etag(info), mtime=_mtime(info), relpath=relpath, path=path
        )
    if rejected:
        logger.warning("mirror of %s: ignoring keys that leave the log root: %s", label, rejected[:5])
    return found, rejected


def fetch_kind(obj: RemoteObject, old: ObjectState | None, local_dir: Path) -> str | None:
    """What ``obj`` needs, given its manifest entry ``old`` and its copy in ``local_dir``: ``None`` (up
    to date), ``"append"`` (grown since ``old``), ``"replace"``, ``"whole"`` (no copy) or ``"resume"``
    (a copy the manifest does not describe, as a killed sync leaves it: continued from its length
    once its tail matches)."""
    try:
        local_size: int | None = local_path(local_dir, obj.relpath).stat().st_size
    except OSError:  # missing, or a name this disk cannot hold: the fetch reports that one file
        local_size = None
    if local_size is None:
        return "whole"
    if old is not None and local_size == old.size:
        if obj.size == old.size and obj.etag == old.etag and (obj.etag is not None or obj.mtime == old.mtime):
            return None
        return "append" if obj.size > old.size > 0 else "replace"
    return "resume" if 0 < local_size <= obj.size else "replace"
