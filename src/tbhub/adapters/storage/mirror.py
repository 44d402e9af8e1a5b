"""An incremental local mirror of an object-storage log root, for TensorBoard's fast loader.

TensorBoard's fast loader (the Rust data server) reads local paths only, and its Python loader reads
S3 so slowly that a few GB take hours (tensorflow/tensorboard#1494). tbhub therefore copies the event
files of each object-storage root into a folder under its state directory and points the fast loader
there. Event files only ever grow while a job writes, so after the first copy a sync transfers only
what is new::

    remote object          manifest (last sync)        what ``sync()`` does
    ─────────────          ────────────────────        ────────────────────
    new key                —                           fetch whole (temp name, then rename)
    same size and ETag     same                        nothing
    grown                  smaller size                fetch the appended range only, append it
    shrunk, or rewritten   different                   fetch whole again (temp name, then rename)
    gone                   listed                      remove the local copy (and empty folders)

Invariants:

- Only event files are mirrored (TensorBoard's rule: the name contains ``tfevents``); keys with a
  ``.tbhub-`` component (tbhub's working names) are ignored, as local discovery ignores them.
- Nothing is ever written outside ``local_dir``: a key with an empty, ``.`` or ``..`` component (or
  an absolute one) is rejected and reported in ``SyncStats.rejected``, never fetched.
- TensorBoard never sees a half-copied new file: new and replaced files are written under a temporary
  name without ``tfevents`` (which TensorBoard ignores) and renamed into place. Appends are written
  in whole fetched ranges; a partial last record is what TensorBoard sees of any file being written.
- An append is checked: the last ``APPEND_CHECK_BYTES`` already mirrored are fetched again with the
  new range and compared; an object that grew but is not a pure append is fetched whole.
- The manifest (``.tbhub-mirror.json``: size, ETag and mtime per key) is written atomically after the
  files; a file whose local size disagrees with the manifest is fetched whole, so a sync killed at any
  moment is finished by the next one. One sync at a time per folder (a thread lock and ``flock``, so
  two processes sharing a state directory take turns).
- A listing failure raises ``LogRootError`` and changes nothing; a failure on one file is reported in
  ``SyncStats.errors`` and that file is retried by the next sync.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tbhub.adapters.storage.local import WORK_PREFIX
from tbhub.adapters.storage.objectstore import hidden_runs
from tbhub.errors import LogRootError, TbhubError

__all__ = [
    "APPEND_CHECK_BYTES",
    "MANIFEST",
    "RETRY_AFTER_S",
    "Mirror",
    "MirrorKeeper",
    "MirrorPlan",
    "MirrorStatus",
    "RemoteFiles",
    "SyncStats",
    "safe_relpath",
]

logger = logging.getLogger(__name__)

#: The mirror's record of what it holds; its presence means one sync has completed.
MANIFEST = ".tbhub-mirror.json"
_LOCK = ".tbhub-mirror.lock"
_PART = ".tbhub-part-"  # temporary names: no "tfevents" in them, so TensorBoard never reads one
_MANIFEST_VERSION = 1
#: Bytes before the append point fetched again to check that a grown object is a pure append:
#: the tail of the last record, CRC included, so a rewritten file almost surely differs there.
APPEND_CHECK_BYTES = 64
#: Ranged reads of at most this much, so memory stays bounded for event files of any size.
_CHUNK_BYTES = 16 * 1024 * 1024
#: Objects fetched at once: requests to object storage are latency-bound, not bandwidth-bound.
_WORKERS = 8
#: After a failed sync, the next attempt comes after this long at most (sooner if the interval is).
RETRY_AFTER_S = 10.0


class RemoteFiles(Protocol):
    """The part of an ``fsspec`` filesystem the mirror uses (s3fs, gcsfs, ``memory``, ...)."""

    def find(self, path: str, *, detail: bool) -> Mapping[str, Mapping[str, Any]]: ...

    def cat_file(self, path: str, start: int | None = None, end: int | None = None) -> bytes: ...

    def info(self, path: str) -> Mapping[str, Any]: ...

    def invalidate_cache(self, path: str | None = None) -> None: ...


@dataclass(frozen=True, slots=True)
class SyncStats:
    """What one ``Mirror.sync()`` did."""

    files: int  # event files in the mirror afterwards
    files_fetched: int  # fetched whole: new keys, and replaced ones (counted in files_replaced too)
    files_appended: int  # grown objects: only the appended range fetched
    files_replaced: int  # already mirrored, but shrunk or rewritten: fetched whole again
    files_removed: int  # local copies removed because their objects are gone
    bytes_fetched: int  # bytes read from object storage (append checks included)
    duration_s: float
    rejected: tuple[str, ...] = ()  # keys that would leave the mirror folder, never fetched
    errors: tuple[str, ...] = ()  # one line per file that failed; retried by the next sync

    @property
    def changed(self) -> bool:
        return bool(self.files_fetched or self.files_appended or self.files_removed)


@dataclass(frozen=True, slots=True)
class _Remote:
    relpath: str
    path: str  # the object's path for the filesystem
    size: int
    etag: str | None
    mtime: float | None


@dataclass(frozen=True, slots=True)
class _Entry:
    size: int
    etag: str | None
    mtime: float | None


@dataclass(frozen=True, slots=True)
class _Fetched:
    relpath: str
    kind: str  # "whole", "append" or "replace"
    bytes: int
    entry: _Entry


def safe_relpath(relpath: str) -> str | None:
    """``relpath`` if it names a path strictly inside a folder, else ``None``.

    Object keys are arbitrary strings: ``../x``, ``a//b``, ``/etc/x`` and ``a/./b`` are all valid keys
    that would resolve elsewhere, or ambiguously, on a local disk.
    """
    if not relpath or relpath.startswith("/") or "\x00" in relpath:
        return None
    if any(part in ("", ".", "..") for part in relpath.split("/")):
        return None
    return relpath


def _etag(info: Mapping[str, Any]) -> str | None:
    value = info.get("ETag", info.get("etag", info.get("md5Hash")))
    return None if value is None else str(value)


def _mtime(info: Mapping[str, Any]) -> float | None:
    value = info.get("LastModified", info.get("mtime", info.get("updated", info.get("created"))))
    if isinstance(value, dt.datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return None


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class Mirror:
    """Keeps ``local_dir`` an event-file copy of ``remote_root`` on ``fs``; see the module docstring.

    ``remote_root`` is a path as the filesystem names it (``bucket/prefix`` for s3fs); ``label`` is
    how messages name the root (the endpoint's URL). ``local_dir`` must belong to tbhub alone (it lives
    under the state directory, never inside a log root): anything in it that is not a mirrored event
    file is removed by ``sync()``.
    """

    def __init__(
        self,
        fs: RemoteFiles,
        remote_root: str,
        local_dir: str | os.PathLike[str],
        *,
        label: str | None = None,
        workers: int = _WORKERS,
    ) -> None:
        self.fs = fs
        self.remote_root = remote_root.rstrip("/")
        self.local_dir = Path(local_dir).absolute()
        self.label = label or self.remote_root
        self._workers = max(1, workers)
        self._lock = threading.Lock()
        self._saved = False

    @property
    def manifest_path(self) -> Path:
        return self.local_dir / MANIFEST

    @property
    def ready(self) -> bool:
        """Whether a sync has completed here (now or by an earlier process): the folder can be served."""
        return self.manifest_path.exists()

    def sync(self) -> SyncStats:
        """Bring the mirror up to date with the remote root; see the module docstring for the rules."""
        started = time.monotonic()
        with self._lock, self._folder_lock():
            remote, rejected = self._list()
            manifest = self._load_manifest()
            loaded = dict(manifest)
            todo = [
                (obj, kind, manifest.get(obj.relpath))
                for obj in remote.values()
                if (kind := self._plan(obj, manifest.get(obj.relpath))) is not None
            ]
            errors: list[str] = []
            fetched: list[_Fetched] = []
            if todo:
                with ThreadPoolExecutor(min(self._workers, len(todo)), thread_name_prefix="tbhub-mirror") as pool:
                    outcomes = pool.map(lambda job: self._fetch_safely(*job), todo)
                    for (obj, _, _), outcome in zip(todo, outcomes, strict=True):
                        if isinstance(outcome, _Fetched):
                            fetched.append(outcome)
                        elif outcome is not None:
                            errors.append(f"{obj.relpath}: {outcome}")
                            manifest.pop(obj.relpath, None)  # not trusted any more: fetched whole next time
            for done in fetched:
                manifest[done.relpath] = done.entry
            removed = self._remove_stale(set(remote))
            for relpath in [r for r in manifest if r not in remote]:
                del manifest[relpath]
            if manifest != loaded or not self._saved:  # written once per process, then on changes
                self._save_manifest(manifest)
                self._saved = True
        stats = SyncStats(
            files=len(manifest),
            files_fetched=sum(1 for f in fetched if f.kind != "append"),
            files_appended=sum(1 for f in fetched if f.kind == "append"),
            files_replaced=sum(1 for f in fetched if f.kind == "replace"),
            files_removed=removed,
            bytes_fetched=sum(f.bytes for f in fetched),
            duration_s=time.monotonic() - started,
            rejected=tuple(sorted(rejected)),
            errors=tuple(errors),
        )
        if stats.changed or errors or rejected:
            logger.info(
                "mirror of %s: %d fetched, %d appended, %d removed, %.1f MB in %.2f s%s",
                self.label, stats.files_fetched, stats.files_appended, stats.files_removed,
                stats.bytes_fetched / 1e6, stats.duration_s,
                f"; {len(errors)} failed, {len(rejected)} keys rejected" if errors or rejected else "",
            )
        return stats

    # -- listing and planning -------------------------------------------------------------------------

    def _list(self) -> tuple[dict[str, _Remote], list[str]]:
        """The event files under the root by relpath, and the keys rejected as unsafe."""
        try:
            # Listings are cached by fsspec filesystems (s3fs's dircache): always ask the store.
            self.fs.invalidate_cache(self.remote_root)
            listing = self.fs.find(self.remote_root, detail=True)
        except FileNotFoundError:
            raise LogRootError(f"log root {self.label} does not exist") from None
        except Exception as exc:  # any transport error (botocore, aiohttp, ...) means "cannot list now"
            raise LogRootError(_one_line(f"cannot list {self.label}: {type(exc).__name__}: {exc}")) from None
        prefix = self.remote_root + "/"
        found: dict[str, _Remote] = {}
        rejected: list[str] = []
        # A run being deleted or restored (``clean``/``restore`` on the bucket) carries a marker at its
        # top: the scanner hides it, and so does the mirror, so TensorBoard never shows a half-deleted
        # or half-restored run (a marked run's local copy is removed like a deleted one).
        hidden = hidden_runs(path[len(prefix) :] for path in listing if path.startswith(prefix))
        for path, info in listing.items():
            if info.get("type", "file") != "file" or not path.startswith(prefix):
                continue
            relpath = path[len(prefix) :]
            name = relpath.rsplit("/", 1)[-1]
            if "tfevents" not in name or relpath.startswith(hidden):
                continue
            if safe_relpath(relpath) is None:
                rejected.append(relpath)
                continue
            if any(part.startswith(WORK_PREFIX) for part in relpath.split("/")):
                continue
            found[relpath] = _Remote(relpath, path, int(info.get("size") or 0), _etag(info), _mtime(info))
        if rejected:
            logger.warning("mirror of %s: ignoring keys that leave the log root: %s", self.label, rejected[:5])
        return found, rejected

    def _local(self, relpath: str) -> Path:
        target = self.local_dir / relpath
        # safe_relpath already rules out escapes; this is the belt to its braces.
        if not os.path.abspath(target).startswith(str(self.local_dir) + os.sep):
            raise LogRootError(f"key {relpath!r} leaves the mirror folder")
        return target

    def _plan(self, obj: _Remote, old: _Entry | None) -> str | None:
        """``None`` (up to date), ``"append"``, ``"replace"`` or ``"whole"``."""
        try:
            local_size: int | None = self._local(obj.relpath).stat().st_size
        except OSError:  # missing, or a name this disk cannot hold: the fetch reports that one file
            local_size = None
        if old is None or local_size != old.size:
            return "whole" if local_size is None else "replace"
        if obj.size == old.size and obj.etag == old.etag and (obj.etag is not None or obj.mtime == old.mtime):
            return None
        if obj.size > old.size > 0:
            return "append"
        return "replace"

    # -- fetching -------------------------------------------------------------------------------------

    def _fetch_safely(self, obj: _Remote, kind: str, old: _Entry | None) -> _Fetched | str | None:
        """The fetch's outcome, ``None`` if the object vanished meanwhile, or why it failed (one line)."""
        try:
            if kind == "append" and old is not None:
                return self._append(obj, old)
            return self._whole(obj, kind)
        except FileNotFoundError:
            return None  # deleted since the listing: the next sync removes the local copy
        except Exception as exc:  # one bad object must not stop the others (network, disk, odd key)
            return _one_line(f"{type(exc).__name__}: {exc}")

    def _ranges(self, obj: _Remote, start: int) -> Iterator[bytes]:
        """The object's bytes from ``start`` to its listed size, in bounded ranged reads."""
        at = start
        while at < obj.size:
            chunk = self.fs.cat_file(obj.path, start=at, end=min(obj.size, at + _CHUNK_BYTES))
            if not chunk:
                return  # shrank since the listing; the next sync sees it
            yield chunk
            at += len(chunk)

    def _whole(self, obj: _Remote, kind: str) -> _Fetched:
        target = self._local(obj.relpath)
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.parent / f"{_PART}{uuid.uuid4().hex}"
        got = reads = 0
        try:
            with open(part, "wb") as out:
                for chunk in self._ranges(obj, 0):
                    out.write(chunk)
                    got += len(chunk)
                    reads += 1
            if obj.mtime is not None:
                os.utime(part, (obj.mtime, obj.mtime))
            os.replace(part, target)
        except BaseException:
            with contextlib.suppress(OSError):
                part.unlink()
            raise
        etag = obj.etag if got == obj.size and (reads <= 1 or self._unchanged(obj)) else None
        return _Fetched(obj.relpath, kind, got, _Entry(got, etag, obj.mtime))

    def _unchanged(self, obj: _Remote) -> bool:
        """Whether the object still has its listed ETag: several ranged reads may straddle a rewrite."""
        self.fs.invalidate_cache(obj.path)
        return obj.etag is not None and _etag(self.fs.info(obj.path)) == obj.etag

    def _append(self, obj: _Remote, old: _Entry) -> _Fetched:
        target = self._local(obj.relpath)
        check = min(APPEND_CHECK_BYTES, old.size)
        ranges = self._ranges(obj, old.size - check)
        first = next(ranges, b"")
        with open(target, "rb") as f:
            f.seek(old.size - check)
            mine = f.read(check)
        if len(first) < check or first[:check] != mine:
            whole = self._whole(obj, "replace")
            return _Fetched(whole.relpath, whole.kind, whole.bytes + len(first), whole.entry)
        got = len(first)
        size = old.size + len(first) - check
        reads = 1
        with open(target, "ab") as out:
            out.write(first[check:])
            for chunk in ranges:
                out.write(chunk)
                got += len(chunk)
                size += len(chunk)
                reads += 1
        if obj.mtime is not None:
            os.utime(target, (obj.mtime, obj.mtime))
        etag = obj.etag if size == obj.size and (reads <= 1 or self._unchanged(obj)) else None
        return _Fetched(obj.relpath, "append", got, _Entry(size, etag, obj.mtime))

    # -- removal ----------------------------------------------------------------------------------------

    def _remove_stale(self, keep: set[str]) -> int:
        """Remove every file that is not a mirrored event file (and then empty folders); returns the
        number of event files removed. Leftover temporary files of a killed sync go too."""
        removed = 0
        for folder, dirs, files in os.walk(self.local_dir, topdown=False):
            rel_folder = os.path.relpath(folder, self.local_dir)
            for name in files:
                relpath = name if rel_folder == "." else f"{rel_folder}/{name}"
                if relpath in keep or relpath in (MANIFEST, _LOCK):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(folder, name))
                    if "tfevents" in name:
                        removed += 1
            for name in dirs:
                with contextlib.suppress(OSError):  # not empty: still holds mirrored files
                    os.rmdir(os.path.join(folder, name))
        return removed

    # -- manifest and lock ------------------------------------------------------------------------------

    def _load_manifest(self) -> dict[str, _Entry]:
        try:
            data = json.loads(self.manifest_path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("version") != _MANIFEST_VERSION:
            return {}
        if data.get("remote_root") != self.remote_root:
            return {}  # the endpoint now points elsewhere: nothing here can be trusted
        try:
            return {rel: _Entry(int(e["size"]), e["etag"], e["mtime"]) for rel, e in data["files"].items()}
        except (KeyError, TypeError, ValueError):
            return {}

    def _save_manifest(self, manifest: Mapping[str, _Entry]) -> None:
        data = {
            "version": _MANIFEST_VERSION,
            "remote_root": self.remote_root,
            "files": {
                rel: {"size": e.size, "etag": e.etag, "mtime": e.mtime} for rel, e in sorted(manifest.items())
            },
        }
        part = self.local_dir / f"{_PART}{uuid.uuid4().hex}"
        part.write_text(json.dumps(data))
        os.replace(part, self.manifest_path)

    @contextlib.contextmanager
    def _folder_lock(self) -> Iterator[None]:
        self.local_dir.mkdir(parents=True, exist_ok=True)
        with open(self.local_dir / _LOCK, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


# ---------------------------------------------------------------------------------------------------
# Keeping several mirrors in sync


@dataclass(frozen=True, slots=True)
class MirrorPlan:
    """One endpoint's mirror: its URL, how often to sync, and how to build the ``Mirror``.

    ``open`` is called on the first sync (and again after it failed), so a root whose filesystem
    cannot even be built (no driver, bad options) is an error shown on its endpoint, not a crash.
    """

    source: str
    interval: float
    open: Callable[[], Mirror]


@dataclass(frozen=True, slots=True)
class MirrorStatus:
    """What the hub shows of one mirror. Times are Unix wall-clock seconds."""

    name: str
    source: str
    ready: bool  # a sync has completed (in this process or an earlier one): the folder can be served
    last_sync_at: float | None  # the last successful sync
    last: SyncStats | None
    error: str | None  # the last sync's failure (or its per-file errors), until a clean sync


@dataclass(eq=False, slots=True)
class _Kept:
    plan: MirrorPlan
    mirror: Mirror | None = None
    next_at: float = 0.0  # monotonic
    synced_once: bool = False  # in this process
    last_sync_at: float | None = None
    last: SyncStats | None = None
    error: str | None = None


class MirrorKeeper:
    """Syncs each endpoint's mirror every ``interval`` seconds; thread-safe; never raises on a sync.

    Every ``tbhub serve`` process runs one (each replica has its own TensorBoards and mirror folders;
    this is not a leader-only job). ``on_sync(name, stats, first)`` is called after each successful
    sync (``first``: the first one in this process), so the caller can start or restart the endpoint's
    TensorBoard. A failed sync keeps the previous mirror, is logged once per distinct message, shows
    in ``status()`` and is retried after ``RETRY_AFTER_S`` (or the interval, if shorter).
    """

    def __init__(
        self,
        plans: Mapping[str, MirrorPlan],
        *,
        on_sync: Callable[[str, SyncStats, bool], None] | None = None,
    ) -> None:
        self._kept = {name: _Kept(plan) for name, plan in plans.items()}
        self._on_sync = on_sync
        self._lock = threading.Lock()
        self._first: threading.Thread | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._kept)

    def status(self, name: str) -> MirrorStatus | None:
        """The mirror of endpoint ``name``, or ``None`` when that endpoint is not mirrored."""
        kept = self._kept.get(name)
        if kept is None:
            return None
        with self._lock:
            mirror, last, error, at = kept.mirror, kept.last, kept.error, kept.last_sync_at
        ready = kept.synced_once or (mirror is not None and mirror.ready)
        return MirrorStatus(name, kept.plan.source, ready, at, last, error)

    def sync(self, name: str) -> SyncStats | None:
        """Sync one mirror now; ``None`` if it failed (see ``status(name).error``)."""
        kept = self._kept[name]
        plan = kept.plan
        try:
            if kept.mirror is None:
                try:
                    kept.mirror = plan.open()
                except TbhubError:
                    raise
                except Exception as exc:  # a driver refusing its options: shown like any other failure
                    raise LogRootError(f"cannot open {plan.source}: {type(exc).__name__}: {exc}") from None
            stats = kept.mirror.sync()
        except (TbhubError, OSError) as exc:
            message = _one_line(str(exc) or type(exc).__name__)
            if not isinstance(exc, TbhubError):
                message = _one_line(f"cannot mirror {plan.source}: {exc}")
            with self._lock:
                if kept.error != message:
                    logger.warning("endpoint %s: %s", name, message)
                kept.error = message
                kept.next_at = time.monotonic() + min(plan.interval, RETRY_AFTER_S)
            return None
        first = not kept.synced_once
        with self._lock:
            if kept.error is not None and not stats.errors:
                logger.info("endpoint %s: mirror of %s is in sync again", name, plan.source)
            kept.error = (
                _one_line(f"{len(stats.errors)} files of {plan.source} could not be mirrored: {stats.errors[0]}")
                if stats.errors
                else None
            )
            kept.synced_once = True
            kept.last, kept.last_sync_at = stats, time.time()
            kept.next_at = time.monotonic() + (min(plan.interval, RETRY_AFTER_S) if stats.errors else plan.interval)
        if self._on_sync is not None:
            self._on_sync(name, stats, first)
        return stats

    def sync_due(self) -> float:
        """Sync every mirror whose time has come, one after another; seconds until the next is due."""
        for name, kept in self._kept.items():
            if time.monotonic() >= kept.next_at:
                self.sync(name)
        if not self._kept:
            return 3600.0
        return max(0.0, min(k.next_at for k in self._kept.values()) - time.monotonic())

    def start(self) -> None:
        """Begin the first sync of every mirror now, in a daemon thread, so that it overlaps the rest
        of the server's start (``run_forever`` continues from there); idempotent."""
        with self._lock:
            if self._first is not None or not self._kept:
                return
            self._first = threading.Thread(target=self._sync_due_logged, name="tbhub-mirror-first", daemon=True)
            self._first.start()

    def _sync_due_logged(self) -> None:
        try:
            self.sync_due()
        except Exception:  # as in run_forever: a failing callback must not go unnoticed
            logger.exception("syncing the mirrors failed")

    async def run_forever(self) -> None:
        """``sync_due`` in a worker thread, forever (until cancelled): the hub's lifespan runs this."""
        first = self._first
        if first is not None:
            await asyncio.to_thread(first.join)
        while True:
            try:
                delay = await asyncio.to_thread(self.sync_due)
            except Exception:  # a bug in one callback must not end mirroring for every endpoint
                logger.exception("syncing the mirrors failed")
                delay = RETRY_AFTER_S
            await asyncio.sleep(max(delay, 0.05))
