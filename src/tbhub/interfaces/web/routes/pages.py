"""The pages: usage and trends (the hub, the runs explorer and alerts: ``explorer``; the run page and
compare: ``runs``)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from tbhub.app.usage import compute_usage
from tbhub.core.accounts import Role
from tbhub.core.cost import PRICE_NOT_SET
from tbhub.interfaces.cost_records import usage_rows, usage_totals
from tbhub.interfaces.web.auth import RoleTable
from tbhub.interfaces.web.deps import HubDep, TemplatesDep, page_context
from tbhub.interfaces.web.trends_data import trends_data

__all__ = ["access", "router"]

router = APIRouter(include_in_schema=False)
access = RoleTable()


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

