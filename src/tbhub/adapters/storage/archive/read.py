"""Reading archives back: list them, verify them, restore a run from one byte-identical.

``restore_archive`` never writes over anything: the target must not exist (not even empty). It
extracts into a hidden sibling (``.tbhub-restore-...``), verifies every file, sets mtimes and modes,
and renames the folder into place. Every folder it creates on the way, and the target's parent again
just before the rename, must resolve inside the log root: a dataset folder that is a symlink out of
the log root cannot carry the restored run elsewhere.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tbhub.adapters.storage.archive.durable import DestFile, fsync_dir, io_errors, io_line, make_folders
from tbhub.adapters.storage.archive.format import (
    RESTORE_PREFIX,
    ArchiveInfo,
    ArchiveManifest,
    ManifestFile,
    check_relpath,
    shorten,
)
from tbhub.adapters.storage.archive.place import ArchiveFile, archive_file, archive_place
from tbhub.adapters.storage.archive.remote import check_free, upload_run
from tbhub.adapters.storage.archive.stream import Sink, Visitor, read_archive
from tbhub.adapters.storage.objectstore import ObjectLogStore
from tbhub.errors import ArchiveError

log = logging.getLogger(__name__)


def verify_archive(archive: Path | str, *, storage_options: Mapping[str, Any] | None = None) -> ArchiveManifest:
    """Re-read the whole archive and check it against its embedded manifest; that manifest.

    Every member must be a regular file or folder the manifest lists, every file's size and SHA-256
    must match, nothing may be missing, the compression checksums must hold to the last byte, and a
    sidecar manifest, if present, must be byte-identical to the embedded one. ``ArchiveError``
    otherwise. ``archive`` may be a URL (``s3://...``), reached with ``storage_options``.
    """
    file = archive_file(archive, storage_options)
    manifest, text = read_archive(file)
    sidecar = file.sidecar()
    if sidecar is not None and sidecar[1] != text:
        raise ArchiveError(f"{sidecar[0]} differs from the manifest inside {file.name}")
    return manifest


def list_archives(dest: Path | str, *, storage_options: Mapping[str, Any] | None = None) -> list[ArchiveInfo]:
    """Every complete archive below ``dest``, oldest ``created_at`` first (then by path).

    Temporary files of running or interrupted ``archive_run`` calls are ignored. The manifest comes
    from the sidecar, or from the archive's first member when there is no sidecar. An archive whose
    manifest cannot be read is logged and left out. A missing ``dest`` holds no archives. ``dest``
    may be a URL (``s3://bucket/archives``), listed with ``storage_options``.
    """
    found: list[ArchiveInfo] = []
    for file in archive_place(dest, storage_options).archives():
        try:
            manifest = _load_manifest(file)
            size = file.size()
        except (ArchiveError, OSError) as e:
            log.warning("skipping %s: %s", file.name, e)
            continue
        found.append(ArchiveInfo(file.name, manifest, size))
    found.sort(key=lambda info: (info.manifest.created, str(info.archive)))
    return found


def _load_manifest(archive: ArchiveFile) -> ArchiveManifest:
    sidecar = archive.sidecar()
    if sidecar is not None:
        return ArchiveManifest.from_json(sidecar[1])
    return read_archive(archive, manifest_only=True)[0]


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

    ``archive`` may be a URL (read with ``storage_options``), and ``root`` an object-storage log root:
    the run is then restored locally first and uploaded (see ``remote.py``), and its URL returned.
    """
    file = archive_file(archive, storage_options)
    if isinstance(root, ObjectLogStore):
        return _restore_to_store(file, root, relpath)
    root = Path(os.path.abspath(root))
    if not root.is_dir():
        raise ArchiveError(f"log root {root} is not an existing folder")
    if relpath is not None:
        check_relpath(relpath, "restore path")
    return _extract(file, root, relpath)


def _restore_to_store(archive: ArchiveFile, store: ObjectLogStore, relpath: str | None) -> str:
    manifest = read_archive(archive, manifest_only=True)[0]
    target = relpath or manifest.relpath
    check_relpath(target, "restore path")
    check_free(store, target)
    with tempfile.TemporaryDirectory(prefix="tbhub-restore-") as tmp:
        folder = _extract(archive, Path(tmp), "run")
        upload_run(store, target, folder, manifest, str(archive.name))
    return store.url(target)


def _extract(archive: ArchiveFile, root: Path, relpath: str | None) -> Path:
    restorer = _Restorer(root, relpath)
    try:
        read_archive(archive, restorer)
        return restorer.finish()
    except BaseException:
        restorer.abort()
        raise


class _Restorer(Visitor):
    """Extracts into a hidden sibling of the target, then renames it into place (see ``finish``)."""

    def __init__(self, root: Path, relpath: str | None) -> None:
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
        temp = target.parent / f"{RESTORE_PREFIX}{shorten(target.name)}-{os.getpid()}-{secrets.token_hex(4)}"
        _make_parents_inside(self.root, target)
        with io_errors("creating", temp):
            temp.mkdir()
        self.target, self.temp = target, temp

    def folder(self, rel: str) -> None:
        make_folders(self._path(rel))

    def open_file(self, entry: ManifestFile) -> Sink:
        path = self._path(entry.path)
        make_folders(path.parent)
        return DestFile(path, 0o600)

    def close_file(self, entry: ManifestFile, sink: Sink) -> None:
        assert isinstance(sink, DestFile)
        try:
            with io_errors("restoring metadata of", sink.path):
                # Setuid/setgid/sticky bits are not restored (as tar's "data" filter does).
                os.fchmod(sink.fd, entry.mode & 0o777)
                os.utime(sink.fd, ns=(entry.mtime_ns, entry.mtime_ns))
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
            make_folders(path)  # a listed folder the archive held no member for
            fsync_dir(path)
            mode, mtime = manifest.folder_modes.get(rel), manifest.folder_mtimes_ns.get(rel)
            with io_errors("restoring metadata of", path):
                if mode is not None:
                    os.chmod(path, mode & 0o777)
                if mtime is not None:
                    os.utime(path, ns=(mtime, mtime))
        _check_parent_inside(self.root, target)  # again: a folder may have become a symlink meanwhile
        # mkdir claims the name atomically (EEXIST if anything is there); renaming a folder onto our
        # own empty folder then replaces it atomically, and fails if anything was put inside meanwhile.
        try:
            target.mkdir()
        except FileExistsError:
            raise ArchiveError(f"{target} already exists: not restoring over it") from None
        except OSError as e:
            raise ArchiveError(io_line(e, "creating", target)) from e
        self.reserved = True
        try:
            os.rename(temp, target)
        except OSError as e:
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise ArchiveError(f"{target} was created by someone else while restoring: not replacing it") from e
            raise ArchiveError(io_line(e, "renaming into", target)) from e
        self.reserved = False
        self.temp = None
        fsync_dir(target.parent)
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
        with io_errors("creating", folder), contextlib.suppress(FileExistsError):
            folder.mkdir()
    _check_parent_inside(root, target)
