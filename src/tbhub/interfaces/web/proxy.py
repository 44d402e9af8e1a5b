"""The streaming reverse proxy in front of each endpoint's TensorBoard: ``/tb/NAME/...``.

TensorBoard runs with ``--path_prefix /tb/NAME``, so paths pass through unchanged and its own links and
redirects stay valid behind the hub. Bodies stream both ways (no buffering of large scalar or
histogram responses), except ``/data/environment``, which carries server paths and flags and is
redacted (under every spelling TensorBoard would route there: ``tb_routes``).

A TensorBoard that stops answering (a stopped or wedged process still accepts connections: the
kernel queues them) gets a quick 504 instead of holding the browser until the supervisor's health
check replaces it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from tbhub.interfaces.web.tb_routes import is_environment

__all__ = ["HOP_BY_HOP", "PROXY_TIMEOUT", "TensorBoardProxy", "redact_environment", "without_hub_credentials"]

#: TensorBoard answers a UI request in well under a second (the fast loader serves from memory); a
#: child that sends nothing for ``read`` seconds is hung. ``connect`` is short because it is loopback.
PROXY_TIMEOUT = httpx.Timeout(connect=2.0, read=5.0, write=10.0, pool=5.0)

# RFC 9110 §7.6.1 connection-specific headers, plus the ones the server computes itself.
HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "transfer-encoding", "upgrade", "host", "content-length",
    }
)


def _forward_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP]


#: The hub's own cookies (session, CSRF): TensorBoard has no use for them and never sees them.
HUB_COOKIES = ("tbhub_session", "tbhub_csrf")


def without_hub_credentials(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The request headers minus what authenticates to the hub: the API token and the hub's cookies."""
    out = []
    for key, value in headers:
        lower = key.lower()
        if lower == "authorization":
            continue
        if lower == "cookie":
            kept = [c for c in value.split(";") if c.strip().split("=", 1)[0] not in HUB_COOKIES]
            if not kept:
                continue
            value = ";".join(kept).strip()
        out.append((key, value))
    return out


def redact_environment(body: bytes, endpoint: str) -> bytes:
    """TensorBoard's ``/data/environment`` without server paths or flags; a body that is not the
    environment's JSON object passes unchanged (the route check is deliberately wide)."""
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if isinstance(data, dict):
        data["data_location"] = endpoint
        data.pop("debug", None)  # the data provider address and every flag, logdir included
    return json.dumps(data).encode()


class TensorBoardProxy:
    """Forwards requests for one hub to the TensorBoard children on loopback."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def forward(self, request: Request, endpoint: str, upstream: str, path: str) -> Response:
        """Forward ``request`` to ``upstream`` (``http://127.0.0.1:PORT``) with ``path`` (prefix included)."""
        url = httpx.URL(upstream + path, query=request.url.query.encode())
        headers = without_hub_credentials(_forward_headers(request.headers.items()))
        headers.append(("x-forwarded-host", request.headers.get("host", "")))
        headers.append(("x-forwarded-proto", request.url.scheme))
        environment = is_environment(path)
        if environment:
            headers = [(k, v) for k, v in headers if k.lower() != "accept-encoding"]
        body = request.stream() if request.method not in ("GET", "HEAD") else None
        upstream_request = self.client.build_request(request.method, url, headers=headers, content=body)
        try:
            response = await self.client.send(upstream_request, stream=True)
        except httpx.TimeoutException as error:
            return JSONResponse(
                {"error": f"TensorBoard of endpoint {endpoint!r} did not answer in time ({type(error).__name__})"},
                status_code=504,
            )
        except httpx.HTTPError as error:
            return JSONResponse(
                {"error": f"TensorBoard of endpoint {endpoint!r} is not answering ({type(error).__name__})"},
                status_code=502,
            )
        out_headers = dict(_forward_headers(response.headers.multi_items()))
        if environment and response.status_code == 200:
            try:
                raw = await response.aread()
            except httpx.HTTPError as error:
                await response.aclose()
                status = 504 if isinstance(error, httpx.TimeoutException) else 502
                return JSONResponse({"error": f"TensorBoard of endpoint {endpoint!r} stopped answering"}, status)
            await response.aclose()
            out_headers.pop("content-encoding", None)
            return Response(redact_environment(raw, endpoint), status_code=200, headers=out_headers)
        if "content-length" in response.headers:
            out_headers["content-length"] = response.headers["content-length"]
        return StreamingResponse(
            response.aiter_raw(),
            status_code=response.status_code,
            headers=out_headers,
            background=BackgroundTask(response.aclose),
        )
