"""Who is on the other end of a request: the TCP peer, and the client a trusted proxy forwards for.

uvicorn runs with its own forwarded-header handling off (``tbhub serve``), so ``scope["client"]`` is
the TCP peer. Only when that peer is one of ``auth.trusted_proxies`` are ``X-Forwarded-For`` and
``X-Forwarded-Proto`` believed: the client is the first address, walking ``X-Forwarded-For`` from the
right, that is not itself a trusted proxy (each proxy appends the address it got the request from,
so everything left of the first untrusted hop may be forged). A forwarded address never makes a
request trusted: that rests on the peer alone.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.types import Scope

__all__ = ["TrustedProxies", "resolve_client"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """The configured proxies as networks (a bare address is a /32 or /128); entries are validated
    when the config is loaded, so a malformed one here is a bug."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.networks: tuple[Network, ...] = tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries)

    def __contains__(self, host: object) -> bool:
        if not self.networks or not isinstance(host, str):
            return False
        try:
            address = ipaddress.ip_address(host.strip().removeprefix("[").removesuffix("]"))
        except ValueError:
            return False
        return any(address in network for network in self.networks)


def _host(hop: str) -> str:
    """``1.2.3.4:5678``, ``[::1]:80`` or a bare address → the address."""
    hop = hop.strip()
    if hop.startswith("[") and "]" in hop:
        return hop[1:hop.index("]")]
    if hop.count(":") == 1:
        return hop.split(":")[0]
    return hop


def resolve_client(scope: Scope, trusted: TrustedProxies) -> bool:
    """Whether the TCP peer is a trusted proxy. If it is, rewrite ``scope["client"]`` (and the scheme)
    from the forwarded headers, so logs, throttling and ``request.client`` see the real client."""
    client = scope.get("client")
    peer = client[0] if client else None
    if peer not in trusted:
        return False
    headers = Headers(scope=scope)
    hops = [_host(h) for h in ",".join(headers.getlist("x-forwarded-for")).split(",") if h.strip()]
    for hop in reversed(hops):
        if hop not in trusted:
            scope["client"] = (hop, 0)
            break
    proto = headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    if proto in ("http", "https") and scope.get("type") == "http":
        scope["scheme"] = proto
    return True
