"""The pages: usage and trends (the hub, the runs explorer and alerts: ``explorer``; the run page and
compare: ``runs``)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from tbhub.core.accounts import Role
from tbhub.core.cost import PRICE_NOT_SET
from tbhub.core.usage import STORAGE_PRICE_NOT_SET
from tbhub.errors import UsageError
from tbhub.interfaces.cost_records import usage_totals
from tbhub.interfaces.web.auth import RoleTable
from tbhub.interfaces.web.deps import HubDep, TemplatesDep, page_context
from tbhub.interfaces.web.targeting import TARGET_EXAMPLE, read_note, target_search
from tbhub.interfaces.web.trends_data import trends_data
from tbhub.interfaces.web.usage_data import usage_data

__all__ = ["access", "router"]

router = APIRouter(include_in_schema=False)
access = RoleTable()


@router.get("/usage", response_class=HTMLResponse)
@access(Role.VIEWER)
def usage_page(
    request: Request, hub: HubDep, templates: TemplatesDep, dataset: str = "", target: str = "",
) -> Response:
    status, error, search = 200, None, None
    started = time.perf_counter()
    try:
        search = target_search(request, target)
        rows, compute = usage_data(hub, dataset, search)
    except UsageError as problem:  # a bad target or a tag no run logged: said beside the field
        status, error, search = 400, problem.message, None
        rows, compute = usage_data(hub, dataset, None)
    return templates.TemplateResponse(
        request,
        "usage.html",
        {
            **page_context(request),
            "rows": rows,
            "currency": hub.config.cost.currency,
            "total": sum(r["size_bytes"] for r in rows),
            "total_cost": None if hub.config.cost.storage_per_gb_month <= 0 else sum(r["monthly_cost"] for r in rows),
            "storage_price_not_set": STORAGE_PRICE_NOT_SET,
            "compute": usage_totals(compute),
            "price_not_set": PRICE_NOT_SET,
            "form": {"dataset": dataset, "target": target},
            "example": TARGET_EXAMPLE,
            "error": error,
            "read": read_note(search, time.perf_counter() - started),
        },
        status_code=status,
    )


@router.get("/trends", response_class=HTMLResponse)
@access(Role.VIEWER)
def trends_page(
    request: Request, hub: HubDep, templates: TemplatesDep, dataset: str = "", metric: str = "", target: str = "",
) -> Response:
    status, error, invalid, search = 200, None, None, None
    started = time.perf_counter()
    try:
        invalid = "target"
        search = target_search(request, target)
        invalid = "metric"
        data = trends_data(hub, dataset or None, metric or None, search)
    except UsageError as problem:  # a bad target or metric, a tag no run logged: said beside the fields
        status, error = 400, problem.message
        if search is not None and problem.message.startswith("no run logged"):
            invalid = "target"
        search = None
        try:
            data = trends_data(hub, dataset or None, None if invalid == "metric" else metric or None)
        except UsageError:
            data, invalid = trends_data(hub, dataset or None, None), "metric"
    return templates.TemplateResponse(
        request, "trends.html",
        {**page_context(request), "data": data, "form": {"dataset": dataset, "metric": metric, "target": target},
         "example": TARGET_EXAMPLE, "error": error, "invalid": invalid if error else None,
         "read": read_note(search, time.perf_counter() - started)},
        status_code=status,
    )
