"""The run page and compare: one run's status, scalars, files, notes and alerts; several runs side by
side (table, curves, export), across endpoints.

Nothing here scans: figures come from the index and the scalar states in the state database; the
curves and sparklines read the chosen runs' event files through ``app.series`` (bounded points,
cached per app in ``app.state.series_cache``).
"""

from __future__ import annotations

import io
import time
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from tbhub.app.compare import run_id, search_runs
from tbhub.app.run_detail import RunDetail, run_alerts, run_detail
from tbhub.app.series import SeriesCache
from tbhub.core.accounts import Role
from tbhub.core.bookmarks import tensorboard_link
from tbhub.core.names import shown
from tbhub.core.units import format_size
from tbhub.errors import UnknownEndpoint, UsageError
from tbhub.interfaces.records import progress_text, status_record, write_compare_csv
from tbhub.interfaces.web.auth import RoleTable
from tbhub.interfaces.web.comparing import CompareQuery, compare_view, series_json
from tbhub.interfaces.web.deps import HubDep, TemplatesDep, page_context
from tbhub.interfaces.web.payloads import run_marks
from tbhub.interfaces.web.routes.explorer import LIVE_SECONDS, live_request
from tbhub.interfaces.web.sparkline import sparkline_svg

__all__ = ["access", "router", "series_cache"]

router = APIRouter()
access = RoleTable()

Runs = Annotated[list[str], Query()]


def series_cache(request: Request) -> SeriesCache:
    """The app's cache of read series (made on first use: one per app, no module state)."""
    cache: SeriesCache | None = getattr(request.app.state, "series_cache", None)
    if cache is None:
        cache = request.app.state.series_cache = SeriesCache()
    return cache


def _figure(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.4g}"


def _scalars(detail: RunDetail) -> list[dict[str, Any]]:
    out = []
    for line in detail.scalars:
        s = line.summary
        best = line.best
        values = line.series.values if line.series is not None else s.tail
        out.append({
            "tag": line.tag,
            "last": _figure(s.last_value) if line.finite_last else str(s.last_value),
            "finite_last": line.finite_last,
            "last_step": s.last_step,
            "best": "" if best is None else _figure(best[0]),
            "best_step": None if best is None else best[1],
            "direction": line.direction,
            "count": s.count,
            "nan_count": s.nan_count,
            "spark": sparkline_svg(values, label=f"{line.tag}: {len(values)} of {s.count} points"),
        })
    return out


def _files(run_relpath: str, detail: RunDetail) -> list[dict[str, Any]]:
    return [
        {
            "name": shown(f.relpath[len(run_relpath) + 1:] if f.relpath != run_relpath else f.relpath),
            "size": format_size(f.size),
            "size_bytes": f.size,
            "records": f"{f.records:,}",
            "last_step": f.last_step,
            "truncated": f.truncated,
            "corrupt": f.corrupt.reason if f.corrupt else None,
        }
        for f in sorted(detail.run.files, key=lambda f: f.relpath)
    ]


def _progress_facts(detail: RunDetail, now_ns: int) -> list[dict[str, str]]:
    """What the logs tell beyond the status (issue 18): framework, plan and progress, ETA, crash hint."""
    record = status_record(detail.verdict, now_ns)
    facts = []
    if record["framework"]:
        facts.append({"label": "framework", "value": record["framework"], "id": "fact-framework"})
    if record["plan"]:
        facts.append({"label": "progress", "value": progress_text(detail.verdict, now_ns), "id": "fact-progress"})
    elif record["crashed"]:
        facts.append({"label": "progress", "value": "crashed?", "id": "fact-progress"})
    if record["eta"]:
        facts.append({"label": "ETA", "value": record["eta"].replace("T", " ").replace("Z", " UTC"), "id": "fact-eta"})
    return facts


@router.get("/runs/{endpoint}/{relpath:path}", response_class=HTMLResponse, include_in_schema=False)
@access(Role.VIEWER, endpoint="path")
def run_page(request: Request, endpoint: str, relpath: str, hub: HubDep, templates: TemplatesDep) -> Response:
    hub.spec(endpoint)
    relpath = relpath.strip("/")
    if not relpath or ".." in relpath.split("/"):
        raise UsageError(f"no run {relpath!r}")
    annotations = hub.services.annotations
    run = next((r for r in hub.runs(endpoint) if shown(r.relpath) == relpath), None)
    marks = run_marks(hub, endpoint).get(relpath, {"tags": [], "pinned": False})
    if run is None and not marks.get("notes") and not marks["tags"] and not marks["pinned"]:
        raise UnknownEndpoint(f"no run {relpath!r} in endpoint {endpoint!r}")
    now_ns = time.time_ns()
    detail = run_detail(hub.services, run, series_cache(request), now_ns=now_ns) if run is not None else None
    context: dict[str, Any] = {
        **page_context(request),
        "endpoint": endpoint,
        "relpath": relpath,
        "run": run,
        "detail": detail,
        "now_ns": now_ns,
        "notes": annotations.notes(endpoint, relpath),
        "tags": marks["tags"],
        "pinned": marks["pinned"],
        "tensorboard": tensorboard_link(endpoint, run.relpath if run is not None else relpath),
        "compare_url": CompareQuery([f"{endpoint}/{relpath}"], "", "", [], "").url(),
        "page_url": f"/runs/{quote(endpoint, safe='')}/{quote(relpath)}",
        "live_seconds": LIVE_SECONDS,
    }
    if detail is not None and run is not None:
        context.update(
            status=detail.verdict.status.value,
            reason=detail.verdict.reason,
            extra_facts=_progress_facts(detail, now_ns),
            scalars=_scalars(detail),
            files=_files(run.relpath, detail),
            alerts=run_alerts(hub.services, endpoint, run.dataset, run.run),
        )
    return templates.TemplateResponse(request, "run_live.html" if live_request(request) else "run.html", context)


def _query(run: list[str], endpoint: str, dataset: str, tag: list[str], tags: str, sort: str) -> CompareQuery:
    return CompareQuery(run, endpoint, dataset, [*tag, tags], sort)


@router.get("/compare", response_class=HTMLResponse, include_in_schema=False)
@access(Role.VIEWER)
def compare_page(
    request: Request, hub: HubDep, templates: TemplatesDep,
    run: Runs = [],  # noqa: B006 - FastAPI copies defaults
    tag: Runs = [],  # noqa: B006
    endpoint: str = "", dataset: str = "", tags: str = "", sort: str = "", q: str = "",
) -> Response:
    query = _query(run, endpoint, dataset, tag, tags, sort)
    data = compare_view(hub, query)
    found, matched = search_runs(hub.services, q) if q.strip() else ([], 0)
    chosen = set(query.runs)
    return templates.TemplateResponse(
        request,
        "compare.html",
        {
            **page_context(request),
            "data": data,
            "query": query,
            "endpoints": list(hub.specs),
            "search": {"q": q, "matched": matched,
                       "found": [{"id": run_id(r), "chosen": run_id(r) in chosen} for r in found]},
            "exports": {f: query.url("/compare/export", tag=data["tags"], format=f) for f in ("csv", "json")},
            # The curves of the table's first runs (all of them when chosen by id, at most MAX_CURVES).
            "series_url": "/api/compare/series?" + urlencode([*(("run", r) for r in data["curves"]),
                                                              *(("tag", t) for t in data["tags"])]),
            "tag_url": {t["tag"]: query.url(tag=[t["tag"]]) for t in data["available"]},
        },
    )


@router.get("/compare/export", include_in_schema=False)
@access(Role.VIEWER)
def compare_export(
    hub: HubDep,
    run: Runs = [],  # noqa: B006
    tag: Runs = [],  # noqa: B006
    endpoint: str = "", dataset: str = "", tags: str = "", sort: str = "", format: str = "json",
) -> Response:
    """The compare table as CSV or JSON (what the page shows, in its order)."""
    if format not in ("csv", "json"):
        raise UsageError(f"format is csv or json, not {format!r}")
    data = compare_view(hub, _query(run, endpoint, dataset, tag, tags, sort), max_rows=None)
    if format == "csv":
        buffer = io.StringIO()
        write_compare_csv(buffer, data["rows"], data["tags"])
        return Response(buffer.getvalue(), media_type="text/csv",
                        headers={"content-disposition": 'attachment; filename="tbhub-compare.csv"'})
    body = {k: data[k] for k in ("tags", "sort", "rows", "unknown")}
    return JSONResponse(body, headers={"content-disposition": 'attachment; filename="tbhub-compare.json"'})


@router.get("/api/compare/series", tags=["compare"])
@access(Role.VIEWER)
def api_compare_series(request: Request, hub: HubDep, run: Runs, tag: Runs) -> dict[str, Any]:
    """The curves of up to 20 runs (``run=ENDPOINT/DATASET/RUN``, repeated) for each ``tag``:
    per run and tag, steps and values (``null`` where not finite), at most 1,000 points each, evenly
    thinned like TensorBoard's charts (first and last point kept)."""
    return series_json(hub, run, tag, series_cache(request))


