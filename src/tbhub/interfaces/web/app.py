"""The hub: an ASGI app with pages, a JSON API, health checks and the TensorBoard proxy.

``create_app`` builds everything from a ``Hub``; there is no module-level state. The background task
started in the lifespan keeps the index fresh; requests only read it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import logging
import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any
from urllib.parse import quote

import httpx
from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from tbhub import __version__
from tbhub.app.alerts import alert_history
from tbhub.app.background import Background
from tbhub.app.compare import compare_runs
from tbhub.app.hub import EndpointView, Hub
from tbhub.app.retention import retention_status
from tbhub.core.accounts import Role
from tbhub.core.compare import best_index, parse_sort, sort_rows
from tbhub.core.models import RunSummary
from tbhub.core.names import shown
from tbhub.core.units import format_age, format_size
from tbhub.errors import TbhubError, UsageError
from tbhub.interfaces.records import age_style, compare_record, iso_utc, usage_record, write_compare_csv
from tbhub.interfaces.web.admin import add_admin_routes
from tbhub.interfaces.web.annotate import add_annotation_routes, run_marks
from tbhub.interfaces.web.auth import AuthMiddleware, RoleTable, current_user
from tbhub.interfaces.web.hardening import HardeningMiddleware
from tbhub.interfaces.web.links import HubLinks
from tbhub.interfaces.web.login import add_login_routes
from tbhub.interfaces.web.markup import render_note
from tbhub.interfaces.web.metrics import add_metrics
from tbhub.interfaces.web.proxy import PROXY_TIMEOUT, TensorBoardProxy
from tbhub.interfaces.web.rules import add_rule_routes

__all__ = ["create_app"]

log = logging.getLogger("tbhub.hub")
HERE = Path(__file__).parent
PROXY_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]
#: A run written to within this many minutes is "active".
ACTIVE_MINUTES = 10


def _run_json(run: RunSummary, now_ns: int, status: tuple[str, str] | None = None) -> dict[str, Any]:
    age = run.age_seconds(now_ns)
    return {
        "status": status[0] if status else None,
        # Names are shown escaped: one that is not UTF-8 cannot be encoded into a page or a JSON answer.
        "dataset": shown(run.dataset),
        "run": shown(run.run),
        "relpath": shown(run.relpath),
        **run.counts(),
        "last_modified": iso_utc(run.last_modified_ns) if run.last_modified_ns else None,
        "age_seconds": round(age, 3),
        "active": age < ACTIVE_MINUTES * 60,
        "truncated": run.truncated,
        "corrupt": [{"file": f, "offset": c.offset, "reason": c.reason} for f, c in run.corrupt],
    }


def _state(view: EndpointView) -> str:
    if view.child is not None:
        return str(view.child.state)
    return "unsupervised"


def _endpoint_json(view: EndpointView, request: Request, now_ns: int) -> dict[str, Any]:
    newest = view.newest
    child = view.child
    return {
        "name": view.spec.name,
        "title": view.spec.title or view.spec.name,
        "state": _state(view),
        "error": (view.mirror.error if view.mirror else None)
        or (child.last_error if child else None)
        or (view.last_scan.error if view.last_scan else None),
        "mirror": None
        if view.mirror is None
        else {
            "ready": view.mirror.ready,
            "last_sync_at": view.mirror.last_sync_at,
            "files": view.mirror.last.files if view.mirror.last else None,
            "error": view.mirror.error,
        },
        "port": view.spec.port,
        "url": request.app.state.links.tensorboard(view.spec.name),
        "direct_url": request.app.state.links.direct(view.spec.name, view.spec.port),
        "runs": len(view.runs),
        "size_bytes": view.size_bytes,
        "event_count": sum(r.event_count for r in view.runs),
        "newest_run": None
        if newest is None
        else {
            "dataset": shown(newest.dataset),
            "run": shown(newest.run),
            "age_seconds": round(newest.age_seconds(now_ns), 3),
        },
        "restarts": child.restarts if child else 0,
        "last_scan": None
        if view.last_scan is None
        else {
            "finished_at": view.last_scan.finished_at,
            "duration_s": round(view.last_scan.duration_s, 4),
            "files": view.last_scan.files,
            "files_read": view.last_scan.files_read,
            "error": view.last_scan.error,
        },
    }


def create_app(
    hub: Hub,
    *,
    scan_interval: float = 15.0,
    start_supervisor: bool = False,
    job_interval: float = 30.0,
    alerts: bool = True,
    alerts_warmup: float = 30.0,
) -> FastAPI:
    """The hub application.

    ``scan_interval`` is the pause between background scans of every endpoint; ``start_supervisor``
    starts (and on shutdown stops) the hub's TensorBoard supervisor inside the lifespan; ``tbhub serve``
    starts it before the app so that a port in use is reported before anything listens.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if start_supervisor and hub.supervisor is not None:
            await asyncio.to_thread(hub.supervisor.start)
        client = httpx.AsyncClient(timeout=PROXY_TIMEOUT, trust_env=False, follow_redirects=False)
        # httpx would add its own Accept-Encoding (gzip) and User-Agent; the browser's headers are
        # forwarded as they are, so a client that asked for no compression gets none.
        client.headers.clear()
        app.state.proxy = TensorBoardProxy(client)
        await background.start()
        app.state.engine = background.engine
        try:
            yield
        finally:
            await background.stop()
            await client.aclose()
            if start_supervisor and hub.supervisor is not None:
                await asyncio.to_thread(hub.supervisor.stop)

    replica = f"{socket.gethostname()}:{os.getpid()}"
    background = Background(hub, replica=replica, scan_interval=scan_interval, job_interval=job_interval,
                            alerts=alerts, alerts_warmup=alerts_warmup)
    leadership = background.leadership
    app = FastAPI(
        title="tbhub",
        version=__version__,
        description="Always-on TensorBoard for every log root, behind one URL.",
        lifespan=lifespan,
    )
    access = RoleTable()
    app.state.access = access  # read by the route × role test
    for generated in ("openapi", "swagger_ui_html", "swagger_ui_redirect", "redoc_html"):  # FastAPI's own pages
        access.grant(generated, Role.VIEWER)
    accounts = hub.services.accounts
    annotations = hub.services.annotations
    app.add_middleware(AuthMiddleware, routes=app.router.routes, table=access, accounts=accounts,
                       config=hub.config.auth)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["note"] = render_note
    templates.env.filters["size"] = format_size
    templates.env.filters["age"] = format_age
    templates.env.filters["timestamp"] = lambda t: (
        dt.datetime.fromtimestamp(t).astimezone().strftime("%Y-%m-%d %H:%M %Z")
    )
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.exception_handler(TbhubError)
    async def _tbhub_error(request: Request, exc: TbhubError) -> Response:
        return JSONResponse({"error": exc.message}, status_code=exc.http_status)

    def context(request: Request) -> dict[str, Any]:
        user = current_user(request)
        return {
            "request": request,
            "version": __version__,
            "display": hub.config.display,
            "user": user,
            "csrf": request.state.csrf,
            "auth": hub.config.auth.enabled,
            "can_edit": user is not None and user.role >= Role.EDITOR,
            "is_admin": user is not None and user.role >= Role.ADMIN,
        }

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    @access(Role.VIEWER)
    def index(request: Request) -> Response:
        now_ns = time.time_ns()
        endpoints = [_endpoint_json(v, request, now_ns) for v in hub.views()]
        for e in endpoints:
            newest = e["newest_run"]
            e["newest_style"] = (
                age_style(newest["age_seconds"], hub.config.display.fresh_days, hub.config.display.old_days)
                if newest
                else ""
            )
        retention = retention_status(hub.services, time.time())
        return templates.TemplateResponse(
            request, "index.html", {**context(request), "endpoints": endpoints, "retention": retention}
        )

    @app.get("/usage", response_class=HTMLResponse, include_in_schema=False)
    @access(Role.VIEWER)
    def usage_page(request: Request) -> Response:
        cost = hub.config.cost
        rows = [usage_record(u, cost.storage_per_gb_month, cost.currency) for u in hub.usage()]
        return templates.TemplateResponse(
            request,
            "usage.html",
            {
                **context(request),
                "rows": rows,
                "currency": cost.currency,
                "total": sum(r["size_bytes"] for r in rows),
                "total_cost": sum(r["monthly_cost"] for r in rows),
            },
        )

    @app.get("/endpoints/{name}", response_class=HTMLResponse, include_in_schema=False)
    @access(Role.VIEWER)
    def endpoint_page(request: Request, name: str) -> Response:
        view = hub.view(name)
        now_ns = time.time_ns()
        runs = sorted(view.runs, key=lambda r: -r.last_modified_ns)
        statuses = hub.state.load_run_states(name)
        marks = run_marks(hub, annotations, name)
        # Display strings are made here, not with template filters: the page lists thousands of runs.
        no_marks = {"tags": [], "pinned": False, "notes": 0, "last_note": None}
        prefix = f"/runs/{quote(name, safe='')}/"
        rows = []
        for r in runs:
            row = _run_json(r, now_ns, statuses.get(r.relpath))
            row.update(marks.get(r.relpath, no_marks))
            row["style"] = age_style(row["age_seconds"], hub.config.display.fresh_days, hub.config.display.old_days)
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
            {**context(request), "endpoint": _endpoint_json(view, request, now_ns), "runs": rows},
        )

    @app.get("/api/endpoints", tags=["endpoints"])
    @access(Role.VIEWER)
    def api_endpoints(request: Request) -> list[dict[str, Any]]:
        """Every endpoint: TensorBoard state, URLs, run count, size, newest run, last scan."""
        now_ns = time.time_ns()
        return [_endpoint_json(v, request, now_ns) for v in hub.views()]

    @app.get("/api/endpoints/{name}", tags=["endpoints"])
    @access(Role.VIEWER)
    def api_endpoint(request: Request, name: str) -> dict[str, Any]:
        """One endpoint (404 if unknown)."""
        return _endpoint_json(hub.view(name), request, time.time_ns())

    @app.get("/api/endpoints/{name}/runs", tags=["runs"])
    @access(Role.VIEWER)
    def api_runs(name: str) -> list[dict[str, Any]]:
        """The runs of one endpoint, newest first, from the scanner's index."""
        now_ns = time.time_ns()
        runs = sorted(hub.runs(name), key=lambda r: -r.last_modified_ns)
        statuses = hub.state.load_run_states(name)
        marks = run_marks(hub, annotations, name)
        empty = {"tags": [], "pinned": False, "notes": 0, "last_note": None}
        return [_run_json(r, now_ns, statuses.get(r.relpath)) | marks.get(r.relpath, empty) for r in runs]

    def compare_data(endpoint: str | None, dataset: str | None, tags: list[str], sort: str | None) -> dict[str, Any]:
        try:
            spec = parse_sort(sort) if sort else None
        except ValueError as error:
            raise UsageError(str(error)) from None
        wanted = list(tags)
        if spec is not None and spec.tag not in wanted:
            wanted.append(spec.tag)
        rows = compare_runs(
            hub.services,
            names=[endpoint] if endpoint else None,
            dataset_glob=dataset or None,
            tags=wanted,
            scan=False,
        )
        rows = sort_rows(rows, spec)
        best = best_index(rows, spec)
        records = [
            compare_record(r, wanted, i == best)
            | {"first_wall_time": r.run.first_wall_time, "tensorboard": tensorboard_link(r.run)}
            for i, r in enumerate(rows)
        ]
        return {"tags": wanted, "sort": sort, "rows": records}

    def tensorboard_link(run: RunSummary) -> str:
        return f"/tb/{run.endpoint}/#scalars&regexInput={quote(shown(run.dataset + '/' + run.run))}"

    @app.get("/api/compare", tags=["compare"])
    @access(Role.VIEWER)
    def api_compare(
        tag: Annotated[list[str], Query()],
        endpoint: str | None = None,
        dataset: str | None = None,
        sort: str | None = None,
        format: str = "json",
    ) -> Response:
        """One row per run with the figures of each ``tag`` (last, min, max with steps, mean of the
        last 10, count, NaN count), duration and steps per second; ``best`` marks the best by ``sort``
        (``TAG:min|max|last``). ``format=csv`` for a spreadsheet."""
        data = compare_data(endpoint, dataset, tag, sort)
        if format == "csv":
            buffer = io.StringIO()
            write_compare_csv(buffer, data["rows"], data["tags"])
            return Response(
                buffer.getvalue(),
                media_type="text/csv",
                headers={"content-disposition": 'attachment; filename="tbhub-compare.csv"'},
            )
        return JSONResponse(data)

    @app.get("/compare", response_class=HTMLResponse, include_in_schema=False)
    @access(Role.VIEWER)
    def compare_page(
        request: Request, endpoint: str = "", dataset: str = "", tags: str = "", sort: str = ""
    ) -> Response:
        chosen = [t.strip() for t in tags.split(",") if t.strip()] or ["loss"]
        data = compare_data(endpoint or None, dataset or None, chosen, sort or None)
        return templates.TemplateResponse(
            request,
            "compare.html",
            {
                **context(request),
                "data": data,
                "endpoints": list(hub.specs),
                "form": {"endpoint": endpoint, "dataset": dataset, "tags": ", ".join(chosen), "sort": sort},
                "query": str(request.url.query),
            },
        )

    @app.get("/api/usage", tags=["usage"])
    @access(Role.VIEWER)
    def api_usage() -> list[dict[str, Any]]:
        """Bytes, runs, events and monthly cost per endpoint and dataset, with growth over 7 and 30 days."""
        cost = hub.config.cost
        return [usage_record(u, cost.storage_per_gb_month, cost.currency) for u in hub.usage()]

    @app.get("/api/usage/history", tags=["usage"])
    @access(Role.VIEWER)
    def api_usage_history() -> dict[str, Any]:
        """Usage snapshots per dataset over time, as series for a chart."""
        series: dict[str, dict[float, int]] = {}
        for row in hub.state.usage_history():
            series.setdefault(f"{row.endpoint}/{row.dataset}", {})[row.at] = row.size_bytes
        times = sorted({t for points in series.values() for t in points})
        return {"times": times, "series": {k: [v.get(t) for t in times] for k, v in sorted(series.items())}}

    @app.get("/api/retention", tags=["retention"])
    @access(Role.VIEWER)
    def api_retention() -> dict[str, Any]:
        """The retention schedule, the next and the last application and what it removed."""
        return retention_status(hub.services, time.time())

    def alerts_json(limit: int) -> list[dict[str, Any]]:
        return alert_history(hub.state, limit)

    @app.get("/api/alerts", tags=["alerts"])
    @access(Role.VIEWER)
    def api_alerts(limit: int = 100) -> list[dict[str, Any]]:
        """The alert feed, newest first, with where each alert was delivered."""
        return alerts_json(limit)

    @app.get("/api/channels", tags=["alerts"])
    @access(Role.VIEWER)
    def api_channels() -> list[dict[str, Any]]:
        """Notification channels and whether a permanent failure disabled them."""
        states = hub.state.channel_states()
        return [
            {
                "name": name,
                "type": cfg.type,
                "on": cfg.on,
                "disabled": states.get(name, (False, None))[0],
                "reason": states.get(name, (False, None))[1],
            }
            for name, cfg in zip(hub.config.channel_names(), hub.config.notify, strict=True)
        ]

    @app.get("/alerts", response_class=HTMLResponse, include_in_schema=False)
    @access(Role.VIEWER)
    def alerts_page(request: Request) -> Response:
        return templates.TemplateResponse(
            request, "alerts.html", {**context(request), "alerts": alerts_json(200), "channels": api_channels()}
        )

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, Any]:
        """The hub process answers; ``leader`` says whether this replica runs the background jobs."""
        return {"status": "ok", "replica": replica, "leader": leadership.is_leader}

    @app.get("/readyz", tags=["health"])
    def readyz() -> Response:
        """200 when every endpoint's TensorBoard answers, else 503 with each state."""
        states = {}
        for name in hub.specs:
            child = hub.child(name)
            states[name] = str(child.state) if child is not None else "unsupervised"
        ready = all(s in ("up", "unsupervised") for s in states.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "endpoints": states},
            status_code=200 if ready else 503,
        )

    @app.get("/tb/{name}", include_in_schema=False)
    @access(Role.VIEWER)
    def tensorboard_bare(name: str) -> Response:
        hub.spec(name)
        return RedirectResponse(f"/tb/{name}/", status_code=301)

    access.grant("tensorboard_root", Role.VIEWER)

    @app.api_route("/tb/{name}/{path:path}", methods=PROXY_METHODS, include_in_schema=False, name="tensorboard_root")
    async def tensorboard(request: Request, name: str, path: str) -> Response:
        spec = hub.spec(name)
        proxy: TensorBoardProxy = request.app.state.proxy
        return await proxy.forward(request, name, f"http://127.0.0.1:{spec.port}", f"/tb/{name}/{path}")

    add_login_routes(app, hub, accounts, templates, access, context)
    add_annotation_routes(app, hub, annotations, templates, access, context)
    add_admin_routes(app, hub, templates, access, context)
    add_rule_routes(app, hub, templates, access, context)
    add_metrics(app, hub, access, leadership)
    app.state.links = HubLinks(hub.config.server.public_url, hub.config.server.host)
    app.add_middleware(HardeningMiddleware)  # last: the outermost, so every request passes it first
    return app
