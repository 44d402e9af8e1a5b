"""Cleanup: the use case that deletes runs (archiving them first when asked), for every caller.

``flow`` is the one flow (plan with pins, active runs and limits -> digest -> lease -> archive ->
delete -> history) that ``tbhub clean``, the hub's clean page and API, and retention all take;
``execute`` carries out a plan run by run; ``places`` says where archives may go; ``report`` is what a
cleanup did. Only the manage commands and the hub's admins reach this package; ``serve`` otherwise
never writes below a log root.
"""

from tbhub.app.cleanup.execute import execute_plan, finish_interrupted
from tbhub.app.cleanup.flow import (
    LEASE_TTL_S,
    RETENTION_LEASE,
    Busy,
    CleanupAsk,
    PlanChanged,
    clean_digest,
    cleanup_lease,
    finish_leftovers,
    plan_cleanup,
    run_cleanup,
)
from tbhub.app.cleanup.places import (
    Forbidden,
    archive_destination,
    check_archive_destination,
    chosen_archive_place,
    configured_archive_places,
)
from tbhub.app.cleanup.report import CleanupReport, RunOutcome, run_summary

__all__ = [
    "LEASE_TTL_S",
    "RETENTION_LEASE",
    "Busy",
    "CleanupAsk",
    "CleanupReport",
    "Forbidden",
    "PlanChanged",
    "RunOutcome",
    "archive_destination",
    "check_archive_destination",
    "chosen_archive_place",
    "clean_digest",
    "cleanup_lease",
    "configured_archive_places",
    "execute_plan",
    "finish_interrupted",
    "finish_leftovers",
    "plan_cleanup",
    "run_cleanup",
    "run_summary",
]
