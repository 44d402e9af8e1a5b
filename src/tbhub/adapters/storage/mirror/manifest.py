"""The mirror's own files in its folder: the manifest of what it holds, the folder lock, temporary names."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LOCK", "MANIFEST", "ObjectState", "folder_lock", "load_manifest", "part_path", "read_manifest", "save_manifest",
]

#: The mirror's record of what it holds; its presence means one sync has completed.
MANIFEST = ".tbhub-mirror.json"
#: Held with ``flock`` during a sync, so two processes sharing a state directory take turns.
LOCK = ".tbhub-mirror.lock"
_PART = ".tbhub-part-"  # temporary names: no "tfevents" in them, so TensorBoard never reads one
_MANIFEST_VERSION = 1


@dataclass(frozen=True, slots=True)
class ObjectState:
    """What tells one version of an object's bytes from another: as listed now, or as last mirrored."""

    size: int
    etag: str | None
    mtime: float | None


def part_path(folder: Path, key: str) -> Path:
    """The temporary name in ``folder`` under which ``key`` is written before it is renamed into place:
    always the same for one key, so a sync killed while writing it is continued by the next."""
    return folder / f"{_PART}{hashlib.blake2b(key.encode(), digest_size=16).hexdigest()}"


def read_manifest(path: Path, remote_root: str) -> dict[str, ObjectState] | None:
    """The mirrored state per relpath; ``None`` when there is no manifest, or one that cannot be
    trusted (another version, or another remote root: the endpoint now points elsewhere)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != _MANIFEST_VERSION:
        return None
    if data.get("remote_root") != remote_root:
        return None
    try:
        # Manifests written before the one ETag reader kept S3's quotes: read them as it does now.
        return {rel: ObjectState(int(e["size"]), e["etag"].strip('"') if e["etag"] else None, e["mtime"])
                for rel, e in data["files"].items()}
    except (KeyError, TypeError, ValueError):
        return None


def load_manifest(path: Path, remote_root: str) -> dict[str, ObjectState]:
    """``read_manifest``, empty instead of ``None``."""
    return read_manifest(path, remote_root) or {}


def save_manifest(path: Path, remote_root: str, manifest: Mapping[str, ObjectState]) -> None:
    """Write the manifest atomically (a temporary name, then a rename)."""
    data = {
        "version": _MANIFEST_VERSION,
        "remote_root": remote_root,
        "files": {
            rel: {"size": e.size, "etag": e.etag, "mtime": e.mtime} for rel, e in sorted(manifest.items())
        },
    }
    part = part_path(path.parent, path.name)
    part.write_text(json.dumps(data))
    os.replace(part, path)


@contextlib.contextmanager
def folder_lock(local_dir: Path) -> Iterator[None]:
    """Hold the folder's lock file (creating the folder if need be) while the block runs."""
    local_dir.mkdir(parents=True, exist_ok=True)
    with open(local_dir / LOCK, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
