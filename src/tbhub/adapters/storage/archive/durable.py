"""Local files written for crashes: always new (``O_EXCL``, ``O_NOFOLLOW``), fsynced, every error one line.

``archive_run`` writes its body, archive and sidecar through here, ``restore_archive`` the run's files.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from tbhub.adapters.storage.archive.format import temp_name
from tbhub.errors import ArchiveError


def io_line(e: OSError, verb: str, path: os.PathLike[str] | str) -> str:
    """One line for the user: ``no space left on device writing /cold/ep/ds/.run...partial-12-ab``."""
    reason = e.strerror or str(e) or type(e).__name__
    return f"{reason[:1].lower()}{reason[1:]} {verb} {path}"


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until everything is written (a regular file may take less near a full disk)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class DestFile:
    """A new file (never an existing one: O_EXCL, O_NOFOLLOW) whose errors become ``ArchiveError``."""

    def __init__(self, path: Path, mode: int = 0o644) -> None:
        self.path = path
        self.size = 0
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
        except OSError as e:
            raise ArchiveError(io_line(e, "creating", path)) from e
        self._open = True

    def write(self, data: bytes) -> int:
        try:
            _write_all(self.fd, data)
        except OSError as e:
            raise ArchiveError(io_line(e, "writing", self.path)) from e
        self.size += len(data)
        return len(data)

    def sync(self) -> None:
        try:
            os.fsync(self.fd)
        except OSError as e:
            raise ArchiveError(io_line(e, "syncing", self.path)) from e

    def close(self) -> None:
        if self._open:
            self._open = False
            try:
                os.close(self.fd)
            except OSError as e:  # NFS reports some write errors only here
                raise ArchiveError(io_line(e, "closing", self.path)) from e


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as e:
        raise ArchiveError(io_line(e, "syncing", path)) from e


def make_folders(path: Path) -> None:
    """``mkdir -p path``."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ArchiveError(io_line(e, "creating", path)) from e


def remove(path: Path | None) -> None:
    """Best-effort cleanup on an error path: the original error matters more than this one."""
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink()


def write_replace(path: Path, data: bytes, token: str) -> None:
    """Write ``path`` whole: a temporary file, fsynced, renamed over it (the folder is not fsynced)."""
    temp = path.with_name(temp_name(path.name, token, ".sidecar"))
    out = DestFile(temp)
    try:
        out.write(data)
        out.sync()
        out.close()
        try:
            os.replace(temp, path)
        except OSError as e:
            raise ArchiveError(io_line(e, "writing", path)) from e
    except BaseException:
        with contextlib.suppress(ArchiveError):
            out.close()
        remove(temp)
        raise
