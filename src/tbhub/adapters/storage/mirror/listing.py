"""What the remote root holds (its event files, listed safely) and what each one needs to be mirrored."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
from collections.abc import Mapping
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


def list_event_files(fs: RemoteFiles, remote_root: str, label: str) -> tuple[dict[str, RemoteObject], list[str]]:
    """The event files under ``remote_root`` by relpath, and the keys rejected as unsafe.

    Raises ``LogRootError`` (naming the root by ``label``) when the root cannot be listed.
    """
    try:
        # Listings are cached by fsspec filesystems (s3fs's dircache): always ask the store.
        fs.invalidate_cache(remote_root)
        listing = fs.find(remote_root, detail=True)
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
    to date), ``"append"``, ``"replace"`` or ``"whole"``."""
    try:
        local_size: int | None = local_path(local_dir, obj.relpath).stat().st_size
    except OSError:  # missing, or a name this disk cannot hold: the fetch reports that one file
        local_size = None
    if old is None or local_size != old.size:
        return "whole" if local_size is None else "replace"
    if obj.size == old.size and obj.etag == old.etag and (obj.etag is not None or obj.mtime == old.mtime):
        return None
    if obj.size > old.size > 0:
        return "append"
    return "replace"
