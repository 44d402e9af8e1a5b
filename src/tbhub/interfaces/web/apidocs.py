"""The API docs page: FastAPI's Swagger UI page on the copy vendored in ``static/vendor/swagger-ui``
(no CDN: ``/docs`` works without the internet), and the hash of its one inline script, which the
page's Content-Security-Policy (``hardening``) allows and no other inline code."""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

__all__ = ["DOCS_SCRIPT_HASH", "FAVICON", "docs_page"]

FAVICON = "/static/favicon.svg"
_SWAGGER = "/static/vendor/swagger-ui"


def docs_page() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",  # the app's default (create_app does not move it)
        title="tbhub - API",
        swagger_js_url=f"{_SWAGGER}/swagger-ui-bundle.js",
        swagger_css_url=f"{_SWAGGER}/swagger-ui.css",
        swagger_favicon_url=FAVICON,
    )


def _inline_script_hash(page: bytes) -> str:
    """The CSP source (``'sha256-...'``) of the page's one inline script, which starts Swagger UI."""
    scripts = re.findall(rb"<script>(.*?)</script>", page, re.DOTALL)
    if len(scripts) != 1:  # pragma: no cover - a FastAPI upgrade changed its page
        raise RuntimeError(f"FastAPI's Swagger UI page has {len(scripts)} inline scripts, expected 1")
    return "'sha256-" + base64.b64encode(hashlib.sha256(scripts[0]).digest()).decode() + "'"


DOCS_SCRIPT_HASH: str = _inline_script_hash(bytes(docs_page().body))
