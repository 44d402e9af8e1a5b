"""The hub's own assets outside ``/static``: the API docs page (Swagger UI from the vendored copy,
see ``apidocs``) and ``/favicon.ico``."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, Response

from tbhub.core.accounts import Role
from tbhub.interfaces.web.apidocs import docs_page
from tbhub.interfaces.web.auth import RoleTable
from tbhub.interfaces.web.templating import STATIC

__all__ = ["access", "router"]

router = APIRouter(include_in_schema=False)
access = RoleTable()  # favicon is in auth.PUBLIC


@router.get("/docs", response_class=HTMLResponse)
@access(Role.VIEWER)
def swagger_ui_html() -> Response:
    """The API's Swagger UI, all of it from the hub."""
    return docs_page()


@router.get("/favicon.ico")
def favicon() -> Response:
    """Browsers ask for ``/favicon.ico`` whatever a page links: the hub's icon (an SVG)."""
    return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml",
                        headers={"cache-control": "public, max-age=86400"})
