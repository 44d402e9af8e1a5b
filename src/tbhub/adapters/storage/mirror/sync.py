"""``Mirror``: one folder kept an event-file copy of one remote root, a sync at a time (``SyncStats``)."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tbhub.adapters.storage.mirror.listing import PAGE_KEYS, RemoteFiles, fetch_kind, list_event_files
from tbhub.adapters.storage.mirror.manifest import LOCK, MANIFEST, folder_lock, read_manifest, save_manifest
from tbhub.adapters.storage.mirror.transfer import APPEND_CHECK_BYTES as APPEND_CHECK
from tbhub.adapters.storage.mirror.transfer import PART_BYTES, Fetched, Transfer, fetch_all, plan_transfer

__all__ = ["SYNC_REQUESTS", "Mirror", "SyncStats"]

# The package's one logger, named as it was when the mirror was one module.
logger = logging.getLogger("tbhub.adapters.storage.mirror")

#: Requests in flight at once (ranged GETs, listings by prefix), unless configured
#: (``[s3] sync_requests``): requests to object storage are latency-bound, not bandwidth-bound, and a
#: round trip of tens of milliseconds leaves one connection idle most of the time.
SYNC_REQUESTS = 32


@dataclass(frozen=True, slots=True)
class SyncStats:
    """What one ``Mirror.sync()`` did."""

    files: int  # event files in the mirror afterwards
    files_fetched: int  # fetched whole (new keys, replaced ones, counted in files_replaced too) or resumed
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


class Mirror:
    """Keeps ``local_dir`` an event-file copy of ``remote_root`` on ``fs``; see the package docstring.

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
        requests: int = SYNC_REQUESTS,
        part_bytes: int = PART_BYTES,
    ) -> None:
        self.fs = fs
        self.remote_root = remote_root.rstrip("/")
        self.local_dir = Path(local_dir).absolute()
        self.label = label or self.remote_root
        self.requests = max(1, requests)
        self._part_bytes = max(APPEND_CHECK, part_bytes)
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
        """Bring the mirror up to date with the remote root; see the package docstring for the rules."""
        started = time.monotonic()
        with self._lock, folder_lock(self.local_dir):
            recorded = read_manifest(self.manifest_path, self.remote_root)
            manifest = dict(recorded or {})
            loaded = dict(manifest)
            # The first sync, and a root of more than a listing page, list each dataset on its own.
            by_prefix = recorded is None or len(recorded) > PAGE_KEYS
            remote, rejected = list_event_files(self.fs, self.remote_root, self.label, by_prefix=by_prefix,
                                                requests=self.requests)
            errors: list[str] = []
            planned: list[Transfer] = []
            for obj in remote.values():
                kind = fetch_kind(obj, manifest.get(obj.relpath), self.local_dir)
                if kind is None:
                    continue
                try:
                    planned.append(plan_transfer(obj, kind, self.local_dir, self._part_bytes))
                except Exception as exc:  # a key this disk cannot hold: that file alone fails
                    errors.append(f"{obj.relpath}: {type(exc).__name__}: {exc}")
                    manifest.pop(obj.relpath, None)
            fetched: list[Fetched] = []
            for transfer, outcome in zip(planned, fetch_all(self.fs, planned, self.requests, self._part_bytes),
                                         strict=True):
                if isinstance(outcome, Fetched):
                    fetched.append(outcome)
                elif outcome is not None:
                    errors.append(f"{transfer.obj.relpath}: {outcome}")
                    manifest.pop(transfer.obj.relpath, None)  # not trusted any more: checked again next time
            for done in fetched:
                manifest[done.relpath] = done.entry
            removed = self._remove_stale(set(remote))
            for relpath in [r for r in manifest if r not in remote]:
                del manifest[relpath]
            if manifest != loaded or not self._saved:  # written once per process, then on changes
                save_manifest(self.manifest_path, self.remote_root, manifest)
                self._saved = True
        stats = SyncStats(
            files=len(manifest),
            files_fetched=sum(1 for f in fetched if f.kind != "append"),  # whole, replace, resume
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

    def _remove_stale(self, keep: set[str]) -> int:
        """Remove every file that is not a mirrored event file (and then empty folders); returns the
        number of event files removed. Leftover temporary files of a killed sync go too."""
        removed = 0
        for folder, dirs, files in os.walk(self.local_dir, topdown=False):
            rel_folder = os.path.relpath(folder, self.local_dir)
            for name in files:
                relpath = name if rel_folder == "." else f"{rel_folder}/{name}"
                if relpath in keep or relpath in (MANIFEST, LOCK):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(folder, name))
                    if "tfevents" in name:
                        removed += 1
            for name in dirs:
                with contextlib.suppress(OSError):  # not empty: still holds mirrored files
                    os.rmdir(os.path.join(folder, name))
        return removed
