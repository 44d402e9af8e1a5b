"""What differs when archives, or the log root a run is restored into, are in object storage.

* An archive for an ``s3://`` folder is built and verified in a local temporary folder, uploaded with
  an exclusive create (``If-None-Match: *``: never over an existing archive; an upload becomes
  visible only complete), then read back from the store and verified again, and only then gets its
  sidecar. A crash leaves at most an unverified archive without sidecar, and the run in place.
* ``restore_archive`` into an object-storage log root first checks that nothing exists at the
  target, extracts and verifies locally, then uploads under a ``.tbhub-restoring`` marker that hides
  the run until every object is there; an interrupted restore is removed by the next clean
  (``ObjectLogStore.finish_trash``) and can simply be run again.

Every error of the store's client becomes an ``ArchiveError`` of one line, without credentials.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar, cast

from tbhub.adapters.storage.archive.durable import io_line
from tbhub.adapters.storage.archive.format import (
    SIDECAR_SUFFIX,
    STREAM_BLOCK,
    ArchiveManifest,
    free_names,
    is_archive_name,
    no_free_name,
    sidecar_name,
)
from tbhub.adapters.storage.archive.stream import read_archive
from tbhub.adapters.storage.objectstore import RESTORE_MARKER, ObjectLogStore, storage_error
from tbhub.adapters.storage.remote import join, open_filesystem
from tbhub.errors import ArchiveError, LogRootError

if TYPE_CHECKING:
    import fsspec


def open_remote(url: str, options: Mapping[str, Any]) -> tuple[fsspec.AbstractFileSystem, str]:
    try:
        return open_filesystem(url, options)
    except LogRootError as e:
        raise ArchiveError(e.message) from None


def put_new(fs: fsspec.AbstractFileSystem, local: Path, path: str) -> None:
    """Upload ``local`` to ``path`` unless something is there; ``FileExistsError`` if it is.

    On S3 an exclusive create (``If-None-Match: *``) makes the check and the write one step; stores
    without it get a check, then the write.
    """
    try:
        fs.put_file(str(local), path, mode="create")
    except TypeError:  # an fsspec backend without exclusive create
        if fs.exists(path):
            raise FileExistsError(path) from None
        fs.put_file(str(local), path)


@contextmanager
def _undone_on_failure(undo: Callable[[], object], where: str) -> Iterator[None]:
    """Run ``undo`` (best effort) when the block fails; a store's own error becomes one line about ``where``."""
    try:
        yield
    except BaseException as e:
        with contextlib.suppress(Exception):
            undo()
        if isinstance(e, ArchiveError) or not isinstance(e, Exception):
            raise
        raise ArchiveError(storage_error(e, where)) from None


@dataclass(frozen=True, slots=True)
class ObjectArchive:
    """An archive in object storage: its filesystem and path there; ``name`` is its URL.

    A listing already knows whether the sidecar exists and the archive's size: ``sidecar_listed``
    and ``listed_size`` save a request each (None: ask the store).
    """

    fs: fsspec.AbstractFileSystem
    path: str
    name: str
    sidecar_listed: bool | None = None
    listed_size: int | None = None
    client_errors: ClassVar[tuple[type[Exception], ...]] = (Exception,)  # botocore, aiohttp: their own trees

    @classmethod
    def at(cls, url: str, options: Mapping[str, Any]) -> ObjectArchive:
        fs, path = open_remote(url, options)
        return cls(fs, path, url)

    def open(self) -> IO[bytes]:
        try:
            return cast(IO[bytes], self.fs.open(self.path, "rb", block_size=STREAM_BLOCK, cache_type="readahead"))
        except FileNotFoundError:
            raise ArchiveError(f"archive {self.name} does not exist") from None
        except OSError as e:
            raise ArchiveError(io_line(e, "reading", self.name)) from e
        except Exception as e:
            raise ArchiveError(storage_error(e, f"reading {self.name}")) from None

    def sidecar(self) -> tuple[str, bytes] | None:
        path, url = sidecar_name(self.path), sidecar_name(self.name)
        if path is None or url is None or self.sidecar_listed is False:
            return None
        try:
            return url, self.fs.cat_file(path)
        except FileNotFoundError:
            return None
        except Exception as e:
            raise ArchiveError(storage_error(e, f"reading the sidecar of {self.name}")) from None

    def size(self) -> int:
        return self.listed_size if self.listed_size is not None else int(self.fs.size(self.path))


class ObjectFolder:
    """An archive folder in object storage (``s3://bucket/archives``)."""

    def __init__(self, url: str, options: Mapping[str, Any]) -> None:
        self.url = url
        self.fs, self.root = open_remote(url, options)

    def check_outside(self, run_dir: Path) -> None:
        pass  # a bucket is never inside a local run folder

    @contextmanager
    def staging(self, endpoint: str, dataset: str) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="tbhub-archive-") as tmp:
            yield Path(tmp)

    def publish(
        self, built: Path, endpoint: str, dataset: str, stem: str, suffix: str, manifest: bytes, token: str
    ) -> tuple[str, str, int]:
        folder = f"{self.root}/{endpoint}/{dataset}"
        for name in free_names(stem):
            final, sidecar = f"{folder}/{name}{suffix}", f"{folder}/{name}{SIDECAR_SUFFIX}"
            url = join(self.url, endpoint, dataset, f"{name}{suffix}")
            try:
                if self.fs.exists(sidecar):
                    continue
                put_new(self.fs, built, final)
            except FileExistsError:
                continue
            except Exception as e:
                raise ArchiveError(storage_error(e, f"uploading {url}")) from None
            break
        else:
            raise no_free_name(stem, join(self.url, endpoint, dataset))
        with _undone_on_failure(lambda: self.fs.rm(final), f"writing {url}"):
            # What the store holds, not what was sent, is what the run's deletion relies on.
            read_archive(ObjectArchive(self.fs, final, url), expect=manifest)
            self.fs.pipe_file(sidecar, manifest)
        return url, join(self.url, endpoint, dataset, f"{name}{SIDECAR_SUFFIX}"), built.stat().st_size

    def archives(self) -> Iterator[ObjectArchive]:
        bucket = self.root.split("/", 1)[0]
        try:
            self.fs.ls(bucket, detail=False)  # FileNotFoundError only when the bucket itself is missing
            listing = cast(dict[str, dict[str, Any]], self.fs.find(self.root, detail=True, withdirs=False))
        except FileNotFoundError:
            raise ArchiveError(f"archive folder {self.url}: bucket {bucket} does not exist") from None
        except Exception as e:
            raise ArchiveError(storage_error(e, f"listing {self.url}")) from None
        for path, info in listing.items():
            if not is_archive_name(path):
                continue
            url = join(self.url, path[len(self.root) + 1 :]) if path.startswith(self.root + "/") else path
            size = int(info.get("size") or 0)
            yield ObjectArchive(self.fs, path, url, sidecar_name(path) in listing, size)


# --- restoring into an object-storage log root -------------------------------------------------------


def check_free(store: ObjectLogStore, target: str) -> None:
    """Refuse a restore over anything at ``target`` (a run's path below the store's root)."""
    try:
        if store.exists(target):
            raise ArchiveError(f"{store.url(target)} already exists: not restoring over it")
    except LogRootError as e:
        raise ArchiveError(e.message) from None


def upload_run(store: ObjectLogStore, target: str, folder: Path, manifest: ArchiveManifest, archive: str) -> None:
    """Upload the restored and verified run ``folder`` to ``target`` under a restore marker (the run stays
    hidden until complete), check the sizes the store lists, remove the marker."""
    where = store.url(target)
    base = store.resolve(target)
    try:
        marker = store.put_marker(target, RESTORE_MARKER, {"archive": archive})
    except Exception as e:
        raise ArchiveError(storage_error(e, f"writing to {where}")) from None
    # On failure, remove what this restore uploaded (the marker last): the archive still holds the run.
    with _undone_on_failure(lambda: store.remove_marked(target, marker), f"writing to {where}"):
        for entry in manifest.files:
            try:
                put_new(store.fs, folder / entry.path, f"{base}/{entry.path}")
            except FileExistsError:
                raise ArchiveError(f"{where}/{entry.path} was created by someone else while restoring") from None
        uploaded = {o.relpath: o.size for o in store.run_objects(target)}
        expected = {f.path: f.size for f in manifest.files}
        if uploaded != expected:
            raise ArchiveError(f"{where} does not hold what was uploaded; restore it again")
        store.fs.rm(marker)
