"""Carry out a cleanup plan: archive (verified) then delete each run, and record every outcome."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from tbhub.adapters.db.store import DeletionRecord
from tbhub.adapters.storage.archive import ObjectRunSource, RunSource, archive_run, remove_partial_archives
from tbhub.adapters.storage.objectstore import ObjectLogStore
from tbhub.app.cleanup.places import archive_destination, check_archive_destination
from tbhub.app.cleanup.report import CleanupReport, RunOutcome, run_summary
from tbhub.app.services import AnyLogStore, Services, actor
from tbhub.core.cleanup import CleanupPlan
from tbhub.core.models import RunSummary
from tbhub.errors import TbhubError

__all__ = ["execute_plan", "finish_interrupted"]


def finish_interrupted(
    services: Services, names: list[str] | None, archive_to: str | os.PathLike[str] | None
) -> list[str]:
    """Finish what an interrupted cleanup left: trash in the log roots (on object storage: runs whose
    delete or restore was interrupted), partial archives in a local archive folder (an object store
    never shows a partial upload)."""
    done: list[str] = []
    for spec in services.select(names):
        store = services.store(spec.name)
        store.check()
        done.extend(f"{spec.name}:{relpath}" for relpath in store.finish_trash())
    dest = archive_destination(archive_to)
    if isinstance(dest, Path) and dest.exists():
        done.extend(str(p) for p in remove_partial_archives(dest))
    return done


def _one_line(error: BaseException) -> str:
    if isinstance(error, TbhubError):
        return error.message
    if isinstance(error, OSError):
        where = f" ({error.filename})" if error.filename else ""
        return f"{error.strerror or type(error).__name__}{where}"
    return f"{type(error).__name__}: {error}"


def execute_plan(
    plan: CleanupPlan,
    services: Services,
    *,
    archive_to: str | os.PathLike[str] | None = None,
    command: str = "clean",
    remove_links: bool = False,
    on_run: Callable[[RunSummary, RunOutcome], None] | None = None,
    who: str | None = None,
) -> CleanupReport:
    """Archive (when asked) then delete each run of ``plan``; one failing run never stops the rest.

    Per run, in this order: the archive is written, synced, re-read and verified, and only then is the
    run renamed to trash and removed (on object storage: marked as being deleted, then its objects
    deleted; see ``ObjectLogStore``). ``archive_to`` is a folder or a URL (``s3://bucket/archives``,
    reached with the run's endpoint's storage options). Every outcome, failures included, is recorded in the history,
    under ``who`` (default: ``actor()``, the shell's user@host; the hub passes the signed-in user).
    """
    who = who or actor()
    state = services.state
    stores: dict[str, AnyLogStore] = {}
    outcomes: list[RunOutcome] = []
    check_archive_destination(services, archive_to)
    dest = archive_destination(archive_to)
    for run in plan.runs:
        archive_path: str | None = None
        try:
            if run.endpoint not in stores:
                stores[run.endpoint] = services.store(run.endpoint)
            store = stores[run.endpoint]
            source: RunSource | Path | None
            if isinstance(store, ObjectLogStore):
                source = ObjectRunSource(store, run.relpath)
            else:
                run_path = store.resolve(run.relpath)
                source = None if os.path.islink(run_path) else Path(run_path)
            if dest is not None and source is not None:
                result = archive_run(
                    source,
                    dest,
                    endpoint=run.endpoint,
                    dataset=run.dataset,
                    run=run.run,
                    relpath=run.relpath,
                    summary=run_summary(run),
                    storage_options=services.storage_options(run.endpoint) if isinstance(dest, str) else None,
                )
                archive_path = str(result.archive)
            store.delete_run(run.relpath, remove_links=remove_links)
            outcome = RunOutcome(run, "deleted", archive_path)
        except (TbhubError, OSError) as error:
            outcome = RunOutcome(run, "failed", archive_path, _one_line(error))
        state.record_deletion(
            DeletionRecord(
                at=time.time(),
                actor=who,
                command=command,
                endpoint=run.endpoint,
                dataset=run.dataset,
                run=run.run,
                relpath=run.relpath,
                size_bytes=run.size_bytes,
                event_count=run.event_count,
                archive=outcome.archive,
                outcome=outcome.outcome,
                error=outcome.error,
            )
        )
        outcomes.append(outcome)
        if on_run:
            on_run(run, outcome)
    for store in stores.values():
        store.commit()
    return CleanupReport(tuple(outcomes), plan.skipped)
