"""What every hub request and response goes through first: one body limit, UTF-8 forms, browser headers.

``HardeningMiddleware`` is the outermost middleware of the hub:

* **One request-body limit** (``MAX_BODY``, 1 MiB) for every request, whoever sends it (a token
  request skips the CSRF check, which used to be the only code that bounded a body). A declared
  ``Content-Length`` above it is answered 413 before a byte is read; a streamed (chunked) body is
  counted as it arrives and answered 413 as soon as it passes the limit, so at most the limit is ever
  held. The ``/tb/NAME/...`` proxy is exempt: it streams bodies through to TensorBoard without holding
  them, and TensorBoard's own queries (a time-series request names every run and tag) can be large.
* **Forms are UTF-8**: an ``application/x-www-form-urlencoded`` body that is not, raw or in a
  ``%``-escape, is answered 400 before a route decodes it (that decoding raised a 500).
* **No Host header in redirects**: a redirect to the hub itself is sent as a path (``own_location``).
* **Security headers**: hub pages and the API get a Content-Security-Policy that allows scripts,
  styles and connections from the hub itself only (pages keep their code in ``static/``), and may not
  be framed by another site (``frame-ancestors 'none'``, ``X-Frame-Options: DENY``); every response
  gets ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: same-origin`` (links in notes do not
  tell other sites which run was open). TensorBoard under ``/tb/`` keeps its own policy (its UI needs
  inline code); only framing is limited there, to the hub itself, since TensorBoard frames its own
  plugin pages.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit, urlunsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tbhub.core.bookmarks import stays_on_hub
from tbhub.interfaces.web.apidocs import DOCS_SCRIPT_HASH

__all__ = ["MAX_BODY", "HardeningMiddleware", "replay_body"]

#: Bytes a request body may have (the largest form the hub has, a clean selection of every run of a
#: big endpoint, is a few hundred kB).
MAX_BODY = 1 << 20

_HUB_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# The API docs page (routes/assets.py) is FastAPI's Swagger UI page: the vendored bundle and styles
# from the hub, plus one inline script that starts it (allowed by its hash); Swagger UI sets style
# attributes and draws its icons as data: images. Nothing from another origin.
_DOCS_CSP = (
    f"default-src 'self'; script-src 'self' {DOCS_SCRIPT_HASH}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_DOCS = ("/docs",)
_COMMON = {"x-content-type-options": "nosniff", "referrer-policy": "same-origin"}
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _hub_headers(path: str) -> dict[str, str]:
    csp = _DOCS_CSP if path.startswith(_DOCS) else _HUB_CSP
    return {**_COMMON, "x-frame-options": "DENY", "content-security-policy": csp}


async def _answer(send: Send, status: int, error: str) -> None:
    body = ('{"error": "' + error + '"}').encode()
    headers = _hub_headers("")
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"), *((k.encode(), v.encode()) for k, v in headers.items())]})
    await send({"type": "http.response.body", "body": body})


def own_location(location: str, host: str) -> str:
    """A redirect to the hub itself as a path: Starlette's slash redirect (``/login/`` → ``/login``)
    writes the request's ``Host`` into an absolute URL, so any host a client names would be echoed.

    The path must then stay on the hub as a browser reads it (``//evil`` or ``/\\evil`` would not).
    """
    parts = urlsplit(location)
    if not parts.netloc or parts.netloc.lower() != host.lower():
        return location
    relative = urlunsplit(("", "", parts.path or "/", parts.query, parts.fragment))
    if stays_on_hub(relative):
        return relative
    relative = "/" + relative.lstrip("/\\ \t")
    return relative if stays_on_hub(relative) else "/"


def form_is_utf8(body: bytes) -> bool:
    """Whether a URL-encoded form is UTF-8 both as bytes and in each ``%``-escape."""
    try:
        parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        return False
    return True


class HardeningMiddleware:
    """See the module docstring. ``max_body``: the request-body limit in bytes."""

    def __init__(self, app: ASGIApp, *, max_body: int = MAX_BODY) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith("/tb/"):
            await self.app(scope, receive, self._tensorboard_headers(send))
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        too_big = f"the request body is over the limit of {self.max_body} bytes"
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await _answer(send, 413 if declared.isdigit() else 400, too_big if declared.isdigit()
                          else "Content-Length is not a number")
            return
        answered = False  # by us, because the body went over the limit: the app's answer is dropped
        started = False
        received = 0

        async def limited() -> Message:
            nonlocal answered, received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    if not started and not answered:
                        await _answer(send, 413, too_big)
                    answered = True
                    # Whoever reads sees the client leave: nothing more of the body is read.
                    return {"type": "http.disconnect"}
            return message

        async def send_hardened(message: Message) -> None:
            nonlocal started
            if answered:
                return
            if message["type"] == "http.response.start":
                started = True
                out = MutableHeaders(scope=message)
                for name, value in _hub_headers(path).items():
                    out[name] = value
                if "location" in out:
                    out["location"] = own_location(out["location"], headers.get("host", ""))
            await send(message)

        downstream: Receive = limited
        if scope["method"] in _UNSAFE and headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            body = await _read_all(limited)
            if answered or body is None:
                return  # over the limit (answered already) or the client left
            if not form_is_utf8(body):
                await _answer(send, 400, "the form is not valid UTF-8")
                return
            downstream = replay_body(body, limited)
        try:
            await self.app(scope, downstream, send_hardened)
        except Exception:
            if answered:  # the app failed on the cut-off body; the client has its 413 already
                return
            raise

    def _tensorboard_headers(self, send: Send) -> Send:
        async def send_framed(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                for name, value in _COMMON.items():
                    if name not in out:
                        out[name] = value
                if "x-frame-options" not in out:
                    out["x-frame-options"] = "SAMEORIGIN"
                # A second policy: the browser enforces both, TensorBoard's (which does not limit
                # framing) and this one.
                out.append("content-security-policy", "frame-ancestors 'self'")
            await send(message)

        return send_framed


async def _read_all(receive: Receive) -> bytes | None:
    """The whole body (``receive`` bounds it); ``None`` when the client left."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands on the body read already, then whatever comes next."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
