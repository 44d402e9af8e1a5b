"""The endpoints as the rest of tbhub sees them: names checked, ports assigned, ``EndpointSpec`` values."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from tbhub.config.settings import FIRST_ENDPOINT_PORT
from tbhub.core.models import EndpointSpec
from tbhub.errors import UnknownEndpoint, UsageError

if TYPE_CHECKING:
    from tbhub.config.models import EndpointConfig

__all__ = ["ENDPOINT_NAME", "check_endpoint_names", "check_ports", "endpoint_specs", "resolve_ports"]

#: An endpoint name is a URL path segment (``/tb/NAME``) and part of a file name: no slash, no dot first.
ENDPOINT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def check_endpoint_names(names: Sequence[str]) -> None:
    """Raise ``ValueError`` for the first name that is not a valid endpoint name."""
    for name in names:
        if not ENDPOINT_NAME.match(name):
            raise ValueError(f"endpoint name {name!r} must be letters, digits, '.', '_' or '-' (no slash)")


def resolve_ports(endpoints: Mapping[str, EndpointConfig], server_port: int) -> dict[str, int]:
    """Each endpoint's port: its own, else the next free one from 6006 in config order."""
    taken = {e.port for e in endpoints.values() if e.port is not None} | {server_port}
    ports: dict[str, int] = {}
    candidate = FIRST_ENDPOINT_PORT
    for name, endpoint in endpoints.items():
        if endpoint.port is not None:
            ports[name] = endpoint.port
            continue
        while candidate in taken:
            candidate += 1
        ports[name] = candidate
        taken.add(candidate)
    return ports


def check_ports(endpoints: Mapping[str, EndpointConfig], server_port: int) -> None:
    """Raise ``ValueError`` naming both owners of a port used twice (the hub's included)."""
    seen: dict[int, str] = {server_port: "server.port"}
    for name, port in resolve_ports(endpoints, server_port).items():
        owner = f"endpoints.{name}.port"
        if port in seen:
            raise ValueError(f"duplicate port {port}: {seen[port]} and {owner}")
        seen[port] = owner


def endpoint_specs(
    endpoints: Mapping[str, EndpointConfig], server_port: int, names: Sequence[str] | None = None
) -> list[EndpointSpec]:
    """The core's view of the endpoints; ``names`` selects some (``None`` or ``["all"]``: all).

    Raises ``UsageError`` when no endpoint is configured and ``UnknownEndpoint`` for an unknown name.
    """
    if not endpoints:
        raise UsageError("no endpoints configured: pass a PATH, --logdir NAME=PATH or --config FILE")
    wanted = list(endpoints) if not names or list(names) == ["all"] else list(names)
    ports = resolve_ports(endpoints, server_port)
    specs = []
    for name in wanted:
        if name not in endpoints:
            known = ", ".join(sorted(endpoints))
            raise UnknownEndpoint(f"unknown endpoint {name!r} (known: {known})")
        e = endpoints[name]
        specs.append(
            EndpointSpec(
                name=name,
                logdir=e.logdir,
                layout=e.layout,
                port=ports[name],
                reload_interval=e.reload_interval,
                title=e.title,
            )
        )
    return specs
