"""The pages: endpoints, one endpoint's runs, usage and alerts (the run page and compare: ``runs``)."""

from __future__ import annotations

import time
from types import SimpleNamespace
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from tbhub.app.alerts import alert_history
from tbhub.app.retention import retention_status
from tbhub.app.usage import compute_usage
from tbhub.core.accounts import Role
from tbhub.core.cost import PRICE_NOT_SET
from tbhub.core.units import format_age, format_size
from tbhub.interfaces.cost_records import usage_rows, usage_totals
from tbhub.interfaces.records import age_style
from tbhub.interfaces.web.auth import RoleTable
from tbhub.interfaces.web.deps import HubDep, TemplatesDep, page_context
from tbhub.interfaces.web.payloads import channels_json, endpoint_json, no_marks, run_json, run_marks
from tbhub.interfaces.web.trends_data import trends_data

__all__ = ["access", "router"]

router = APIRouter(include_in_schema=False)
access = RoleTable()


@router.get("/", response_class=HTMLResponse)
@access(Role.VIEWER)
def index(request: Request, hub: HubDep, templates: TemplatesDep) -> Response:
    now_ns = time.time_ns()
    display = hub.config.display
    endpoints = [endpoint_json(v, request, now_ns) for v in hub.views()]
    for e in endpoints:
        newest = e["newest_run"]
        e["newest_style"] = age_style(newest["age_seconds"], display.fresh_days, display.old_days) if newest else ""
    retention = retention_status(hub.services, time.time())
    return templates.TemplateResponse(
        request, "index.html", {**page_context(request), "endpoints": endpoints, "retention": retention}
    )


@router.get("/usage", response_class=HTMLResponse)
@access(Role.VIEWER)
def usage_page(request: Request, hub: HubDep, templates: TemplatesDep) -> Response:
    cost = hub.config.cost
    compute = compute_usage(hub.services, time.time(), scan=False)
    rows = usage_rows(hub.usage(), compute, cost.storage_per_gb_month, cost.currency)
    return templates.TemplateResponse(
        request,
        "usage.html",
        {
            **page_context(request),
            "rows": rows,
            "currency": cost.currency,
            "total": sum(r["size_bytes"] for r in rows),
            "total_cost": sum(r["monthly_cost"] for r in rows),
            "compute": usage_totals(compute),
            "price_not_set": PRICE_NOT_SET,
        },
    )


@router.get("/trends", response_class=HTMLResponse)
@access(Role.VIEWER)
def trends_page(
    request: Request, hub: HubDep, templates: TemplatesDep, dataset: str = "", metric: str = "",
) -> Response:
    data = trends_data(hub, dataset or None, metric or None)
    return templates.TemplateResponse(
        request, "trends.html", {**page_context(request), "data": data, "form": {"dataset": dataset, "metric": metric}}
    )


@router.get("/endpoints/{name}", response_class=HTMLResponse)
@access(Role.VIEWER)
def endpoint_page(request: Request, name: str, hub: HubDep, templates: TemplatesDep) -> Response:
    view = hub.view(name)
    now_ns = time.time_ns()
    display = hub.config.display
    runs = sorted(view.runs, key=lambda r: -r.last_modified_ns)
    statuses = hub.state.load_run_states(name)
    marks = run_marks(hub, name)
    # Display strings are made here, not with template filters: the page lists thousands of runs.
    unmarked = no_marks()
    prefix = f"/runs/{quote(name, safe='')}/"
    rows = []
    for r in runs:
        row = run_json(r, now_ns, statuses.get(r.relpath))
        row.update(marks.get(r.relpath, unmarked))
        row["style"] = age_style(row["age_seconds"], display.fresh_days, display.old_days)
        row["href"] = prefix + quote(row["relpath"])
        row["size_h"] = format_size(r.size_bytes)
        row["events_h"] = f"{r.event_count:,}"
        row["step_h"] = "" if r.last_step is None else f"{r.last_step:,}"
        row["modified_h"] = (row["last_modified"] or "").replace("T", " ").replace("Z", "")
        row["age_h"] = format_age(row["age_seconds"])
        # Attributes, not keys: Jinja tries getattr before [] on every `r.x`, and a dict's
        # AttributeError costs more than the rest of the cell.
        rows.append(SimpleNamespace(**row))
    return templates.TemplateResponse(
        request,
        "endpoint.html",
        {**page_context(request), "endpoint": endpoint_json(view, request, now_ns), "runs": rows},
    )


@router.get("/alerts", response_class=HTMLResponse)
@access(Role.VIEWER)
def alerts_page(request: Request, hub: HubDep, templates: TemplatesDep) -> Response:
    return templates.TemplateResponse(
        request,
        "alerts.html",
        {**page_context(request), "alerts": alert_history(hub.state, 200), "channels": channels_json(hub)},
    )
