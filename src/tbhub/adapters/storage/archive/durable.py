"""Local files written for crashes: always new (``O_EXCL``, ``O_NOFOLLOW``), fsynced, every error one line.

``archive_run`` writes its body, archive and sidecar through here, ``restore_archive`` the run's files.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from tbhub.adapters.storage.archive.format import temp_name
from tbhub.errors import ArchiveError


def io_line(e: OSError, verb: str, path: os.PathLike[str] | str) -> str:
    """One line for the user: ``no space left on device writing /cold/ep/ds/.run...partial-12-ab``."""
    reason = e.strerror or str(e) or type(e).__name__
    return f"{reason[:1].lower()}{reason[1:]} {verb} {path}"


@contextlib.contextmanager
def io_errors(verb: str, path: os.PathLike[str] | str) -> Iterator[None]:
    """An ``OSError`` inside becomes an ``ArchiveError`` of one line: ``io_line(e, verb, path)``."""
    try:
        yield
    except OSError as e:
        raise ArchiveError(io_line(e, verb, path)) from e


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
        with io_errors("creating", path):
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
        self._open = True

    def write(self, data: bytes) -> int:
        with io_errors("writing", self.path):
            _write_all(self.fd, data)
        self.size += len(data)
        return len(data)

    def sync(self) -> None:
        with io_errors("syncing", self.path):
            os.fsync(self.fd)

    def close(self) -> None:
        if self._open:
            self._open = False
            try:
                os.close(self.fd)
            except OSError as e:  # NFS reports some write errors only here
                raise ArchiveError(io_line(e, "closing", self.path)) from e


def fsync_dir(path: Path) -> None:
    with io_errors("syncing", path):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def make_folders(path: Path) -> None:
    """``mkdir -p path``."""
    with io_errors("creating", path):
        path.mkdir(parents=True, exist_ok=True)


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
        with io_errors("writing", path):
            os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(ArchiveError):
            out.close()
        remove(temp)
        raise
