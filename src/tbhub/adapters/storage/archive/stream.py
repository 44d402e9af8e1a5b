"""Reading an archive from end to end, checking that it is valid; a ``Visitor`` sees every entry.

``verify_archive``, ``list_archives`` (without a sidecar), ``restore_archive`` and ``archive_run``
(which re-reads what it wrote) all read through ``read_archive``: what a valid archive is lives here.
"""

from __future__ import annotations

import contextlib
import hashlib
import tarfile
from typing import IO, TYPE_CHECKING, Final, Protocol

from tbhub.adapters.storage.archive.compression import check_zstd_frames, corruption_errors, decompressor, sniff
from tbhub.adapters.storage.archive.durable import io_line
from tbhub.adapters.storage.archive.format import (
    CHUNK,
    MANIFEST_MEMBER,
    RUN_MEMBER,
    ArchiveManifest,
    ManifestFile,
    check_relpath,
)
from tbhub.adapters.storage.objectstore import storage_error
from tbhub.errors import ArchiveError

if TYPE_CHECKING:
    from tbhub.adapters.storage.archive.place import ArchiveFile

_MAX_MANIFEST: Final = 256 << 20
_TAR_TYPES: Final = {
    tarfile.SYMTYPE: "symlink",
    tarfile.LNKTYPE: "hard link",
    tarfile.CHRTYPE: "character device",
    tarfile.BLKTYPE: "block device",
    tarfile.FIFOTYPE: "FIFO",
}


class Sink(Protocol):
    def write(self, data: bytes) -> int: ...

    def close(self) -> None: ...


class Visitor:
    """What to do with an archive's entries while it is verified; the default only verifies."""

    def begin(self, manifest: ArchiveManifest) -> None:
        pass

    def folder(self, rel: str) -> None:
        pass

    def open_file(self, entry: ManifestFile) -> Sink | None:
        return None

    def close_file(self, entry: ManifestFile, sink: Sink) -> None:
        pass


def read_archive(
    archive: ArchiveFile,
    visitor: Visitor | None = None,
    *,
    manifest_only: bool = False,
    expect: bytes | None = None,
) -> tuple[ArchiveManifest, bytes]:
    """Stream through ``archive``, checking everything; the manifest and its exact bytes.

    Checks: the first member is the manifest (equal to ``expect`` if given); every other member is
    ``run`` or below it, a regular file or folder, listed in the manifest, seen once, and every file's
    size and SHA-256 match; nothing in the manifest is missing; the compressed stream is intact to its
    last byte (frame checksums) with nothing but tar padding after the end-of-archive marker.
    """
    name = archive.name
    with archive.open() as raw:
        try:
            return _read_stream(name, raw, visitor or Visitor(), manifest_only, expect)
        except ArchiveError:
            raise
        except corruption_errors() as e:
            raise ArchiveError(f"{name} is corrupt: {e}") from e
        except OSError as e:
            raise ArchiveError(io_line(e, "reading", name)) from e
        except archive.client_errors as e:
            raise ArchiveError(storage_error(e, f"reading {name}")) from None


def _read_stream(
    archive: object, raw: IO[bytes], visitor: Visitor, manifest_only: bool, expect: bytes | None
) -> tuple[ArchiveManifest, bytes]:
    codec = sniff(archive, raw)
    if codec == "zstd":
        check_zstd_frames(archive, raw)
    with decompressor(codec, raw) as stream, tarfile.open(fileobj=stream, mode="r|", bufsize=CHUNK) as tar:
        return _read_members(archive, codec, stream, tar, visitor, manifest_only, expect)


def _read_members(
    archive: object,
    codec: str,
    stream: IO[bytes],
    tar: tarfile.TarFile,
    visitor: Visitor,
    manifest_only: bool,
    expect: bytes | None,
) -> tuple[ArchiveManifest, bytes]:
    first = tar.next()
    if first is None or first.name != MANIFEST_MEMBER or not first.isreg():
        raise ArchiveError(f"{archive} is not a tbhub archive: its first member is not {MANIFEST_MEMBER}")
    if first.size > _MAX_MANIFEST:
        raise ArchiveError(f"{archive}: {MANIFEST_MEMBER} is implausibly large ({first.size} bytes)")
    reader = tar.extractfile(first)
    assert reader is not None  # a regular file always has a reader
    text = reader.read()
    if expect is not None and text != expect:
        raise ArchiveError(f"{archive}: the embedded manifest differs from the one written")
    manifest = ArchiveManifest.from_json(text)
    if manifest.compression != codec:
        raise ArchiveError(f"{archive}: manifest says {manifest.compression} but the archive is {codec}")
    if manifest_only:
        return manifest, text
    visitor.begin(manifest)
    files = {f.path: f for f in manifest.files}
    folders = set(manifest.folders)
    seen: set[str] = set()
    # tar.next(), not iteration: iterating a stream-mode TarFile yields MANIFEST.json again.
    while (member := tar.next()) is not None:
        rel = _member_path(archive, member)
        if rel in seen:
            raise ArchiveError(f"{archive}: member {member.name!r} appears twice")
        seen.add(rel)
        if member.isdir():
            if rel != "." and rel not in folders:
                raise ArchiveError(f"{archive}: folder {member.name!r} is not in the manifest")
            visitor.folder(rel)
            continue
        entry = files.get(rel)
        if entry is None:
            raise ArchiveError(f"{archive}: file {member.name!r} is not in the manifest")
        if member.size != entry.size:
            raise ArchiveError(f"{archive}: {rel} is {member.size} bytes, the manifest says {entry.size}")
        data = tar.extractfile(member)
        assert data is not None
        _check_file(archive, data, entry, visitor)
    # tarfile ends quietly at a damaged header: missing entries are how that shows.
    missing = (files.keys() | folders | {"."}) - seen
    if missing:
        raise ArchiveError(f"{archive} is incomplete: {len(missing)} entries missing, e.g. {min(missing)!r}")
    # Read to the very end: the last frame's checksum is checked there, and nothing may follow.
    while rest := stream.read(CHUNK):
        if rest.count(0) != len(rest):
            raise ArchiveError(f"{archive}: unexpected data after the end of the tar archive")
    return manifest, text


def _member_path(archive: object, member: tarfile.TarInfo) -> str:
    """The run-relative path of a member (``"."`` for the run itself); only safe regular files and folders."""
    name = member.name
    if name == RUN_MEMBER:
        rel = "."
    elif name.startswith(RUN_MEMBER + "/"):
        rel = name[len(RUN_MEMBER) + 1 :]
        check_relpath(rel, f"member in {archive}:")
    else:
        raise ArchiveError(f"{archive}: unexpected member {name!r} outside {RUN_MEMBER}/")
    if not (member.isdir() or member.type in (tarfile.REGTYPE, tarfile.AREGTYPE)):
        kind = _TAR_TYPES.get(member.type, "special file")
        raise ArchiveError(f"{archive}: member {name!r} is a {kind}: only regular files and folders are allowed")
    return rel


def _check_file(archive: object, data: IO[bytes], entry: ManifestFile, visitor: Visitor) -> None:
    """Read one file member, checking its size and SHA-256, and hand its bytes to the visitor's sink."""
    sink = visitor.open_file(entry)
    try:
        digest = hashlib.sha256()
        size = 0
        while chunk := data.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if sink is not None:
                sink.write(chunk)
        if size != entry.size or digest.hexdigest() != entry.sha256:
            raise ArchiveError(f"{archive}: {entry.path} does not match the manifest (size or SHA-256 differs)")
    except BaseException:
        if sink is not None:
            with contextlib.suppress(Exception):
                sink.close()
        raise
    if sink is not None:
        visitor.close_file(entry, sink)
