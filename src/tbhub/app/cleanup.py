"""The manage use-cases that write to log roots: carry out a cleanup plan, restore an archive.

Only ``tbhub clean``, ``tbhub retention apply`` and ``tbhub restore`` reach this module; ``serve`` never
does (except the retention job it schedules, through the same code).
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tbhub.adapters.db.store import DeletionRecord, RetentionApplication, StateStore
from tbhub.adapters.storage.archive import ObjectRunSource, RunSource, archive_run, remove_partial_archives
from tbhub.adapters.storage.objectstore import ObjectLogStore
from tbhub.adapters.storage.remote import is_url
from tbhub.app.hub import AnyLogStore, log_store, scan_endpoints
from tbhub.config import Config
from tbhub.core.archive_places import overlapping_endpoint
from tbhub.core.cleanup import CleanupPlan
from tbhub.core.models import RunSummary
from tbhub.core.retention import RetentionDecision, RetentionPlan, plan_retention
from tbhub.errors import TbhubError, UsageError

__all__ = [
    "CleanupReport",
    "RetentionOutcome",
    "RunOutcome",
    "actor",
    "apply_retention",
    "archive_destination",
    "check_archive_destination",
    "execute_plan",
    "finish_interrupted",
    "plan_retention_now",
    "run_summary",
]


def actor() -> str:
    """Who is acting, for the history: ``user@host``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def run_summary(run: RunSummary) -> dict[str, Any]:
    """What the scanner knew of a run, as stored in an archive's manifest."""
    return {
        **run.counts(),
        "last_modified_ns": run.last_modified_ns,
        "truncated": run.truncated,
    }


@dataclass(frozen=True, slots=True)
class RunOutcome:
    run: RunSummary
    outcome: str  # "deleted" or "failed"
    archive: str | None = None
    error: str | None = None

    @property
    def bytes_freed(self) -> int:
        return self.run.size_bytes if self.outcome == "deleted" else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "endpoint": self.run.endpoint,
            "dataset": self.run.dataset,
            "run": self.run.run,
            "relpath": self.run.relpath,
            "size_bytes": self.run.size_bytes,
            "outcome": self.outcome,
            "archive": self.archive,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class CleanupReport:
    outcomes: tuple[RunOutcome, ...] = field(default=())
    skipped: tuple[tuple[RunSummary, str], ...] = field(default=())
    dry_run: bool = False

    @property
    def deleted(self) -> list[RunOutcome]:
        return [o for o in self.outcomes if o.outcome == "deleted"]

    @property
    def failed(self) -> list[RunOutcome]:
        return [o for o in self.outcomes if o.outcome == "failed"]

    @property
    def bytes_freed(self) -> int:
        return sum(o.bytes_freed for o in self.outcomes)

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "deleted": len(self.deleted),
            "failed": len(self.failed),
            "bytes_freed": self.bytes_freed,
            "runs": [o.to_json() for o in self.outcomes],
            "skipped": [
                {"endpoint": r.endpoint, "dataset": r.dataset, "run": r.run, "reason": why} for r, why in self.skipped
            ],
        }


def archive_destination(archive_to: str | os.PathLike[str] | None) -> Path | str | None:
    """Where ``--archive-to``/``archive_to`` points: a local folder (``Path``) or a URL (``s3://...``)."""
    if archive_to is None or archive_to == "":
        return None
    text = os.fspath(archive_to)
    return text.rstrip("/") if is_url(text) else Path(text).expanduser()


def check_archive_destination(config: Config, archive_to: str | os.PathLike[str] | None) -> None:
    """Raise ``UsageError`` when ``archive_to`` overlaps a configured log root (inside it, or holding
    it): such archives would be deleted by a later cleanup of that root."""
    dest = archive_destination(archive_to)
    if dest is None:
        return
    roots = {name: e.logdir for name, e in config.endpoints.items()}
    endpoint = overlapping_endpoint(str(dest), roots)
    if endpoint is not None:
        raise UsageError(
            f"archive destination {dest} overlaps the log root of endpoint {endpoint!r} ({roots[endpoint]}): "
            "archive outside every log root"
        )


def finish_interrupted(config: Config, names: list[str] | None, archive_to: str | os.PathLike[str] | None) -> list[str]:
    """Finish what an interrupted cleanup left: trash in the log roots (on object storage: runs whose
    delete or restore was interrupted), partial archives in a local archive folder (an object store
    never shows a partial upload)."""
    done: list[str] = []
    for spec in config.endpoint_specs(names):
        store = log_store(spec, config)
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
    config: Config,
    state: StateStore,
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
    stores: dict[str, AnyLogStore] = {}
    outcomes: list[RunOutcome] = []
    specs = {s.name: s for s in config.endpoint_specs()}
    check_archive_destination(config, archive_to)
    dest = archive_destination(archive_to)
    for run in plan.runs:
        archive_path: str | None = None
        try:
            if run.endpoint not in stores:
                stores[run.endpoint] = log_store(specs[run.endpoint], config)
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
                    storage_options=config.storage_options(run.endpoint) if isinstance(dest, str) else None,
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


# -- retention -----------------------------------------------------------------------------------------
RETENTION_LEASE = "retention"


@dataclass(frozen=True, slots=True)
class RetentionOutcome:
    """What one application of the retention policies did (or would do, with ``dry_run``)."""

    plan: RetentionPlan
    report: CleanupReport
    applied: bool
    busy: bool = False
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "busy": self.busy,
            "dry_run": self.dry_run,
            "refused": list(self.plan.refused),
            "bytes_to_free": self.plan.bytes_freed,
            "delete": [_decision_json(d) for d in self.plan.delete],
            "keep": [_decision_json(d) for d in self.plan.keep],
            "report": self.report.to_json(),
        }


def _decision_json(decision: RetentionDecision) -> dict[str, Any]:
    run = decision.run
    return {
        "endpoint": run.endpoint,
        "dataset": run.dataset,
        "run": run.run,
        "relpath": run.relpath,
        "size_bytes": run.size_bytes,
        "last_modified_ns": run.last_modified_ns,
        "rule": decision.rule,
        "reason": decision.reason,
        "archive_to": decision.archive_to,
    }


def plan_retention_now(config: Config, state: StateStore, names: list[str] | None = None) -> RetentionPlan:
    """Scan the endpoints that have a policy (or ``names``) and plan with the pins in the database."""
    policies = config.retention_policies()
    wanted = [n for n in (names or list(policies)) if n in policies]
    if names:
        config.endpoint_specs(names)  # unknown names: one clear error
    if not wanted:
        return RetentionPlan()
    inventories = scan_endpoints(config, wanted, state=state)
    pinned = {(p.endpoint, p.relpath) for p in state.pins()}
    return plan_retention(
        (r for inv in inventories for r in inv.runs),
        {n: policies[n] for n in wanted},
        pinned=pinned,
        now_ns=time.time_ns(),
        active_minutes=config.retention.active_minutes,
    )


def apply_retention(
    config: Config,
    state: StateStore,
    *,
    trigger: str = "cli",
    names: list[str] | None = None,
    dry_run: bool = False,
    lease_s: float = 3600.0,
    who: str | None = None,
) -> RetentionOutcome:
    """Plan and carry out the retention policies, one process at a time.

    Takes the ``retention`` lease in the state database first (``busy`` when another process holds
    it), plans from a fresh scan under the lease so two appliers never act on the same stale view,
    refuses the whole application when a limit is exceeded, and records it (runs removed, bytes,
    archives, refusals) in the database under ``who`` (default ``actor()``).
    """
    holder = f"{actor()}:{os.getpid()}:{time.time_ns()}"
    if not dry_run and not state.acquire_lease(RETENTION_LEASE, holder, lease_s):
        return RetentionOutcome(RetentionPlan(), CleanupReport(), applied=False, busy=True)
    try:
        plan = plan_retention_now(config, state, names)
        if dry_run:
            return RetentionOutcome(plan, CleanupReport(dry_run=True), applied=False, dry_run=True)
        outcomes: list[RunOutcome] = []
        for place in {d.archive_to for d in plan.delete}:
            check_archive_destination(config, place)  # all before the first deletion
        if not plan.refused:
            for archive_to in sorted({d.archive_to for d in plan.delete}, key=lambda a: a or ""):
                group = tuple(d.run for d in plan.delete if d.archive_to == archive_to)
                report = execute_plan(
                    CleanupPlan(group),
                    config,
                    state,
                    archive_to=archive_to or None,
                    command=f"retention ({trigger})",
                    who=who,
                )
                outcomes.extend(report.outcomes)
        report = CleanupReport(tuple(outcomes))
        state.record_retention(
            RetentionApplication(
                at=time.time(),
                trigger=trigger,
                actor=who or actor(),
                deleted=len(report.deleted),
                failed=len(report.failed),
                bytes_freed=report.bytes_freed,
                refused="; ".join(plan.refused) or None,
                details=json.dumps([o.to_json() for o in report.outcomes]),
            )
        )
        return RetentionOutcome(plan, report, applied=not plan.refused)
    finally:
        if not dry_run:
            state.release_lease(RETENTION_LEASE, holder)
