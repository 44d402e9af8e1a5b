"""The JSON API: endpoints and their runs, compare, usage, retention, alerts and channels.

Every answer is read from the index and the state database; nothing here scans or parses event files.
"""

from __future__ import annotations

import io
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from tbhub.app.alerts import alert_history
from tbhub.app.retention import retention_status
from tbhub.app.status import stored_statuses
from tbhub.app.usage import compute_usage
from tbhub.core.accounts import Role
from tbhub.core.status import StatusVerdict
from tbhub.interfaces.cost_records import usage_rows
from tbhub.interfaces.records import status_record, write_compare_csv
from tbhub.interfaces.web.auth import RoleTable
from tbhub.interfaces.web.deps import HubDep
from tbhub.interfaces.web.payloads import channels_json, compare_data, endpoint_json, no_marks, run_json, run_marks
from tbhub.interfaces.web.trends_data import trends_data

__all__ = ["access", "router"]

router = APIRouter()
access = RoleTable()


@router.get("/api/endpoints", tags=["endpoints"])
@access(Role.VIEWER)
def api_endpoints(request: Request, hub: HubDep) -> list[dict[str, Any]]:
    """Every endpoint: TensorBoard state, URLs, run count, size, newest run, last scan."""
    now_ns = time.time_ns()
    return [endpoint_json(v, request, now_ns) for v in hub.views()]


@router.get("/api/endpoints/{name}", tags=["endpoints"])
@access(Role.VIEWER)
def api_endpoint(request: Request, name: str, hub: HubDep) -> dict[str, Any]:
    """One endpoint (404 if unknown)."""
    return endpoint_json(hub.view(name), request, time.time_ns())


@router.get("/api/endpoints/{name}/runs", tags=["runs"])
@access(Role.VIEWER)
def api_runs(name: str, hub: HubDep) -> list[dict[str, Any]]:
    """The runs of one endpoint, newest first, from the scanner's index. ``status`` is the alert
    engine's last verdict; ``framework``, ``plan``, ``progress`` (0 to 1), ``eta``, ``eta_seconds`` and
    ``crashed`` (a stalled run that stopped short of its plan) come from the stored scalar summaries."""
    now_ns = time.time_ns()
    runs = sorted(hub.runs(name), key=lambda r: -r.last_modified_ns)
    statuses = hub.state.load_run_states(name)
    verdicts = stored_statuses(hub.services, hub.spec(name), runs, now_ns)
    marks = run_marks(hub, name)
    unmarked = no_marks()
    return [
        run_json(r, now_ns, statuses.get(r.relpath)) | _progress(verdicts.get(r.relpath), now_ns)
        | marks.get(r.relpath, unmarked)
        for r in runs
    ]


def _progress(verdict: StatusVerdict | None, now_ns: int) -> dict[str, Any]:
    fields = ("framework", "plan", "progress", "eta", "eta_seconds", "crashed")
    if verdict is None:
        return dict.fromkeys(fields) | {"crashed": False}
    record = status_record(verdict, now_ns)
    return {f: record[f] for f in fields}


@router.get("/api/compare", tags=["compare"])
@access(Role.VIEWER)
def api_compare(
    tag: Annotated[list[str], Query()],
    hub: HubDep,
    endpoint: str | None = None,
    dataset: str | None = None,
    sort: str | None = None,
    format: str = "json",
) -> Response:
    """One row per run with the figures of each ``tag`` (last, min, max with steps, mean of the
    last 10, count, NaN count), duration and steps per second; ``best`` marks the best by ``sort``
    (``TAG:min|max|last``). ``format=csv`` for a spreadsheet."""
    data = compare_data(hub, endpoint, dataset, tag, sort)
    if format == "csv":
        buffer = io.StringIO()
        write_compare_csv(buffer, data["rows"], data["tags"])
        return Response(
            buffer.getvalue(),
            media_type="text/csv",
            headers={"content-disposition": 'attachment; filename="tbhub-compare.csv"'},
        )
    return JSONResponse(data)


@router.get("/api/usage", tags=["usage"])
@access(Role.VIEWER)
def api_usage(hub: HubDep) -> list[dict[str, Any]]:
    """Per endpoint and dataset, storage (bytes, runs, events, monthly cost, growth over 7 and 30 days)
    and compute (GPU-hours and cost this month and last, per run); the shape of ``tbhub usage --json``."""
    cost = hub.config.cost
    compute = compute_usage(hub.services, time.time(), scan=False)
    return usage_rows(hub.usage(), compute, cost.storage_per_gb_month, cost.currency)


@router.get("/api/trends", tags=["usage"])
@access(Role.VIEWER)
def api_trends(hub: HubDep, dataset: str | None = None, metric: str | None = None) -> list[dict[str, Any]]:
    """Efficiency trends per endpoint and dataset (by ISO week, or by run when few), each point with
    its runs; the shape of ``tbhub trends --json``, without a target (``metric``: ``TAG[:min|max]``)."""
    trends: list[dict[str, Any]] = trends_data(hub, dataset, metric)["trends"]
    return [{k: v for k, v in t.items() if k != "charts"} for t in trends]


@router.get("/api/usage/history", tags=["usage"])
@access(Role.VIEWER)
def api_usage_history(hub: HubDep) -> dict[str, Any]:
    """Usage snapshots per dataset over time, as series for a chart."""
    series: dict[str, dict[float, int]] = {}
    for row in hub.state.usage_history():
        series.setdefault(f"{row.endpoint}/{row.dataset}", {})[row.at] = row.size_bytes
    times = sorted({t for points in series.values() for t in points})
    return {"times": times, "series": {k: [v.get(t) for t in times] for k, v in sorted(series.items())}}


@router.get("/api/retention", tags=["retention"])
@access(Role.VIEWER)
def api_retention(hub: HubDep) -> dict[str, Any]:
    """The retention schedule, the next and the last application and what it removed."""
    return retention_status(hub.services, time.time())


@router.get("/api/alerts", tags=["alerts"])
@access(Role.VIEWER)
def api_alerts(hub: HubDep, limit: int = 100) -> list[dict[str, Any]]:
    """The alert feed, newest first, with where each alert was delivered."""
    return alert_history(hub.state, limit)


@router.get("/api/channels", tags=["alerts"])
@access(Role.VIEWER)
def api_channels(hub: HubDep) -> list[dict[str, Any]]:
    """Notification channels and whether a permanent failure disabled them."""
    return channels_json(hub)
