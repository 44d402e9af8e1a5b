"""The hub: an ASGI app with pages, a JSON API, health checks and the TensorBoard proxy.

``create_app`` builds the app around a ``Hub`` and includes the routers of ``routes/`` and the route
groups of the sibling modules; there is no module-level state. Routes reach the hub through
``deps`` (``app.state.hub``). The ``Background`` started in the lifespan keeps the index fresh;
requests only read it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from tbhub import __version__
from tbhub.app.background import Background
from tbhub.app.hub import Hub
from tbhub.app.timing import ALERTS_WARMUP_S, JOB_INTERVAL_S, SCAN_INTERVAL_S
from tbhub.core.accounts import Role
from tbhub.errors import TbhubError
from tbhub.interfaces.web.admin import add_admin_routes
from tbhub.interfaces.web.auth import AuthMiddleware, RoleTable
from tbhub.interfaces.web.deps import page_context
from tbhub.interfaces.web.hardening import HardeningMiddleware
from tbhub.interfaces.web.links import HubLinks
from tbhub.interfaces.web.login import add_login_routes
from tbhub.interfaces.web.metrics import add_metrics
from tbhub.interfaces.web.proxy import PROXY_TIMEOUT, TensorBoardProxy
from tbhub.interfaces.web.routes import annotations as notes
from tbhub.interfaces.web.routes import api, assets, explorer, health, pages, rules, runs, tensorboard
from tbhub.interfaces.web.templating import STATIC, hub_templates

__all__ = ["create_app"]


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    hub: Hub = app.state.hub
    background: Background = app.state.background
    supervisor = hub.supervisor if app.state.start_supervisor else None
    if supervisor is not None:
        await asyncio.to_thread(supervisor.start)
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
        if supervisor is not None:
            await asyncio.to_thread(supervisor.stop)


async def _tbhub_error(request: Request, exc: TbhubError) -> Response:
    return JSONResponse({"error": exc.message}, status_code=exc.http_status)


def _include(app: FastAPI, table: RoleTable, router: APIRouter, roles: RoleTable) -> None:
    """Add the router's routes to the app's own list, flat, and their roles to the app's table.

    Not ``include_router``: since FastAPI 0.137 (fastapi#15745) it keeps an included router as one
    opaque node, with no name or path parameters, so the auth middleware would not know the route nor
    its role. The routes carry no per-app state (they find the hub through ``deps``), so the same route
    objects can serve several apps."""
    app.router.routes.extend(router.routes)
    table.include(roles)


def create_app(
    hub: Hub,
    *,
    scan_interval: float = SCAN_INTERVAL_S,
    start_supervisor: bool = False,
    job_interval: float = JOB_INTERVAL_S,
    alerts: bool = True,
    alerts_warmup: float = ALERTS_WARMUP_S,
) -> FastAPI:
    """The hub application.

    ``scan_interval`` is the pause between background scans of every endpoint; ``start_supervisor``
    starts (and on shutdown stops) the hub's TensorBoard supervisor inside the lifespan; ``tbhub serve``
    starts it before the app so that a port in use is reported before anything listens.
    """
    background = Background(hub, replica=f"{socket.gethostname()}:{os.getpid()}", scan_interval=scan_interval,
                            job_interval=job_interval, alerts=alerts, alerts_warmup=alerts_warmup)
    app = FastAPI(
        title="tbhub",
        version=__version__,
        description="Always-on TensorBoard for every log root, behind one URL.",
        lifespan=_lifespan,
        docs_url=None,  # routes/assets.py serves /docs from the vendored Swagger UI (no CDN)
        redoc_url=None,
    )
    app.state.hub, app.state.background, app.state.start_supervisor = hub, background, start_supervisor
    templates = app.state.templates = hub_templates()
    access = app.state.access = RoleTable()  # read by the route × role test
    access.grant("openapi", Role.VIEWER)  # FastAPI's own /openapi.json
    app.add_middleware(AuthMiddleware, routes=app.router.routes, table=access, accounts=hub.services.accounts,
                       config=hub.config.auth)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.exception_handler(TbhubError)(_tbhub_error)
    # In this order: the OpenAPI document lists the paths in route order.
    for module in (explorer, pages, runs, api, health, assets, tensorboard):
        _include(app, access, module.router, module.access)
    add_login_routes(app, hub, hub.services.accounts, templates, access, page_context)
    _include(app, access, notes.router, notes.access)
    add_admin_routes(app, hub, templates, access, page_context)
    _include(app, access, rules.router, rules.access)
    add_metrics(app, hub, access, background.leadership)
    app.state.links = HubLinks(hub.config.server.public_url, hub.config.server.host)
    app.add_middleware(HardeningMiddleware)  # last: the outermost, so every request passes it first
    return app
