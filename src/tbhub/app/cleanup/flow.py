"""The one cleanup flow, for ``tbhub clean`` and the hub alike.

plan (pins, active runs, the endpoint's limits) -> digest -> lease -> finish what an interrupted
cleanup left -> plan again from a fresh scan -> the digest must still match -> archive -> delete ->
history. A pinned run is skipped unless the caller deliberately includes pins (``--include-pinned``);
an active run unless forced; a plan over the endpoint's ``max_delete``/``max_bytes`` (or the caller's
stricter limits) is refused whole. Only one cleanup or retention application runs at a time, whatever
started it: they share the ``retention`` lease in the state database.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from tbhub.adapters.liveness import pid_alive
from tbhub.app.cleanup.execute import execute_plan, finish_interrupted
from tbhub.app.cleanup.report import CleanupReport, RunOutcome
from tbhub.app.services import Services
from tbhub.core.cleanup import CleanupLimits, CleanupPlan, PlanRefused, build_plan
from tbhub.core.models import RunSummary
from tbhub.errors import TbhubError, UsageError

__all__ = [
    "LEASE_TTL_S",
    "RETENTION_LEASE",
    "Busy",
    "CleanupAsk",
    "PlanChanged",
    "clean_digest",
    "cleanup_lease",
    "finish_leftovers",
    "plan_cleanup",
    "run_cleanup",
]

#: The lease that one cleanup or retention application holds while it deletes.
RETENTION_LEASE = "retention"

log = logging.getLogger("tbhub.cleanup")
#: How long the lease lasts without a renewal: a holder renews it every quarter of this while it works,
#: so a crashed holder on another host blocks others this long at most (one on this host not at all).
LEASE_TTL_S = 120.0


class Busy(TbhubError):
    """Another cleanup or retention application holds the lease."""

    http_status = 409


class PlanChanged(TbhubError):
    """The plan differs from the one previewed and confirmed."""

    http_status = 409


@dataclass(frozen=True, slots=True)
class CleanupAsk:
    """What the caller asks beyond the runs: the safety switches and its own limits."""

    active_minutes: float
    force: bool = False  # also active runs (the CLI's --force; the hub never)
    include_pinned: bool = False  # also pinned runs (the CLI's --include-pinned)
    max_delete: int | None = None
    max_bytes: int | None = None


def _stricter(configured: int | None, asked: int | None) -> int | None:
    given = [v for v in (configured, asked) if v is not None]
    return min(given) if given else None


def plan_cleanup(services: Services, runs: Sequence[RunSummary], ask: CleanupAsk, *, now_ns: int) -> CleanupPlan:
    """The plan for ``runs``: pinned runs skipped (unless included), active runs skipped (unless
    forced), and each endpoint's share held to the stricter of its retention limits and the caller's.
    ``UsageError`` when a limit is exceeded (nothing is deleted then)."""
    pins = {(p.endpoint, p.relpath): p for p in services.state.pins()}
    chosen: list[RunSummary] = []
    pinned: list[tuple[RunSummary, str]] = []
    for run in runs:
        pin = pins.get((run.endpoint, run.relpath))
        if pin is not None and not ask.include_pinned:
            pinned.append((run, f"pinned by {pin.pinned_by}"))
        else:
            chosen.append(run)
    policies = services.config.retention_policies()
    kept: list[RunSummary] = []
    skipped: list[tuple[RunSummary, str]] = []
    for endpoint in dict.fromkeys(r.endpoint for r in chosen):
        policy = policies.get(endpoint)
        limits = CleanupLimits(
            _stricter(policy.max_delete if policy else None, ask.max_delete),
            _stricter(policy.max_bytes if policy else None, ask.max_bytes),
        )
        try:
            plan = build_plan([r for r in chosen if r.endpoint == endpoint], now_ns=now_ns,
                              active_minutes=ask.active_minutes, force=ask.force, limits=limits)
        except PlanRefused as error:
            raise UsageError(f"endpoint {endpoint!r}: {error}; nothing deleted") from None
        kept += plan.runs
        skipped += plan.skipped
    return CleanupPlan(tuple(kept), tuple(skipped) + tuple(pinned))


def clean_digest(plan: CleanupPlan, archive_to: str | None) -> str:
    """Names exactly what a plan does: each run with its size and mtime, and the archive place."""
    data = [archive_to or "", sorted((r.endpoint, r.relpath, r.size_bytes, r.last_modified_ns) for r in plan.runs)]
    return hashlib.sha256(json.dumps(data).encode()).hexdigest()[:32]


def _holder(who: str) -> str:
    """A lease holder's name: who, on which host, which process (``who:host:pid:ns``)."""
    return f"{who}:{socket.gethostname()}:{os.getpid()}:{time.time_ns()}"


def _gone(holder: str) -> bool:
    """True when ``holder`` is a process of this host that no longer runs (killed, say): its lease is
    free at once instead of when it expires. A holder elsewhere is trusted until its lease expires."""
    parts = holder.rsplit(":", 3)
    if len(parts) != 4 or parts[1] != socket.gethostname() or not parts[2].isdigit():
        return False
    return not pid_alive(int(parts[2]))


def _renew(services: Services, holder: str, ttl_s: float, stop: threading.Event) -> None:
    while not stop.wait(ttl_s / 4):
        try:
            services.state.acquire_lease(RETENTION_LEASE, holder, ttl_s)
        except Exception:  # the database is away for a moment: the next renewal tries again
            log.warning("renewing the %s lease failed", RETENTION_LEASE, exc_info=True)


@contextmanager
def cleanup_lease(services: Services, who: str, *, wait_s: float = 0.0,
                  ttl_s: float = LEASE_TTL_S) -> Iterator[None]:
    """Hold the ``retention`` lease while the block runs, renewed every ``ttl_s / 4``; wait up to
    ``wait_s`` for it, then ``Busy`` naming the holder. A holder on this host that no longer runs (a
    killed ``tbhub clean``) loses it at once; one elsewhere when its lease expires (``ttl_s``)."""
    state = services.state
    holder = _holder(who)
    deadline = time.monotonic() + wait_s
    while not state.acquire_lease(RETENTION_LEASE, holder, ttl_s):
        current = state.lease_holder(RETENTION_LEASE)
        if current is not None and _gone(current) and state.take_over_lease(RETENTION_LEASE, current, holder, ttl_s):
            log.warning("took the %s lease over from %s, which no longer runs", RETENTION_LEASE, current)
            break
        if time.monotonic() >= deadline:
            by = f" ({current.rsplit(':', 3)[0]})" if current else ""
            raise Busy(f"another cleanup or retention application is running{by}; try again when it is done")
        time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))
    stop = threading.Event()
    renewer = threading.Thread(target=_renew, args=(services, holder, ttl_s, stop), name="tbhub-lease", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()
        state.release_lease(RETENTION_LEASE, holder)


def finish_leftovers(services: Services, names: Sequence[str] | None, archive_to: str | None, *, who: str,
                     wait_s: float = 0.0) -> list[str]:
    """Finish what an interrupted cleanup left (see ``finish_interrupted``), under the lease: the trash of
    a cleanup still running elsewhere is not ours to remove."""
    with cleanup_lease(services, who, wait_s=wait_s):
        return finish_interrupted(services, list(names) if names else None, archive_to)


def run_cleanup(
    services: Services,
    plan_now: Callable[[], CleanupPlan],
    *,
    who: str,
    archive_to: str | None = None,
    confirmed: str | None = None,
    command: str = "clean",
    remove_links: bool = False,
    wait_s: float = 0.0,
    finish_in: Sequence[str] | None = None,
    on_finished: Callable[[str], None] | None = None,
    on_run: Callable[[RunSummary, RunOutcome], None] | None = None,
) -> tuple[CleanupPlan, CleanupReport]:
    """Carry out ``plan_now()`` under the lease, if it still is the ``confirmed`` digest (when given).

    ``plan_now`` plans from a fresh scan: it runs under the lease, so two cleaners never act on the
    same stale view. ``finish_in``: the endpoints whose interrupted cleanups are finished first (each
    thing removed then is passed to ``on_finished``).
    """
    with cleanup_lease(services, who, wait_s=wait_s):
        for leftover in finish_interrupted(services, list(finish_in) if finish_in else None, archive_to):
            if on_finished is not None:
                on_finished(leftover)
        plan = plan_now()
        if confirmed is not None and clean_digest(plan, archive_to) != confirmed:
            raise PlanChanged("the runs changed since the preview (new events, or removed): nothing was "
                              "deleted; check the new preview and confirm again")
        if not plan.runs:
            return plan, CleanupReport(skipped=plan.skipped)
        report = execute_plan(plan, services, archive_to=archive_to, command=command, who=who,
                              remove_links=remove_links, on_run=on_run)
        return plan, report
