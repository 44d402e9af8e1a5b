"""Restore an archived run into its endpoint's log root, and list the archives of a place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tbhub.adapters.storage.archive import ArchiveInfo, list_archives, restore_archive, verify_archive
from tbhub.adapters.storage.objectstore import ObjectLogStore
from tbhub.app.cleanup.places import archive_destination
from tbhub.app.services import Services
from tbhub.errors import UsageError

__all__ = ["Restored", "archives_at", "restore_run"]


@dataclass(frozen=True, slots=True)
class Restored:
    archive: str
    endpoint: str
    dataset: str
    run: str
    path: str


def restore_run(services: Services, archive: str, endpoint: str | None = None) -> Restored:
    """Verify ``archive`` (a file or an ``s3://`` URL) and put its run back, byte-identical with its mtimes,
    into ``endpoint`` (default: the one it was archived from). Never overwrites an existing run, and
    never writes outside the log root (every parent of the target must resolve inside it)."""
    source = archive_destination(archive)
    if source is None:
        raise UsageError("name an archive to restore")
    if isinstance(source, Path) and not source.is_file():
        raise UsageError(f"archive {archive} does not exist")
    options = services.storage_options(endpoint) if isinstance(source, str) else None
    manifest = verify_archive(source, storage_options=options)
    name = endpoint or manifest.endpoint
    store = services.store(name)
    root = store if isinstance(store, ObjectLogStore) else Path(services.spec(name).logdir)
    target = restore_archive(source, root, storage_options=options)
    return Restored(str(source), name, manifest.dataset, manifest.run, str(target))


def archives_at(services: Services, dest: str, endpoint: str | None = None) -> list[ArchiveInfo]:
    """The archives in ``dest`` (a folder, or an ``s3://`` URL reached with ``endpoint``'s settings)."""
    where = archive_destination(dest)
    if where is None:
        raise UsageError("name an archive folder or URL")
    if isinstance(where, Path):
        if not where.is_dir():
            raise UsageError(f"archive folder {dest} does not exist")
        return list_archives(where)
    return list_archives(where, storage_options=services.storage_options(endpoint))
