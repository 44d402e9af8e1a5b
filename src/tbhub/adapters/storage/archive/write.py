"""Writing an archive: read the run once, write, sync, re-read and verify, then publish it.

``tbhub clean --archive-to DEST`` runs ``archive_run`` before it deletes what is often a team's only
copy of a run, so every step is written for crashes first and for speed second. Where the archive
goes (a local folder or object storage) is an ``ArchivePlace``; the steps here are the same for both.
"""

from __future__ import annotations

import json
import os
import secrets
import tarfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from tbhub.adapters.storage.archive.compression import Compressor, choose_codec
from tbhub.adapters.storage.archive.durable import DestFile, io_errors, remove
from tbhub.adapters.storage.archive.format import (
    CHUNK,
    FORMAT,
    MANIFEST_MEMBER,
    RUN_MEMBER,
    SUFFIXES,
    ArchiveManifest,
    ArchiveResult,
    ManifestFile,
    archive_stem,
    check_name,
    check_relpath,
    temp_name,
)
from tbhub.adapters.storage.archive.local import LocalArchive, LocalFolder
from tbhub.adapters.storage.archive.place import ArchivePlace, archive_place
from tbhub.adapters.storage.archive.sources import Entry, LocalRunSource, RunSource, describe_change
from tbhub.adapters.storage.archive.stream import read_archive
from tbhub.errors import ArchiveError

_BLOCK: Final = tarfile.BLOCKSIZE


def archive_run(
    run_dir: Path | RunSource,
    dest: Path | str,
    *,
    endpoint: str,
    dataset: str,
    run: str,
    relpath: str,
    summary: Mapping[str, Any] | None = None,
    compression: str | None = None,
    now: datetime | None = None,
    zstd_threads: int = 0,
    storage_options: Mapping[str, Any] | None = None,
) -> ArchiveResult:
    """Archive ``run_dir`` to ``dest/{endpoint}/{dataset}/{run}--{stamp}.tar.zst`` plus its sidecar.

    ``relpath`` is the run's path below its log root (where ``restore_archive`` puts it back);
    ``compression`` is ``"zstd"`` (the default when zstandard is importable) or ``"gzip"``; ``now``
    (default: the current time; naive means UTC) names the archive and is its ``created_at``;
    ``zstd_threads`` > 0 compresses with that many worker threads.

    Order of work: snapshot the run folder; stream every file once into a hidden body file while
    hashing it (refusing the run if any file differs from the snapshot, or the snapshot afterwards
    differs); write manifest + body to a hidden temporary archive and fsync it; re-read and verify
    it in full; publish it under a name not yet taken (a hard link, which cannot replace anything);
    fsync the folder; write the sidecar (temporary, fsync, rename) and fsync the folder again.

    Raises ``ArchiveError`` for symlinks or special files in the run, a run that changed while it was
    read, a destination inside the run, or any I/O error; nothing final is left behind then.

    ``run_dir`` may be a ``RunSource`` (``ObjectRunSource``: a run in object storage) and ``dest`` a
    URL (``s3://bucket/archives``, reached with ``storage_options``): the archive is then built and
    verified locally, uploaded, read back and verified again (see ``remote.py``).
    """
    started = time.monotonic()
    place = archive_place(dest, storage_options)
    codec = choose_codec(compression)
    for what, value in (("endpoint", endpoint), ("dataset", dataset), ("run", run)):
        check_name(value, what)
    check_relpath(relpath, "run path")
    summary_dict = dict(summary) if summary is not None else {}
    try:
        json.dumps(summary_dict)
    except (TypeError, ValueError) as e:
        raise ArchiveError(f"the run summary cannot be stored as JSON: {e}") from e
    if now is None:
        created = datetime.now(UTC)
    else:
        created = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    source = _source(run_dir, place)
    stem, suffix = archive_stem(run, created), SUFFIXES[codec]

    before = source.snapshot()
    with place.staging(endpoint, dataset) as folder:
        token = f"{os.getpid()}-{secrets.token_hex(4)}"
        body = folder / temp_name(f"{stem}{suffix}", token, ".body")
        temp = folder / temp_name(f"{stem}{suffix}", token)
        try:
            digests = _write_body(source, before, body, codec, zstd_threads)
            after = source.snapshot()
            if after != before:
                raise source.changed(describe_change(before, after))
            manifest = ArchiveManifest(
                format=FORMAT,
                endpoint=endpoint,
                dataset=dataset,
                run=run,
                relpath=relpath,
                original_path=source.location,
                created_at=created.isoformat(timespec="microseconds"),
                compression=codec,
                files=tuple(
                    ManifestFile(path, e.size, digests[path], e.mtime_ns, e.mode)
                    for path, e in sorted(before.items())
                    if not e.is_dir
                ),
                folders=tuple(sorted(path for path, e in before.items() if e.is_dir and path != ".")),
                summary=summary_dict,
                folder_mtimes_ns={path: e.mtime_ns for path, e in sorted(before.items()) if e.is_dir},
                folder_modes={path: e.mode for path, e in sorted(before.items()) if e.is_dir},
            )
            manifest_bytes = manifest.to_json().encode("utf-8")
            _write_archive(temp, manifest_bytes, body, codec, created)
            remove(body)
            read_archive(LocalArchive(temp), expect=manifest_bytes)
            archive, sidecar, size = place.publish(temp, endpoint, dataset, stem, suffix, manifest_bytes, token)
        except BaseException:
            remove(body)
            remove(temp)
            raise
    return ArchiveResult(archive, sidecar, manifest, manifest.size_bytes, size, time.monotonic() - started)


def remove_partial_archives(dest: Path) -> list[Path]:
    """Delete the temporary files interrupted ``archive_run`` calls left below ``dest``; them, sorted.

    Temporary files carry the writer's pid: those of a process still alive on this machine are left
    alone (an archive in progress). Run it on one host at a time when ``dest`` is shared.
    """
    return LocalFolder(Path(dest)).remove_partials()


def _source(run_dir: Path | RunSource, place: ArchivePlace) -> RunSource:
    if isinstance(run_dir, str | os.PathLike):
        run_dir = Path(os.path.abspath(run_dir))
        place.check_outside(run_dir)
        return LocalRunSource(run_dir)
    return run_dir


def _tar_header(name: str, entry: Entry) -> bytes:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if entry.is_dir else tarfile.REGTYPE
    info.size = entry.size
    info.mode = entry.mode
    seconds, nanos = divmod(entry.mtime_ns, 1_000_000_000)
    info.mtime = seconds
    if entry.mtime_ns >= 0:  # plain `tar -x` restores nanoseconds too
        info.pax_headers = {"mtime": f"{seconds}.{nanos:09d}"}
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "strict")


def _write_body(
    source: RunSource, entries: Mapping[str, Entry], path: Path, codec: str, threads: int
) -> dict[str, str]:
    """The tar members of the run (folder, sub-folders, files), compressed into ``path``; file digests."""
    out = DestFile(path, 0o600)
    try:
        stream = Compressor(codec, out, threads)
        stream.write(_tar_header(RUN_MEMBER, entries["."]))
        digests = {}
        # Sorted paths put every folder before its contents (a parent is a prefix of its children).
        for rel in sorted(entries.keys() - {"."}):
            entry = entries[rel]
            stream.write(_tar_header(f"{RUN_MEMBER}/{rel}", entry))
            if not entry.is_dir:
                digests[rel] = source.copy(rel, entry, stream)
                stream.write(tarfile.NUL * (-entry.size % _BLOCK))
        stream.write(tarfile.NUL * (2 * _BLOCK))  # end-of-archive marker
        stream.close()
        return digests
    finally:
        out.close()


def _write_archive(path: Path, manifest: bytes, body: Path, codec: str, created: datetime) -> None:
    """``path`` = [the manifest member, compressed on its own] + [the body's compressed bytes], fsynced.

    Concatenated zstd frames (gzip members) decompress to the concatenated tar stream, so the run's
    files are read once, hashed while they stream into the body, and the manifest holding those
    hashes still comes first.
    """
    info = tarfile.TarInfo(MANIFEST_MEMBER)
    info.size = len(manifest)
    info.mode = 0o644
    info.mtime = int(created.timestamp())
    member = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "strict") + manifest + tarfile.NUL * (-len(manifest) % _BLOCK)
    out = DestFile(path)
    try:
        head = Compressor(codec, out)
        head.write(member)
        head.close()
        with io_errors("reading", body):
            src = open(body, "rb")  # noqa: SIM115 - closed below; open errors need their own message
        with src:
            while True:
                with io_errors("reading", body):
                    chunk = src.read(CHUNK)
                if not chunk:
                    break
                out.write(chunk)
        out.sync()
    finally:
        out.close()
