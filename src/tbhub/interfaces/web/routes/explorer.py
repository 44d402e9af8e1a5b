"""The hub page (summary cards), the runs explorer (one endpoint: ``/endpoints/NAME``; all: ``/runs``)
and the alert feed; each also answers its live part alone to htmx's polling (``HX-Request``).

Everything comes from the state database (``app.explorer``: run rows sorted, filtered and paged in
SQL); a view is its URL query (``core.explorer.RunQuery``), so it can be shared and bookmarked.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from tbhub.app.alerts import alert_history
from tbhub.app.explorer import ExplorerRow, RunPage, RunQuery, explore, hub_summary
from tbhub.app.hub import EndpointView, Hub
from tbhub.app.retention import retention_status
from tbhub.core.accounts import Role
from tbhub.core.bookmarks import tensorboard_link, tensorboard_url
from tbhub.core.explorer import PAGE_SIZES, STATUSES, runs_filter
from tbhub.core.names import shown
from tbhub.core.units import format_age, format_size
from tbhub.errors import UsageError
from tbhub.interfaces.records import age_style
from tbhub.interfaces.web.auth import RoleTable, current_user
from tbhub.interfaces.web.deps import HubDep, TemplatesDep, page_context
from tbhub.interfaces.web.payloads import ACTIVE_MINUTES, channels_json, endpoint_json

__all__ = ["LIVE_SECONDS", "access", "live_request", "router"]

router = APIRouter(include_in_schema=False)
access = RoleTable()

#: How often live parts poll (htmx; paused while the tab is hidden).
LIVE_SECONDS = 5
#: The explorer's columns: (sort key, heading, numeric).
COLUMNS = (
    ("dataset", "dataset", False), ("run", "run", False), ("status", "status", False),
    ("modified", "age", False), ("step", "last step", True), ("events", "events", True),
    ("size", "size", True), ("files", "files", True), ("tags", "tags", False), ("notes", "notes", False),
)
def live_request(request: Request) -> bool:
    """Whether htmx's polling asks (``HX-Request``): answer the page's live part alone."""
    return request.headers.get("hx-request") == "true"


def _params(request: Request) -> dict[str, str]:
    return {key: request.query_params.getlist(key)[-1] for key in request.query_params}


def _row(r: ExplorerRow, now_ns: int, fresh_days: float, old_days: float) -> SimpleNamespace:
    age = max(0.0, (now_ns - r.last_modified_ns) / 1e9)
    relpath = shown(r.relpath)
    return SimpleNamespace(
        endpoint=r.endpoint, dataset=shown(r.dataset), run=shown(r.run), relpath=relpath,
        key=f"{r.endpoint}/{relpath}",
        href=f"/runs/{quote(r.endpoint, safe='')}/{quote(relpath)}",
        tb=tensorboard_link(r.endpoint, r.relpath),
        status=r.status or "unknown", reason=r.reason or "not judged yet (the alert engine has not seen it)",
        age_h=format_age(age), age_style=age_style(age, fresh_days, old_days), modified=r.last_modified_ns / 1e9,
        active=age < ACTIVE_MINUTES * 60, corrupt=r.corrupt,
        step_h="" if r.last_step is None else f"{r.last_step:,}", events_h=f"{r.event_count:,}",
        size_h=format_size(r.size_bytes), files=r.event_files, pinned=r.pinned, tags=r.tags, notes=r.notes,
        last_note=r.last_note or "",
    )


def _pages(page: RunPage) -> list[tuple[str, int | None]]:
    """Page links: first, a window around the current page, last (``None``: a gap)."""
    current, last = page.query.page, page.pages
    wanted = sorted({1, last, *range(max(1, current - 2), min(last, current + 2) + 1)})
    out: list[tuple[str, int | None]] = []
    for i, n in enumerate(wanted):
        if i and n - wanted[i - 1] > 1:
            out.append(("…", None))
        out.append((str(n), n))
    return out


def _explorer_context(request: Request, hub: Hub, endpoint: str | None) -> tuple[dict[str, Any], int]:
    params = _params(request)
    status, error = 200, None
    try:
        query = RunQuery.from_params(params)
    except ValueError as problem:
        query, status, error = RunQuery(), 400, str(problem)
    now_ns = time.time_ns()
    page = explore(hub.services, endpoint, query, now_ns)
    display = hub.config.display
    base = f"/endpoints/{quote(endpoint, safe='')}" if endpoint else "/runs"
    user = current_user(request)
    one_endpoint = endpoint or query.endpoint or (next(iter(hub.specs)) if len(hub.specs) == 1 else "")
    context = {
        **page_context(request),
        "endpoint": endpoint,
        "one_endpoint": one_endpoint,
        "endpoints": list(hub.specs),
        "query": query,
        "page": page,
        "rows": [_row(r, now_ns, display.fresh_days, display.old_days) for r in page.rows],
        "columns": COLUMNS,
        "statuses": STATUSES,
        "active_minutes": ACTIVE_MINUTES,
        "page_sizes": PAGE_SIZES,
        "page_links": _pages(page),
        "base": base,
        "href": lambda **changes: base + "?" + urlencode(query.params(**changes)),
        "sort_href": lambda key: base + "?" + urlencode(query.sorted_by(key)),
        "live_url": base + ("?" + urlencode(query.params()) if query.params() else ""),
        "live_seconds": LIVE_SECONDS,
        "error": error,
        # On /endpoints/NAME the user's role is the one on NAME (admin.py scopes endpoint_page by its path).
        "can_clean": bool(one_endpoint) and user is not None and user.role >= Role.ADMIN
        and user.may_use(one_endpoint),
    }
    return context, status


def _endpoint_header(request: Request, hub: Hub, name: str) -> dict[str, Any]:
    """What the explorer's head says of an endpoint: TensorBoard's state, errors, last scan (no run list)."""
    view = EndpointView(hub.spec(name), [], hub.child(name), hub.state.last_scan(name), hub.mirrors.status(name))
    header = endpoint_json(view, request, time.time_ns())
    header["exposed"] = hub.config.endpoints[name].expose
    return header


@router.get("/runs", response_class=HTMLResponse)
@access(Role.VIEWER)
def all_runs_page(request: Request, hub: HubDep, templates: TemplatesDep) -> Response:
    context, status = _explorer_context(request, hub, None)
    name = "explorer_results.html" if live_request(request) else "endpoint.html"
    return templates.TemplateResponse(request, name, {**context, "header": None}, status_code=status)


@router.get("/endpoints/{name}", response_class=HTMLResponse)
@access(Role.VIEWER)
def endpoint_page(request: Request, name: str, hub: HubDep, templates: TemplatesDep) -> Response:
    hub.spec(name)  # UnknownEndpoint: 404
    context, status = _explorer_context(request, hub, name)
    if live_request(request):
        return templates.TemplateResponse(request, "explorer_results.html", context, status_code=status)
    header = _endpoint_header(request, hub, name)
    return templates.TemplateResponse(request, "endpoint.html", {**context, "header": header}, status_code=status)


@router.get("/explore/tensorboard")
@access(Role.VIEWER)
def selected_in_tensorboard(hub: HubDep, run: list[str] = Query(default=[])) -> Response:
    """TensorBoard's scalars of exactly the selected runs (``run=ENDPOINT/RELPATH``, one endpoint)."""
    picked = [r.partition("/") for r in run if "/" in r]
    endpoints = {e for e, _, _ in picked}
    if not picked:
        raise UsageError("choose runs first (run=ENDPOINT/DATASET/RUN)")
    if len(endpoints) > 1:
        raise UsageError("TensorBoard shows one endpoint's runs: choose runs of one endpoint")
    (endpoint,) = endpoints
    hub.spec(endpoint)
    return RedirectResponse(tensorboard_url(endpoint, "scalars", runs_filter([p for _, _, p in picked])), 303)


@router.get("/", response_class=HTMLResponse)
@access(Role.VIEWER)
def index(request: Request, hub: HubDep, templates: TemplatesDep) -> Response:
    now_ns = time.time_ns()
    summary = hub_summary(hub.services, now_ns, ACTIVE_MINUTES * 60)
    display = hub.config.display
    endpoints = []
    for name in hub.specs:
        e = _endpoint_header(request, hub, name)
        counts = summary.endpoints[name]
        e["runs"], e["size_bytes"], e["counts"] = counts.runs, counts.size_bytes, counts
        e["active"] = summary.active.get(name, 0)
        newest = hub.state.query_runs([name], RunQuery(per=25), now_ns).rows[:1]
        e["newest_run"] = None
        if newest:
            age = max(0.0, (now_ns - newest[0].last_modified_ns) / 1e9)
            e["newest_run"] = {"dataset": shown(newest[0].dataset), "run": shown(newest[0].run),
                               "age_seconds": age, "at": newest[0].last_modified_ns / 1e9,
                               "style": age_style(age, display.fresh_days, display.old_days)}
        endpoints.append(e)
    context = {**page_context(request), "endpoints": endpoints, "summary": summary, "live_seconds": LIVE_SECONDS,
               "active_minutes": ACTIVE_MINUTES}
    if live_request(request):
        return templates.TemplateResponse(request, "hub_summary.html", context)
    context["retention"] = retention_status(hub.services, time.time())
    return templates.TemplateResponse(request, "index.html", context)


@router.get("/alerts", response_class=HTMLResponse)
@access(Role.VIEWER)
def alerts_page(request: Request, hub: HubDep, templates: TemplatesDep) -> Response:
    context = {**page_context(request), "alerts": alert_history(hub.state, 200), "channels": channels_json(hub),
               "live_seconds": LIVE_SECONDS}
    return templates.TemplateResponse(request, "alerts_feed.html" if live_request(request) else "alerts.html", context)
