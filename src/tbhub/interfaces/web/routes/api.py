"""The JSON API: endpoints and their runs, compare, usage, retention, alerts and channels.

Every answer is read from the index and the state database; nothing here scans. Only a usage or trends
``target`` reads event files: the points of the runs that logged its tag, bounded per request and cached.
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
from tbhub.core.accounts import Role
from tbhub.core.status import StatusVerdict
from tbhub.interfaces.records import status_record, write_compare_csv
from tbhub.interfaces.web.auth import RoleTable
from tbhub.interfaces.web.deps import HubDep
from tbhub.interfaces.web.payloads import channels_json, compare_data, endpoint_json, no_marks, run_json, run_marks
from tbhub.interfaces.web.targeting import pending_header, target_search
from tbhub.interfaces.web.trends_data import trends_data
from tbhub.interfaces.web.usage_data import usage_data

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
def api_usage(
    request: Request, response: Response, hub: HubDep, dataset: str = "", target: str = "",
) -> list[dict[str, Any]]:
    """Per endpoint and dataset (``dataset``: a glob), storage (bytes, runs, events, monthly cost, growth
    over 7 and 30 days) and compute (GPU-hours and cost this month and last, per run, and with
    ``target``, e.g. ``eval/loss<0.5``, median GPU-hours and cost until it first held); the shape of
    ``tbhub usage --json``. A target reads at most 128 MiB of event files a request: the header
    ``X-Tbhub-Target-Pending`` counts the runs not read to the end yet (ask again to read on). 400: a
    target that does not parse, or whose tag no run logged."""
    search = target_search(request, target)
    rows, _ = usage_data(hub, dataset, search)
    pending_header(response, search)
    return rows


@router.get("/api/trends", tags=["usage"])
@access(Role.VIEWER)
def api_trends(
    request: Request, response: Response, hub: HubDep, dataset: str | None = None, metric: str | None = None,
    target: str | None = None,
) -> list[dict[str, Any]]:
    """Efficiency trends per endpoint and dataset (by ISO week, or by run when few), each point with
    its runs; the shape of ``tbhub trends --json`` (``metric``: ``TAG[:min|max]``; ``target``: busy hours
    and cost until e.g. ``eval/loss<0.5`` first held, read as for ``/api/usage``)."""
    search = target_search(request, target)
    trends: list[dict[str, Any]] = trends_data(hub, dataset, metric, search)["trends"]
    pending_header(response, search)
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
