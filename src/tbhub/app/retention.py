"""Retention: plan from the policies and a fresh scan, and apply under the ``retention`` lease."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from tbhub.adapters.db.store import RetentionApplication
from tbhub.app.cleanup import CleanupReport, RunOutcome, check_archive_destination, execute_plan
from tbhub.app.cleanup.flow import Busy, cleanup_lease
from tbhub.app.inventory import scan_endpoints
from tbhub.app.services import Services, actor
from tbhub.core.cleanup import CleanupPlan
from tbhub.core.retention import RetentionDecision, RetentionPlan, plan_retention

__all__ = ["RetentionOutcome", "apply_retention", "plan_retention_now", "retention_digest", "retention_status"]


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


def plan_retention_now(services: Services, names: list[str] | None = None) -> RetentionPlan:
    """Scan the endpoints that have a policy (or ``names``) and plan with the pins in the database."""
    config = services.config
    policies = config.retention_policies()
    wanted = [n for n in (names or list(policies)) if n in policies]
    if names:
        services.select(names)  # unknown names: one clear error
    if not wanted:
        return RetentionPlan()
    inventories = scan_endpoints(services, wanted)
    pinned = {(p.endpoint, p.relpath) for p in services.state.pins()}
    return plan_retention(
        (r for inv in inventories for r in inv.runs),
        {n: policies[n] for n in wanted},
        pinned=pinned,
        now_ns=time.time_ns(),
        active_minutes=config.retention.active_minutes,
    )


def apply_retention(
    services: Services,
    *,
    trigger: str = "cli",
    names: list[str] | None = None,
    dry_run: bool = False,
    who: str | None = None,
) -> RetentionOutcome:
    """Plan and carry out the retention policies, one process at a time.

    Takes the ``retention`` lease in the state database first (``busy`` when another process holds
    it: the lease every cleanup takes, see ``cleanup_lease``), plans from a fresh scan under the lease
    so two appliers never act on the same stale view, refuses the whole application when a limit is
    exceeded, and records it (runs removed, bytes, archives, refusals) in the database under ``who``
    (default ``actor()``).
    """
    if dry_run:
        return RetentionOutcome(plan_retention_now(services, names), CleanupReport(dry_run=True), applied=False,
                                dry_run=True)
    try:
        with cleanup_lease(services, who or actor()):
            return _apply(services, trigger, names, who)
    except Busy:
        return RetentionOutcome(RetentionPlan(), CleanupReport(), applied=False, busy=True)


def _apply(services: Services, trigger: str, names: list[str] | None, who: str | None) -> RetentionOutcome:
    plan = plan_retention_now(services, names)
    outcomes: list[RunOutcome] = []
    for place in {d.archive_to for d in plan.delete}:
        check_archive_destination(services, place)  # all before the first deletion
    if not plan.refused:
        for archive_to in sorted({d.archive_to for d in plan.delete}, key=lambda a: a or ""):
            group = tuple(d.run for d in plan.delete if d.archive_to == archive_to)
            report = execute_plan(
                CleanupPlan(group), services, archive_to=archive_to or None, command=f"retention ({trigger})", who=who
            )
            outcomes.extend(report.outcomes)
    report = CleanupReport(tuple(outcomes))
    services.state.record_retention(
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


def retention_digest(plan: RetentionPlan) -> str:
    """Names exactly what a retention plan does, for a confirmation to be checked against."""
    data = [sorted((d.run.endpoint, d.run.relpath, d.run.size_bytes, d.run.last_modified_ns, d.archive_to or "")
                   for d in plan.delete), list(plan.refused)]
    return hashlib.sha256(json.dumps(data).encode()).hexdigest()[:32]


def retention_status(services: Services, now: float) -> dict[str, Any]:
    """Last and next application of the retention policies, for the hub page and the API."""
    schedule = services.config.retention.schedule_spec()
    history = services.state.retention_history(limit=1)
    last = history[0] if history else None
    next_at: float | None = None
    if schedule is not None and services.config.retention_policies():
        last_dt = dt.datetime.fromtimestamp(last.at).astimezone() if last else None
        next_at = schedule.next_after(last_dt, dt.datetime.fromtimestamp(now).astimezone()).timestamp()
    return {
        "policies": sorted(services.config.retention_policies()),
        "schedule": services.config.retention.schedule
        or (f"every {services.config.retention.every}" if services.config.retention.every else None),
        "next_at": next_at,
        "last": None
        if last is None
        else {
            "at": last.at,
            "trigger": last.trigger,
            "deleted": last.deleted,
            "failed": last.failed,
            "bytes_freed": last.bytes_freed,
            "refused": last.refused,
            "runs": json.loads(last.details),
        },
    }
