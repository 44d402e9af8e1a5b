"""The local-disk ``LogStore``: a log root that is a folder on this machine (or a mounted volume)."""

from __future__ import annotations

import os
import shutil
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from tbhub.core.models import FileEntry, SkippedEntry
from tbhub.errors import LogRootError, UnsafePathError

__all__ = ["TRASH_PREFIX", "WORK_PREFIX", "LocalDiscovery", "LocalLogStore"]

#: Hidden siblings that ``clean`` renames runs to before removing them; never runs themselves.
TRASH_PREFIX = ".tbhub-trash-"
#: Every hidden working folder of tbhub's (trash, a restore in progress) starts so; discovery skips them.
WORK_PREFIX = ".tbhub-"


@dataclass
class LocalDiscovery:
    files: list[FileEntry] = field(default_factory=list)
    skipped: list[SkippedEntry] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DeleteOutcome:
    relpath: str
    kind: str  # "folder", "file" or "link"
    trash: str | None  # where the run sat between rename and removal


def fsync_dir(path: str) -> None:
    """Make a rename or removal inside ``path`` durable (a no-op where folders cannot be synced)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _is_event_file(name: str) -> bool:
    # TensorBoard's own rule (io_wrapper.IsTensorFlowEventsFile): the name contains "tfevents".
    return "tfevents" in name


class LocalLogStore:
    """A log root on local disk. Read-only: nothing here writes below ``root``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.path.abspath(os.fspath(root))
        self._real_root = os.path.realpath(self.root)

    def check(self) -> None:
        """Raise ``LogRootError`` unless the root is a readable folder."""
        if not os.path.exists(self.root):
            raise LogRootError(f"log root {self.root} does not exist")
        if not os.path.isdir(self.root):
            raise LogRootError(f"log root {self.root} is not a folder")
        if not os.access(self.root, os.R_OK | os.X_OK):
            raise LogRootError(f"log root {self.root} is not readable (permission denied)")

    def _inside(self, real: str) -> bool:
        return real == self._real_root or real.startswith(self._real_root + os.sep)

    def discover(self) -> LocalDiscovery:
        """Every event file below the root, sorted by relpath; escaping symlinks are skipped.

        Symlinks that stay inside the root are followed once (a folder reached twice is not walked
        again, so link cycles end); symlinks whose target lies outside are reported, never followed.
        Only event files and symlinks cost a system call each: folder types come from the directory
        listing itself, which keeps a rescan close to a bare ``os.scandir`` walk.
        """
        self.check()
        found = LocalDiscovery()
        root_stat = os.stat(self.root)
        # (device, inode) of every folder walked: the guard against symlink cycles. Plain sub-folders
        # share the root's device except below a mount point, where a repeat walk is merely wasted.
        seen_dirs = {(root_stat.st_dev, root_stat.st_ino)}
        stack: list[tuple[str, str, int]] = [(self.root, "", root_stat.st_dev)]
        files = found.files
        while stack:
            folder, prefix, device = stack.pop()
            try:
                with os.scandir(folder) as entries:
                    for entry in entries:
                        name = entry.name
                        # Cheapest tests first: d_type answers is_dir/is_symlink without a system call.
                        try:
                            if entry.is_dir(follow_symlinks=False):
                                if name.startswith(WORK_PREFIX):
                                    continue
                                key = (device, entry.inode())
                                if key not in seen_dirs:
                                    seen_dirs.add(key)
                                    stack.append((entry.path, f"{prefix}{name}/", device))
                            elif entry.is_symlink():
                                if not name.startswith(WORK_PREFIX):
                                    self._follow_link(entry, prefix + name, found, seen_dirs, stack)
                            elif "tfevents" in name and entry.is_file(follow_symlinks=False):
                                st = entry.stat(follow_symlinks=False)
                                files.append(FileEntry(prefix + name, st.st_ino, st.st_size, st.st_mtime_ns))
                        except FileNotFoundError:
                            continue  # removed while we walked
                        except PermissionError:
                            found.skipped.append(SkippedEntry(prefix + name, "permission denied"))
            except PermissionError:
                found.skipped.append(SkippedEntry(prefix.rstrip("/") or ".", "permission denied"))
            except (FileNotFoundError, NotADirectoryError):
                continue  # removed while we walked
        found.files.sort(key=lambda f: f.relpath)
        found.skipped.sort(key=lambda s: s.relpath)
        return found

    def _follow_link(
        self,
        entry: os.DirEntry[str],
        rel: str,
        found: LocalDiscovery,
        seen_dirs: set[tuple[int, int]],
        stack: list[tuple[str, str, int]],
    ) -> None:
        real = os.path.realpath(entry.path)
        if not self._inside(real):
            found.skipped.append(SkippedEntry(rel, f"symlink leaves the log root (-> {real})"))
            return
        try:
            st = os.stat(entry.path)
        except FileNotFoundError:
            found.skipped.append(SkippedEntry(rel, "broken symlink"))
            return
        if stat.S_ISDIR(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if key not in seen_dirs:
                seen_dirs.add(key)
                stack.append((entry.path, rel + "/", st.st_dev))
        elif stat.S_ISREG(st.st_mode) and _is_event_file(entry.name):
            found.files.append(FileEntry(rel, st.st_ino, st.st_size, st.st_mtime_ns))

    def exists(self, relpath: str) -> bool:
        """True when ``relpath`` (a file, a folder or a link) is there."""
        return os.path.lexists(self.resolve(relpath))

    def url(self, relpath: str = "") -> str:
        """Where ``relpath`` is (the root itself for ``""``), for messages."""
        return self.resolve(relpath) if relpath else str(self.root)

    def resolve(self, relpath: str) -> str:
        """The absolute path of ``relpath``; raises ``UnsafePathError`` if it escapes the root."""
        if not relpath or relpath.startswith("/") or "\x00" in relpath:
            raise UnsafePathError(f"path {relpath!r} is not inside log root {self.root}")
        parts = Path(relpath).parts
        if ".." in parts:
            raise UnsafePathError(f"path {relpath!r} escapes log root {self.root} ('..')")
        path = os.path.join(self.root, relpath)
        parent = os.path.realpath(os.path.dirname(path))
        if not self._inside(parent):
            raise UnsafePathError(f"path {relpath!r} escapes log root {self.root} (symlinked folder)")
        return path

    def open(self, relpath: str) -> BinaryIO:
        return open(self.resolve(relpath), "rb")

    def local_path(self, relpath: str) -> str | None:
        return self.resolve(relpath)

    # -- deletion (only the manage commands call these) ---------------------------------------------
    def _run_path(self, relpath: str) -> str:
        """The path of a run to delete, after refusing anything that is not strictly inside the root."""
        path = self.resolve(relpath)
        norm = os.path.normpath(path)
        if norm == os.path.normpath(self.root):
            raise UnsafePathError(f"refusing to delete the log root {self.root} itself")
        return norm

    def delete_run(self, relpath: str, *, remove_links: bool = False) -> DeleteOutcome:
        """Remove a run (a folder, or a loose event file) below the root, crash-safely.

        The run is first renamed to a hidden trash sibling (atomic: a crash leaves it either complete
        in place or complete in the trash, never half-deleted in place), the parent folder is
        synced, then the trash is removed and the parent synced again. A run that is a symlink is
        refused unless ``remove_links``; then only the link is removed, never its target. Raises
        ``UnsafePathError`` for anything outside the root and ``OSError`` when the disk refuses.
        """
        path = self._run_path(relpath)
        st = os.lstat(path)
        parent = os.path.dirname(path)
        if stat.S_ISLNK(st.st_mode):
            target = os.path.realpath(path)
            if not remove_links:
                raise UnsafePathError(
                    f"run {relpath} is a symlink to {target}; not deleted (ask explicitly to remove only the link)"
                )
            os.unlink(path)
            fsync_dir(parent)
            return DeleteOutcome(relpath, "link", None)
        if os.path.realpath(path) != path and not self._inside(os.path.realpath(path)):
            raise UnsafePathError(f"run {relpath} resolves outside log root {self.root}")
        trash = os.path.join(parent, f"{TRASH_PREFIX}{os.path.basename(path)}-{time.time_ns()}-{os.getpid()}")
        os.rename(path, trash)
        fsync_dir(parent)
        kind = "folder" if stat.S_ISDIR(st.st_mode) else "file"
        self._remove_trash(trash)
        fsync_dir(parent)
        return DeleteOutcome(relpath, kind, trash)

    @staticmethod
    def _remove_trash(trash: str) -> None:
        if os.path.isdir(trash) and not os.path.islink(trash):
            shutil.rmtree(trash)
        else:
            os.unlink(trash)

    def leftover_trash(self) -> list[str]:
        """Trash left by an interrupted delete: in the root and in dataset folders (relpaths)."""
        found: list[str] = []
        for folder, prefix in [(self.root, ""), *self._dataset_folders()]:
            try:
                with os.scandir(folder) as entries:
                    found.extend(prefix + e.name for e in entries if e.name.startswith(TRASH_PREFIX))
            except OSError:
                continue
        return sorted(found)

    def _dataset_folders(self) -> list[tuple[str, str]]:
        try:
            with os.scandir(self.root) as entries:
                return [
                    (e.path, e.name + "/")
                    for e in entries
                    if e.is_dir(follow_symlinks=False) and not e.name.startswith(TRASH_PREFIX)
                ]
        except OSError:
            return []

    def finish_trash(self) -> list[str]:
        """Remove the trash an interrupted delete left behind; returns what was removed."""
        removed = []
        for relpath in self.leftover_trash():
            path = os.path.join(self.root, relpath)
            self._remove_trash(path)
            fsync_dir(os.path.dirname(path))
            removed.append(relpath)
        return removed

    def commit(self) -> None:
        """Make every completed deletion durable: on local disk each was synced as it happened."""
