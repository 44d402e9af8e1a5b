"""What a cleanup did: one outcome per run, and the report a command or a page renders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tbhub.core.models import RunSummary

__all__ = ["CleanupReport", "RunOutcome", "run_summary"]


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
