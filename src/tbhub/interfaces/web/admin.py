"""Admin actions from the hub: clean an endpoint's runs, apply the retention policies now.

Both run the manage use-cases the CLI runs (``tbhub clean``: ``build_plan`` then ``execute_plan``;
``tbhub retention apply``: ``apply_retention``), record the same history, under the signed-in user's
name. The flow never deletes on a GET and never without its confirmation step:

1. choose runs (``GET /endpoints/NAME/clean``), delete or archive first;
2. preview (``POST .../clean/preview``): a fresh scan, the plan as the CLI's ``--dry-run`` shows it
   (runs, bytes, where archives go) and what is skipped: active runs as the CLI skips them, pinned
   runs, which the hub never deletes by hand either;
3. confirm (``POST .../clean/execute`` with ``confirm`` and the preview's ``plan`` digest): the plan is
   built again from a fresh scan and carried out only if it is still exactly what was previewed (a run
   that grew or became active meanwhile changes the digest: preview again).

Configured retention limits (``max_delete``, ``max_bytes``) of the endpoint cap what a web clean may
remove; the form can only lower them. Deletions from the hub take the ``retention`` lease, so they
never overlap the scheduled retention job of any server sharing the state database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel

from tbhub.app.cleanup import (
    Busy,
    CleanupAsk,
    CleanupReport,
    Forbidden,
    PlanChanged,
    chosen_archive_place,
    clean_digest,
    configured_archive_places,
    plan_cleanup,
    run_cleanup,
)
from tbhub.app.hub import Hub
from tbhub.app.inventory import scan_endpoints
from tbhub.app.retention import apply_retention, plan_retention_now, retention_digest
from tbhub.core.accounts import Role
from tbhub.core.cleanup import CleanupPlan
from tbhub.core.models import RunSummary
from tbhub.core.selection import SelectionError, parse_selection
from tbhub.core.units import format_size, parse_size
from tbhub.errors import TbhubError, UsageError
from tbhub.interfaces.web.auth import RoleTable, current_user, read_form_lists

__all__ = ["add_admin_routes"]

log = logging.getLogger("tbhub.hub")


@dataclass(frozen=True, slots=True)
class CleanRequest:
    """What an admin asked for: runs (relpaths) of one endpoint, archive first or not, limits."""

    endpoint: str
    runs: tuple[str, ...]
    archive_to: str | None = None
    max_delete: int | None = None
    max_bytes: int | None = None


class CleanRuns:
    """A cleanup of one endpoint's runs, as the hub's pages and API ask for it, through the one flow
    ``tbhub clean`` takes (``tbhub.app.cleanup``). The hub has no ``--force`` nor ``--include-pinned``:
    active and pinned runs are always skipped here."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.services = hub.services

    def scan(self, endpoint: str) -> list[RunSummary]:
        """A fresh (incremental) scan of the endpoint: plans never act on a stale index."""
        (inventory,) = scan_endpoints(self.services, [endpoint], workers=1)
        return sorted(inventory.runs, key=lambda r: r.last_modified_ns)  # oldest first, as the CLI lists

    def plan(self, request: CleanRequest) -> CleanupPlan:
        """The plan for ``request`` from a fresh scan. ``UsageError`` for unknown runs or a broken limit."""
        self.hub.spec(request.endpoint)
        if not request.runs:
            raise UsageError("select at least one run")
        runs = {r.relpath: r for r in self.scan(request.endpoint)}
        missing = [p for p in request.runs if p not in runs]
        if missing:
            raise UsageError(f"no run {missing[0]!r} in endpoint {request.endpoint!r} now (removed already?)")
        ask = CleanupAsk(self.hub.config.retention.active_minutes, max_delete=request.max_delete,
                         max_bytes=request.max_bytes)
        return plan_cleanup(self.services, [runs[p] for p in dict.fromkeys(request.runs)], ask, now_ns=time.time_ns())

    def execute(self, request: CleanRequest, confirmed: str | None, who: str) -> tuple[CleanupPlan, CleanupReport]:
        """Carry out the plan if it is still the ``confirmed`` digest (when given), under the lease."""
        plan, report = run_cleanup(self.services, lambda: self.plan(request), who=who, archive_to=request.archive_to,
                                   confirmed=confirmed, finish_in=[request.endpoint])
        try:
            self.scan(request.endpoint)  # the index (and the runs page) without the removed runs at once
        except (TbhubError, OSError) as error:  # the deletions are done and recorded; the next scan catches up
            log.warning("rescanning %s after a cleanup failed: %s", request.endpoint, error)
        return plan, report


def _plan_json(plan: CleanupPlan, archive_to: str | None) -> dict[str, Any]:
    return {
        "plan": clean_digest(plan, archive_to),
        "archive_to": archive_to,
        "runs": [{"dataset": r.dataset, "run": r.run, "relpath": r.relpath, "size_bytes": r.size_bytes}
                 for r in plan.runs],
        "bytes": plan.total_bytes,
        "skipped": [{"relpath": r.relpath, "reason": why} for r, why in plan.skipped],
    }


class CleanIn(BaseModel):
    runs: list[str]
    archive_to: str | None = None
    max_delete: int | None = None
    max_bytes: str | None = None
    dry_run: bool = True
    plan: str | None = None


class RetentionApplyIn(BaseModel):
    endpoints: list[str] | None = None
    plan: str | None = None


def _int_field(form: dict[str, list[str]], key: str) -> int | None:
    text = (form.get(key) or [""])[-1].strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"{key}: {text!r} is not a whole number") from None
    if value < 0:
        raise UsageError(f"{key}: must not be negative")
    return value


def _size_field(text: str | None, key: str) -> int | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        return parse_size(text)
    except ValueError as error:
        raise UsageError(f"{key}: {error}") from None


def _last(form: dict[str, list[str]], key: str) -> str:
    return (form.get(key) or [""])[-1]


def add_admin_routes(
    app: FastAPI,
    hub: Hub,
    templates: Jinja2Templates,
    access: RoleTable,
    context: Callable[[Request], dict[str, Any]],
) -> None:
    cleaner = CleanRuns(hub)
    accounts = hub.services.accounts

    def full_admin(request: Request) -> bool:
        """An admin of every endpoint, not one raised to admin by a grant on the endpoint at hand."""
        user = current_user(request)
        if user is None or user.role < Role.ADMIN or user.endpoints is not None:
            return False  # a token limited to some endpoints is an admin of those only
        if user.id is None:  # no login, a proxy user without an account, a token: never raised by a grant
            return True
        row = accounts.user(user.name)
        return row is not None and row.role >= Role.ADMIN
    # The runs table links to its clean page for whoever is an admin on that endpoint.
    access.scope("endpoint_page", "path")

    def who(request: Request) -> str:
        user = current_user(request)
        return f"{user.name} (hub)" if user else "hub"

    def clean_request(request: Request, endpoint: str, form: dict[str, list[str]]) -> CleanRequest:
        place = _last(form, "archive_to").strip()
        archive = chosen_archive_place(hub.services, place, full_admin=full_admin(request)) \
            if _last(form, "mode") == "archive" else None
        if _last(form, "mode") == "archive" and archive is None:
            raise UsageError("archive first: name the archive folder")
        return CleanRequest(endpoint, tuple(p.strip("/") for p in form.get("run", []) if p.strip("/")), archive,
                            _int_field(form, "max_delete"), _size_field(_last(form, "max_bytes"), "max_bytes"))

    def page(request: Request, endpoint: str, step: str, status: int = 200, **extra: Any) -> Response:
        policy = hub.config.retention_policies().get(endpoint)
        data = {
            **context(request), "endpoint": endpoint, "step": step,
            "destinations": configured_archive_places(hub.services, endpoint),
            "policy_max_delete": policy.max_delete if policy else None,
            "policy_max_bytes": format_size(policy.max_bytes) if policy and policy.max_bytes else None,
            "error": None, **extra,
        }
        return templates.TemplateResponse(request, "clean.html", data, status_code=status)

    def choose(request: Request, endpoint: str, runs: Sequence[RunSummary], checked: Iterable[str],
               form: dict[str, list[str]] | None = None, error: str | None = None, status: int = 200) -> Response:
        now_ns = time.time_ns()
        pins = {p.relpath for p in hub.state.pins() if p.endpoint == endpoint}
        active_s = hub.config.retention.active_minutes * 60
        rows = [{"run": r, "age_s": r.age_seconds(now_ns), "active": r.age_seconds(now_ns) < active_s,
                 "pinned": r.relpath in pins} for r in runs]
        form = form or {}
        return page(request, endpoint, "choose", status, rows=rows, checked=set(checked), error=error,
                    mode=_last(form, "mode") or "delete", archive_to=_last(form, "archive_to"),
                    max_delete=_last(form, "max_delete"), max_bytes=_last(form, "max_bytes"))

    # -- pages ----------------------------------------------------------------------------------
    @app.get("/endpoints/{name}/clean", response_class=HTMLResponse, include_in_schema=False)
    @access(Role.ADMIN, endpoint="path")
    def clean_page(request: Request, name: str, select: str = "",
                   run: list[str] = Query(default=[])) -> Response:
        hub.spec(name)
        runs = sorted(hub.runs(name), key=lambda r: r.last_modified_ns)
        # Runs chosen in the runs explorer come as run=ENDPOINT/RELPATH: ticked here, nothing else happens.
        checked: list[str] = [r.removeprefix(f"{name}/") for r in run]
        if select:
            old_s = hub.config.display.old_days * 86400
            now_ns = time.time_ns()
            try:
                picked = parse_selection(select, len(runs), lambda i: runs[i].age_seconds(now_ns) >= old_s)
            except SelectionError as error:
                return choose(request, name, runs, [], error=f"select: {error}", status=400)
            checked = [runs[i].relpath for i in picked or []]
        return choose(request, name, runs, checked)

    def again(request: Request, name: str, form: dict[str, list[str]], error: TbhubError) -> Response:
        """The selection page once more, with what was chosen and why it did not go through."""
        runs = sorted(hub.runs(name), key=lambda r: r.last_modified_ns)
        return choose(request, name, runs, form.get("run", []), form, error.message, error.http_status)

    def preview(request: Request, name: str, form: dict[str, list[str]], status: int = 200,
                error: str | None = None) -> Response:
        try:
            wanted = clean_request(request, name, form)
            plan = cleaner.plan(wanted)
        except (UsageError, Forbidden) as refused:
            return again(request, name, form, refused)
        return page(request, name, "preview", status, plan=plan, wanted=wanted, form=form,
                    digest=clean_digest(plan, wanted.archive_to), error=error)

    def execute(request: Request, name: str, form: dict[str, list[str]]) -> Response:
        try:
            wanted = clean_request(request, name, form)
            if _last(form, "confirm") != "yes" or not _last(form, "plan"):
                raise UsageError("confirm the preview first: nothing was deleted")
            plan, report = cleaner.execute(wanted, _last(form, "plan"), who(request))
        except PlanChanged as changed:
            return preview(request, name, form, changed.http_status, changed.message)
        except (UsageError, Busy, Forbidden) as refused:
            return again(request, name, form, refused)
        return page(request, name, "done", 200, plan=plan, report=report, wanted=wanted)

    @app.post("/endpoints/{name}/clean/preview", response_class=HTMLResponse, include_in_schema=False)
    @access(Role.ADMIN, endpoint="path")
    async def clean_preview(request: Request, name: str) -> Response:
        hub.spec(name)
        form = await read_form_lists(request)
        return await asyncio.to_thread(preview, request, name, form)

    @app.post("/endpoints/{name}/clean/execute", response_class=HTMLResponse, include_in_schema=False)
    @access(Role.ADMIN, endpoint="path")
    async def clean_execute(request: Request, name: str) -> Response:
        hub.spec(name)
        form = await read_form_lists(request)
        return await asyncio.to_thread(execute, request, name, form)

    # -- the API --------------------------------------------------------------------------------
    @app.post("/api/endpoints/{name}/clean", tags=["manage"])
    @access(Role.ADMIN, endpoint="path")
    def api_clean(request: Request, name: str, body: CleanIn) -> dict[str, Any]:
        """Plan (``dry_run``, the default) or carry out a cleanup of runs (relpaths) of an endpoint, as
        ``tbhub clean`` does: active and pinned runs are skipped, limits are honoured, ``archive_to``
        archives each run first. The dry run answers ``plan``, a digest: pass it back with
        ``dry_run: false`` and the cleanup happens only if the plan is still the same (else 409). Admin."""
        hub.spec(name)
        archive = chosen_archive_place(hub.services, body.archive_to, full_admin=full_admin(request))
        wanted = CleanRequest(name, tuple(p.strip("/") for p in body.runs), archive,
                              body.max_delete, _size_field(body.max_bytes, "max_bytes"))
        if body.dry_run:
            plan = cleaner.plan(wanted)
            return {"dry_run": True, **_plan_json(plan, wanted.archive_to)}
        plan, report = cleaner.execute(wanted, body.plan, who(request))
        done = report.to_json()  # its runs carry each outcome, archive and error: the plan's must not hide them
        return {**done, **_plan_json(plan, wanted.archive_to), "runs": done["runs"]}

    @app.get("/api/history", tags=["manage"])
    @access(Role.VIEWER)
    def api_history(limit: int = 100) -> list[dict[str, Any]]:
        """What clean and retention deleted, newest first: when, who, which run, bytes, archive, outcome."""
        return [{f: getattr(r, f) for f in r.__slots__} for r in hub.state.deletions(limit=limit)]

    # -- retention --------------------------------------------------------------------------------
    def retention_context(request: Request, outcome: Any = None, error: str | None = None) -> dict[str, Any]:
        plan = plan_retention_now(hub.services)
        return {**context(request), "plan": plan, "digest": retention_digest(plan), "outcome": outcome,
                "error": error, "policies": sorted(hub.config.retention_policies()),
                "history": hub.state.retention_history(limit=10), "now_ns": time.time_ns()}

    @app.get("/admin/retention", response_class=HTMLResponse, include_in_schema=False)
    @access(Role.ADMIN)
    async def retention_page(request: Request) -> Response:
        data = await asyncio.to_thread(retention_context, request)
        return templates.TemplateResponse(request, "retention.html", data)

    def apply_now(request: Request, confirmed: str | None, names: list[str] | None) -> Any:
        if confirmed is not None and retention_digest(plan_retention_now(hub.services, names)) != confirmed:
            raise PlanChanged("the retention plan changed since it was shown: nothing was removed; review it again")
        outcome = apply_retention(hub.services, trigger="hub", names=names, who=who(request))
        if outcome.busy:
            raise Busy("another process is applying the retention policies now; nothing done")
        return outcome

    @app.post("/admin/retention/apply", response_class=HTMLResponse, include_in_schema=False)
    @access(Role.ADMIN)
    async def retention_apply(request: Request) -> Response:
        form = await read_form_lists(request)
        try:
            if _last(form, "confirm") != "yes" or not _last(form, "plan"):
                raise UsageError("confirm the plan first: nothing was removed")
            outcome = await asyncio.to_thread(apply_now, request, _last(form, "plan"), None)
        except (UsageError, Busy, PlanChanged) as error:
            data = await asyncio.to_thread(retention_context, request, None, error.message)
            return templates.TemplateResponse(request, "retention.html", data, status_code=error.http_status)
        data = await asyncio.to_thread(retention_context, request, outcome)
        return templates.TemplateResponse(request, "retention.html", data)

    @app.get("/api/retention/plan", tags=["retention"])
    @access(Role.ADMIN)
    def api_retention_plan() -> dict[str, Any]:
        """What the policies would remove now and what each keeps (``tbhub retention plan``), with the
        ``plan`` digest to confirm an application with. Admin."""
        outcome = apply_retention(hub.services, dry_run=True)
        return {**outcome.to_json(), "plan": retention_digest(outcome.plan)}

    @app.post("/api/retention/apply", tags=["retention"])
    @access(Role.ADMIN)
    def api_retention_apply(request: Request, body: RetentionApplyIn) -> JSONResponse:
        """Apply the policies now under the retention lease (``tbhub retention apply --yes``); with
        ``plan``, only if the plan is still that one (else 409). 409 also when another process applies
        them now. Admin."""
        if body.endpoints:
            hub.config.endpoint_specs(body.endpoints)
        outcome = apply_now(request, body.plan, body.endpoints)
        return JSONResponse(outcome.to_json())

