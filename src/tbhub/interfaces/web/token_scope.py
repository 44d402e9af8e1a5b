"""What an API token limited to some endpoints may reach.

Deny by default: a request that names an endpoint (the ``name`` or ``endpoint`` path parameter, the
``endpoint`` field of a form) passes only for an endpoint in the token's scope; a request that names
none (lists, comparisons, usage, accounts) covers every endpoint and is refused, except the routes in
``SCOPE_FREE``: ``/api/me`` says only who the token is, and ``/metrics`` is cut down to the samples
of the token's endpoints (``filter_metrics``), so a Prometheus scraper's token fits one team's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tbhub.core.accounts import User

__all__ = ["SCOPE_FREE", "filter_metrics", "scope_refusal"]

SCOPE_FREE = frozenset({"api_me", "metrics"})
#: ``endpoint="..."`` in a sample's labels; Prometheus escapes ``\\``, ``"`` and newlines in values.
_ENDPOINT_LABEL = re.compile(rb'[{,]\s*endpoint="((?:[^"\\]|\\.)*)"')


def named_endpoint(params: Mapping[str, Any]) -> str | None:
    endpoint = params.get("name") or params.get("endpoint")
    return None if endpoint is None else str(endpoint)


def scope_refusal(user: User, route: str | None, endpoint: str | None) -> str | None:
    """Why ``user`` may not make this request (``None``: it may)."""
    if user.endpoints is None:
        return None
    allowed = ", ".join(sorted(user.endpoints))
    if endpoint is not None:
        return None if endpoint in user.endpoints else f"{user.name} is limited to {allowed}, not {endpoint}"
    if route in SCOPE_FREE:
        return None
    return f"{user.name} is limited to {allowed}: this covers every endpoint"


def filter_metrics(body: bytes, endpoints: frozenset[str]) -> bytes:
    """The exposition without the samples labelled with another endpoint."""
    keep = {e.encode() for e in endpoints}
    out = []
    for line in body.splitlines(keepends=True):
        match = None if line.startswith(b"#") else _ENDPOINT_LABEL.search(line)
        if match is None or _unescape(match.group(1)) in keep:
            out.append(line)
    return b"".join(out)


def _unescape(value: bytes) -> bytes:
    return value.replace(b"\\n", b"\n").replace(b'\\"', b'"').replace(b"\\\\", b"\\")
