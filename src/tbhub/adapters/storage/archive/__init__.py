"""Archive a run to cold storage, verify the archive, restore it byte-identical.

``tbhub clean --archive-to DEST`` archives a run before it deletes what is often a team's only copy
of it. The package, by concern::

    format.py       the manifest, member and file names, what a valid manifest is
    compression.py  zstd frames or gzip members: chosen, written, sniffed, checked
    durable.py      local files that are always new, fsynced, with one-line errors
    sources.py      where a run is read from: RunSource (a local folder, or ObjectRunSource)
    stream.py       reading an archive through, checking every member against the manifest
    place.py        where archives are kept: ArchivePlace and ArchiveFile, chosen once per call
    local.py        ... in a local folder
    remote.py       ... in object storage, and restoring into an object-storage log root
    write.py        archive_run, remove_partial_archives
    read.py         verify_archive, list_archives, restore_archive

Invariants
----------
* ``archive_run`` only reads the run folder and only writes below ``DEST``.
* A final archive name appears only for an archive that was fsynced and then re-read in full, with
  every file's size and SHA-256 checked against the manifest. Until then it has a hidden temporary
  name (``.NAME.partial-PID-XXXXXXXX``): a crash at any moment leaves either such temporary files,
  which ``list_archives`` ignores and ``remove_partial_archives`` deletes, or a complete archive.
  The sidecar is written after the archive (an archive may lack its sidecar; its embedded manifest
  says the same), never before.
* Archives are never overwritten: a name already taken (same run, same second) gets ``-1``, ``-2``...
* Only regular files and folders are archived. A run holding a symlink, FIFO, socket or device is
  refused, and so is a run that changes while it is read (sizes, mtimes, entries): it is still being
  written, and the caller must not delete it.
* ``restore_archive`` never writes over anything and never outside the log root (``read.py``).
* Every failure is an ``ArchiveError`` with a one-line message (``no space left on device writing
  /cold/...``); the temporary files of the failed call are removed before it is raised.

Runs, archive folders and restore targets may also be URLs (``s3://bucket/prefix``); every verb takes
``storage_options`` (``Config.storage_options``) for them. The format is the same (``remote.py``).
"""

from tbhub.adapters.storage.archive.format import (
    FORMAT,
    MANIFEST_MEMBER,
    RESTORE_PREFIX,
    SIDECAR_SUFFIX,
    SUFFIXES,
    ArchiveInfo,
    ArchiveManifest,
    ArchiveResult,
    ManifestFile,
)
from tbhub.adapters.storage.archive.place import ArchiveFile, ArchivePlace
from tbhub.adapters.storage.archive.read import list_archives, restore_archive, verify_archive
from tbhub.adapters.storage.archive.sources import ObjectRunSource, RunSource
from tbhub.adapters.storage.archive.write import archive_run, remove_partial_archives

__all__ = [
    "FORMAT",
    "MANIFEST_MEMBER",
    "RESTORE_PREFIX",
    "SIDECAR_SUFFIX",
    "SUFFIXES",
    "ArchiveFile",
    "ArchiveInfo",
    "ArchiveManifest",
    "ArchivePlace",
    "ArchiveResult",
    "ManifestFile",
    "ObjectRunSource",
    "RunSource",
    "archive_run",
    "list_archives",
    "remove_partial_archives",
    "restore_archive",
    "verify_archive",
]
