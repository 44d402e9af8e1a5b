"""Where archives are kept: a local folder or a prefix in object storage, behind two small interfaces.

``archive_place`` and ``archive_file`` decide once, from the path or URL they are given, which
implementation serves a call (``local.py`` or ``remote.py``); the verbs in ``write.py`` and
``read.py`` are written once against these interfaces and never ask which one they hold.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, Any, Protocol

from tbhub.adapters.storage.archive.local import LocalArchive, LocalFolder
from tbhub.adapters.storage.archive.remote import ObjectArchive, ObjectFolder
from tbhub.adapters.storage.remote import is_url


class ArchiveFile(Protocol):
    """One stored archive, read as a stream: a local file, or an object.

    ``name`` is what messages and results call it: its path, or its URL. ``open`` raises
    ``ArchiveError`` (one line) when the archive cannot be opened. ``sidecar`` gives the sidecar
    manifest's name and bytes, None when the archive has none. ``client_errors`` are the errors other
    than ``OSError`` the open stream may raise (an object store's client has its own tree); readers
    report them as one line.
    """

    @property
    def name(self) -> Path | str: ...

    @property
    def client_errors(self) -> tuple[type[Exception], ...]: ...

    def open(self) -> IO[bytes]: ...

    def sidecar(self) -> tuple[Path | str, bytes] | None: ...

    def size(self) -> int: ...


class ArchivePlace(Protocol):
    """A folder of archives (``DEST``): a local folder, or a prefix in object storage.

    ``archive_run`` builds and verifies every archive in a local folder that ``staging`` provides,
    under a temporary name, then hands it to ``publish``, which gives it a final name never taken
    before (``free_names``), makes sure it is durable and complete where it now lies, writes its
    sidecar after it, and returns (archive, sidecar, archive size). Nothing final remains when
    ``publish`` fails: the caller must not delete the run then.

    ``check_outside`` refuses a place inside the local run folder being archived; ``archives``
    yields every complete archive found below the place (temporary files are not archives).
    All raise ``ArchiveError`` with one line.
    """

    def check_outside(self, run_dir: Path) -> None: ...

    def staging(self, endpoint: str, dataset: str) -> AbstractContextManager[Path]: ...

    def publish(
        self, built: Path, endpoint: str, dataset: str, stem: str, suffix: str, manifest: bytes, token: str
    ) -> tuple[Path | str, Path | str, int]: ...

    def archives(self) -> Iterator[ArchiveFile]: ...


def archive_place(dest: Path | str, storage_options: Mapping[str, Any] | None) -> ArchivePlace:
    """The archive folder ``dest``: a URL (``s3://bucket/archives``, reached with ``storage_options``)
    or a local path."""
    if isinstance(dest, str) and is_url(dest):
        return ObjectFolder(dest, storage_options or {})
    return LocalFolder(Path(dest))


def archive_file(archive: Path | str, storage_options: Mapping[str, Any] | None) -> ArchiveFile:
    """The archive at ``archive``: a URL (reached with ``storage_options``) or a local path."""
    if isinstance(archive, str) and is_url(archive):
        return ObjectArchive.at(archive, storage_options or {})
    return LocalArchive(Path(archive))
