"""Archives in a local folder: the local ``ArchivePlace`` and ``ArchiveFile``.

An archive is built in its own destination folder under a hidden temporary name and published with
a hard link, which never replaces an existing name; the folder is fsynced after the archive and
again after its sidecar (written to a temporary name, fsynced, renamed).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, ClassVar, Final

from tbhub.adapters.liveness import pid_alive
from tbhub.adapters.storage.archive.durable import fsync_dir, io_errors, io_line, make_folders, remove, write_replace
from tbhub.adapters.storage.archive.format import (
    PARTIAL,
    SIDECAR_SUFFIX,
    free_names,
    is_archive_name,
    no_free_name,
    sidecar_name,
)
from tbhub.errors import ArchiveError

# link(2) failing with these means "this filesystem has no hard links" (FUSE mounts of object
# stores, vfat...), not "the name is taken".
_NO_HARDLINKS: Final = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EMLINK})


@dataclass(frozen=True, slots=True)
class LocalArchive:
    """An archive file on a local filesystem."""

    path: Path
    client_errors: ClassVar[tuple[type[Exception], ...]] = ()

    @property
    def name(self) -> Path:
        return self.path

    def open(self) -> IO[bytes]:
        try:
            return open(self.path, "rb")
        except OSError as e:
            raise ArchiveError(io_line(e, "reading", self.path)) from e
        except ValueError as e:  # a NUL byte in the path
            raise ArchiveError(f"reading {self.path}: {e}") from None

    def sidecar(self) -> tuple[Path, bytes] | None:
        name = sidecar_name(self.path.name)
        if name is None:
            return None
        path = self.path.with_name(name)
        if not os.path.lexists(path):
            return None  # killed between publishing the archive and writing its sidecar
        with io_errors("reading", path):
            return path, path.read_bytes()

    def size(self) -> int:
        return self.path.stat().st_size


@dataclass(frozen=True, slots=True)
class LocalFolder:
    """A local archive folder (``root`` as given: ``list_archives`` reports paths below it as such)."""

    root: Path

    def check_outside(self, run_dir: Path) -> None:
        dest = os.path.abspath(self.root)
        real_run, real_dest = os.path.realpath(run_dir), os.path.realpath(dest)
        if real_dest == real_run or real_dest.startswith(real_run + os.sep):
            raise ArchiveError(f"destination {dest} lies inside the run folder {run_dir}")

    @contextmanager
    def staging(self, endpoint: str, dataset: str) -> Iterator[Path]:
        """The archive's own destination folder: publishing it is then a link in the same folder."""
        folder = Path(os.path.abspath(self.root)) / endpoint / dataset
        make_folders(folder)
        yield folder

    def publish(
        self, built: Path, endpoint: str, dataset: str, stem: str, suffix: str, manifest: bytes, token: str
    ) -> tuple[Path, Path, int]:
        folder = built.parent
        final, sidecar = _link(built, folder, stem, suffix)
        try:
            write_replace(sidecar, manifest, token)
            fsync_dir(folder)
        except BaseException:
            # Without its sidecar the archive would still be complete, but the caller is told it failed
            # and must not delete the run: leave nothing that looks like a success.
            remove(final)
            raise
        return final, sidecar, final.stat().st_size

    def archives(self) -> Iterator[LocalArchive]:
        for path in _files(self.root):
            if is_archive_name(path.name):
                yield LocalArchive(path)

    def remove_partials(self) -> list[Path]:
        """Delete the temporary files of dead writers (their pid is in the name); them, sorted."""
        removed: list[Path] = []
        for path in _files(self.root):
            match = PARTIAL.search(path.name)
            if not path.name.startswith(".") or match is None or pid_alive(int(match.group(1))):
                continue
            with io_errors("removing", path), suppress(FileNotFoundError):  # another cleaner was first
                path.unlink()
                removed.append(path)
        return sorted(removed)


def _files(root: Path) -> Iterator[Path]:
    """Every file below ``root`` (none if it does not exist)."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            yield Path(dirpath) / name


def _link(temp: Path, folder: Path, stem: str, suffix: str) -> tuple[Path, Path]:
    """Give the verified ``temp`` its final name, one not taken yet; (archive, sidecar path)."""
    for name in free_names(stem):
        final, sidecar = folder / f"{name}{suffix}", folder / f"{name}{SIDECAR_SUFFIX}"
        if os.path.lexists(final) or os.path.lexists(sidecar):
            continue
        try:
            os.link(temp, final, follow_symlinks=False)  # atomic and never replaces an existing name
        except FileExistsError:
            continue
        except OSError as e:
            if e.errno not in _NO_HARDLINKS:
                raise ArchiveError(io_line(e, "publishing", final)) from e
            # No hard links here: rename instead. Only a second writer choosing this same name in
            # this same moment (a race the lexists check cannot see) could be overwritten.
            try:
                os.rename(temp, final)
            except OSError as e2:
                raise ArchiveError(io_line(e2, "publishing", final)) from e2
        else:
            remove(temp)
        try:
            fsync_dir(folder)
        except BaseException:
            remove(final)  # not known to be durable: the caller must not delete the run
            raise
        return final, sidecar
    raise no_free_name(stem, folder)


