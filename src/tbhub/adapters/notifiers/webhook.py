"""Generic JSON webhooks, and the HTTP delivery that the Slack channel shares.

The document a receiver gets (``version`` 1; fields are only ever added, never renamed)::

    {"version": 1, "key": "...", "endpoint": "lora", "dataset": "claims-v2", "run": "r16",
     "status": "finished", "at": "2026-05-09T07:35:25Z", "message": "...",
     "details": {...}, "url": "https://..." | null}

Headers: ``Content-Type: application/json``, ``Idempotency-Key: <alert.key, percent-encoded>`` (the
same state change always carries the same key, so a receiver can drop a retried duplicate; the key
holds the run's name, so its UTF-8 bytes outside printable ASCII, and ``%``, are percent-encoded: a
name like ``ünïcode run ✓`` or one with CR/LF can neither break nor inject a header) and, with a secret,
``X-Tbhub-Timestamp: <unix seconds>`` and ``X-Tbhub-Signature: sha256=<hex HMAC-SHA256(secret, body)>``
computed over the exact body bytes sent. Non-finite floats in ``details`` (a diverged loss is NaN)
are sent as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` so the body is strict JSON.

How an HTTP outcome maps to ``DeliveryError`` (both here and for Slack):

====================================  =====================================================
2xx                                   delivered
429                                   transient, ``retry_after`` = ``Retry-After`` or 1 s
408, 425, 5xx                         transient (``retry_after`` from ``Retry-After`` if sent)
3xx                                   permanent: redirects are not followed (a POST must not
                                      wander, with its signature, to another host)
400, 413, 422                         ``UndeliverableMessage``: the receiver refused this
                                      document (Slack's ``invalid_payload``, a body too large);
                                      that alert fails, the channel stays enabled
404, 410, 401, 403, other 4xx         permanent: the same request will be refused again
timeouts, refused/reset connections   transient
====================================  =====================================================
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from tbhub import __version__
from tbhub.adapters.notifiers.failures import UndeliverableMessage
from tbhub.adapters.notifiers.message import isoformat_utc
from tbhub.core.models import Alert
from tbhub.errors import ConfigError, DeliveryError

__all__ = ["DEFAULT_TIMEOUT", "HttpNotifier", "WebhookNotifier", "header_key", "post_json", "redact_url", "signature"]

DEFAULT_TIMEOUT = 10.0
USER_AGENT = f"tbhub/{__version__}"
#: Only the start of an error body is read: it goes into a one-line message, and a misbehaving
#: receiver must not make us buffer a large HTML error page.
_BODY_LIMIT = 4096
_SNIPPET = 120
_TRANSIENT_4XX = frozenset({408, 425, 429})
#: Refusals of one document rather than of the channel: another alert may well go through.
_MESSAGE_REFUSED = frozenset({400, 413, 422})
#: Printable ASCII but ``%``: what an alert key keeps as it is in a header value.
_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")
#: Slack's documented fallback when a 429 carries no usable Retry-After.
_DEFAULT_RETRY_AFTER = 1.0


def redact_url(url: str) -> str:
    """``https://hooks.slack.com/services/T…/B…/xyz`` → ``hooks.slack.com/…``.

    Only host and port survive: webhook paths and query strings routinely *are* the credential.
    """
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "<invalid url>"
    host = parsed.host or "?"
    if parsed.port is not None:
        host = f"{host}:{parsed.port}"
    return f"{host}/…" if parsed.path not in ("", "/") or parsed.query else host


def check_url(url: str, what: str) -> str:
    """Reject anything but an absolute http(s) URL at construction, without echoing it."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise ConfigError(f"{what}: the URL is not valid") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(f"{what}: the URL must be an absolute http:// or https:// URL")
    return url


def url_secrets(url: str) -> list[str]:
    """The parts of ``url`` that may be credentials: scrubbed from anything a receiver echoes back."""
    parsed = httpx.URL(url)
    parts = [url, parsed.path, parsed.query.decode("ascii", "replace"), parsed.userinfo.decode("ascii", "replace")]
    # Short segments ("v1", "api") are noise; tokens are long.
    parts += [segment for segment in parsed.path.split("/") if len(segment) >= 6]
    return [p for p in parts if len(p) > 1]


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``…``, on one line, at most ``_SNIPPET`` characters.

    Scrub first and truncate after, so a cut can never leave a recognisable piece of a secret.
    """
    for secret in sorted(secrets, key=len, reverse=True):  # the whole URL before its path
        if secret:
            text = text.replace(secret, "…")
    text = " ".join(text.split())
    return text if len(text) <= _SNIPPET else text[: _SNIPPET - 1] + "…"


def header_key(key: str) -> str:
    """``key`` as an HTTP header value: UTF-8 percent-encoded outside printable ASCII (and ``%`` itself).

    Deterministic, so a retried alert carries the same ``Idempotency-Key``; ASCII keys without spaces
    are unchanged. Names that are not UTF-8 (held as surrogate escapes) get their original bytes.
    """
    return quote(key, safe=_HEADER_SAFE, errors="surrogateescape")


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of body>``: the ``X-Tbhub-Signature`` header value."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; ``None`` when absent or garbled."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _failure(status: int, retry_after: str | None, body: str, label: str) -> DeliveryError:
    said = f" {body}" if body else ""
    if status == 429:
        wait = parse_retry_after(retry_after)
        return DeliveryError(
            f"{label}: HTTP 429 rate limited{said}",
            retry_after=_DEFAULT_RETRY_AFTER if wait is None else wait,
        )
    if status >= 500 or status in _TRANSIENT_4XX:
        return DeliveryError(f"{label}: HTTP {status}{said}", retry_after=parse_retry_after(retry_after))
    if 300 <= status < 400:
        return DeliveryError(f"{label}: HTTP {status} redirect not followed; configure the final URL", permanent=True)
    if status in _MESSAGE_REFUSED:
        return UndeliverableMessage(f"{label}: HTTP {status}{said}; this alert was refused")
    if status in (404, 410):
        return DeliveryError(f"{label}: HTTP {status}{said}; the endpoint is gone, fix the URL", permanent=True)
    return DeliveryError(f"{label}: HTTP {status}{said}", permanent=True)


def post_json(
    url: str,
    body: bytes,
    *,
    label: str,
    headers: Mapping[str, str],
    timeout: float,
    client: httpx.Client | None,
    secrets: Iterable[str] = (),
) -> None:
    """POST ``body`` (JSON bytes) to ``url``; return on 2xx, else raise ``DeliveryError`` (see the table).

    ``label`` names the channel in messages and must be safe to show; ``secrets`` (besides the URL's
    own path and query) are scrubbed from anything quoted back from the receiver. httpx's timeout
    bounds the connect, the write and each read separately. Exceptions are raised ``from None``: the
    httpx cause carries the request, and with it the URL, into any logged traceback.
    """
    hidden = [*url_secrets(url), *secrets]
    try:
        if client is None:
            # A client per alert: alerts are rare, and nothing then has to remember to close it.
            with httpx.Client(timeout=timeout) as own:
                outcome = _exchange(own, url, body, headers, timeout)
        else:
            outcome = _exchange(client, url, body, headers, timeout)
    except httpx.TimeoutException:
        raise DeliveryError(f"{label}: no answer within {timeout:g}s") from None
    except (httpx.UnsupportedProtocol, httpx.LocalProtocolError) as exc:
        # Our request cannot be sent at all (a bad header value in the config): retrying cannot help.
        raise DeliveryError(f"{label}: cannot send: {scrub(str(exc), hidden)}", permanent=True) from None
    except httpx.TransportError as exc:
        reason = scrub(str(exc), hidden) or type(exc).__name__
        raise DeliveryError(f"{label}: {reason}") from None
    if outcome is not None:
        status, retry_after, text = outcome
        raise _failure(status, retry_after, scrub(text, hidden), label) from None


def _exchange(
    client: httpx.Client, url: str, body: bytes, headers: Mapping[str, str], timeout: float
) -> tuple[int, str | None, str] | None:
    """``None`` on 2xx, else (status, Retry-After, the start of the body)."""
    with client.stream("POST", url, content=body, headers=headers, timeout=timeout,
                       follow_redirects=False) as response:
        if response.is_success:
            return None
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size >= _BODY_LIMIT:
                break
        text = b"".join(chunks)[:_BODY_LIMIT].decode("utf-8", "replace")
        return response.status_code, response.headers.get("retry-after"), text


def message_bytes(label: str, build: Callable[[], bytes]) -> bytes:
    """``build()``, with a failure to encode this alert's content as ``UndeliverableMessage``.

    A name that is not valid UTF-8 (a surrogate escape) cannot be encoded: that alert fails, the
    channel does not.
    """
    try:
        return build()
    except (UnicodeError, ValueError) as exc:
        raise UndeliverableMessage(f"{label}: this alert cannot be encoded: {type(exc).__name__}") from None


def jsonable(value: Any) -> Any:
    """``value`` as strict JSON data: non-finite floats become ``"NaN"``/``"Infinity"``/``"-Infinity"``."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float):
        return value
    return str(value)


class HttpNotifier:
    """A channel that POSTs one JSON body per alert to a URL (Slack and the generic webhook).

    It owns what they share: the URL is checked when built and is the credential, so ``repr()`` and
    ``label`` (how messages name the channel) show only ``redact_url`` of it; ``timeout`` must be
    positive; ``client`` (tests pass one) is reused, else each alert gets its own.
    """

    kind: ClassVar[str]

    def __init__(self, name: str, url: str, *, timeout: float, client: httpx.Client | None) -> None:
        if timeout <= 0:
            raise ConfigError(f"{self.kind} {name!r}: timeout must be positive")
        self.name = name
        self.timeout = timeout
        self._url = check_url(url, f"{self.kind} {name!r}")
        self._client = client

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, url={redact_url(self._url)!r}{self._repr_extra()})"

    def _repr_extra(self) -> str:
        return ""

    @property
    def label(self) -> str:
        """How error messages name this channel: safe to show."""
        return f"{self.kind} {self.name!r} ({redact_url(self._url)})"

    def _post(self, body: bytes, headers: Mapping[str, str], secrets: Iterable[str] = ()) -> None:
        post_json(self._url, body, label=self.label, headers=headers, timeout=self.timeout, client=self._client,
                  secrets=secrets)


class WebhookNotifier(HttpNotifier):
    """POST each alert as a versioned JSON document to a URL (see the module docstring).

    Invariants: ``send`` returns only after a 2xx; it raises ``DeliveryError`` with ``permanent``
    for answers that will not change on retry (404, 410, other 4xx, redirects) and transient for
    5xx, 408, 425, 429 (with ``retry_after``), timeouts and connection errors. The URL, the secret
    and the extra header values never appear in ``repr()`` or in error messages.
    """

    kind = "webhook"

    def __init__(
        self,
        name: str,
        url: str,
        *,
        secret: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        client: httpx.Client | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(name, url, timeout=timeout, client=client)
        self._secret = secret or None
        # Extra headers (an Authorization token, typically) are secrets too.
        self._headers = dict(headers or {})

    def _repr_extra(self) -> str:
        return ", signed" if self._secret else ""

    @staticmethod
    def document(alert: Alert) -> dict[str, Any]:
        """The JSON document for ``alert`` (version 1)."""
        return {
            "version": 1,
            "key": alert.key,
            "endpoint": alert.endpoint,
            "dataset": alert.dataset,
            "run": alert.run,
            "status": alert.status.value,
            "at": isoformat_utc(alert.at),
            "message": alert.message,
            "details": jsonable(alert.details),
            "url": alert.url,
        }

    def body(self, alert: Alert) -> bytes:
        """The exact bytes sent (and signed)."""
        return json.dumps(self.document(alert), ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()

    def send(self, alert: Alert) -> None:
        body = message_bytes(self.label, lambda: self.body(alert))
        ours = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Idempotency-Key": header_key(alert.key),
        }
        if self._secret:
            ours["X-Tbhub-Timestamp"] = str(int(time.time()))
            ours["X-Tbhub-Signature"] = signature(self._secret, body)
        # Ours win over configured ones (header names are case-insensitive, so drop rather than
        # overlay): a config must not be able to break the body/signature contract.
        taken = {k.lower() for k in ours}
        headers = {k: v for k, v in self._headers.items() if k.lower() not in taken} | ours
        secrets = [v for v in self._headers.values() if len(v) > 3]
        if self._secret:
            secrets.append(self._secret)
        self._post(body, headers, secrets)
