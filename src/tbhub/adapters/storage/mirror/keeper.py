"""Keeping several mirrors in sync: ``MirrorKeeper``'s schedule, retries and the status the hub shows."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tbhub.adapters.storage.mirror.listing import one_line
from tbhub.adapters.storage.mirror.sync import Mirror, SyncStats
from tbhub.errors import LogRootError, TbhubError

__all__ = ["RETRY_AFTER_S", "MirrorKeeper", "MirrorPlan", "MirrorStatus"]

# The package's one logger, named as it was when the mirror was one module.
logger = logging.getLogger("tbhub.adapters.storage.mirror")

#: After a failed sync, the next attempt comes after this long at most (sooner if the interval is).
RETRY_AFTER_S = 10.0


@dataclass(frozen=True, slots=True)
class MirrorPlan:
    """One endpoint's mirror: its URL, how often to sync, and how to build the ``Mirror``.

    ``open`` is called on the first sync (and again after it failed), so a root whose filesystem
    cannot even be built (no driver, bad options) is an error shown on its endpoint, not a crash.
    """

    source: str
    interval: float
    open: Callable[[], Mirror]
    #: Whether an earlier process completed a sync of this mirror (its folder holds a manifest).
    ready: Callable[[], bool] = lambda: False


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
    tried: bool = False  # a sync has ended (well or not) in this process
    generation: int = 0  # successful syncs that changed the mirror, in this process
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

    def pending(self, name: str) -> bool:
        """Whether ``name``'s mirror is waiting for its first sync: neither synced before (by this or an
        earlier process) nor tried in this process. Its readers should wait rather than read the bucket."""
        kept = self._kept.get(name)
        if kept is None or kept.tried:
            return False
        return not (kept.mirror is not None and kept.mirror.ready) and not kept.plan.ready()

    def generation(self, name: str) -> int:
        """Counts the syncs of ``name``'s mirror that changed it (or were its first): a reader of the
        mirror has something new to read when this moved."""
        kept = self._kept.get(name)
        return 0 if kept is None else kept.generation

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
            message = one_line(str(exc) or type(exc).__name__)
            if not isinstance(exc, TbhubError):
                message = one_line(f"cannot mirror {plan.source}: {exc}")
            with self._lock:
                if kept.error != message:
                    logger.warning("endpoint %s: %s", name, message)
                kept.error, kept.tried = message, True
                kept.next_at = time.monotonic() + min(plan.interval, RETRY_AFTER_S)
            return None
        first = not kept.synced_once
        with self._lock:
            if kept.error is not None and not stats.errors:
                logger.info("endpoint %s: mirror of %s is in sync again", name, plan.source)
            kept.error = (
                one_line(f"{len(stats.errors)} files of {plan.source} could not be mirrored: {stats.errors[0]}")
                if stats.errors
                else None
            )
            if first or stats.changed:
                kept.generation += 1
            kept.synced_once = kept.tried = True
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
