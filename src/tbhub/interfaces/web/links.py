"""The links the hub hands out, never built from the request's ``Host`` header.

A client picks the ``Host`` it sends. An answer that echoes it into a link (``url`` and ``direct_url``
in ``/api/endpoints``, a page's asset URLs) lets anyone who can get such an answer cached, or shown to
someone else, point users at a host of their choosing. So with ``server.public_url`` set, a link is
that URL plus a path; without it, a link to the hub is the path alone (relative to wherever the client
reached the hub), and the direct link to a TensorBoard names the address the hub was configured with.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlsplit

__all__ = ["HubLinks"]

_ANY_ADDRESS = ("", "0.0.0.0", "::")


@dataclass(frozen=True, slots=True)
class HubLinks:
    """``public_url``: ``server.public_url`` (or ``None``); ``host``: ``server.host``."""

    public_url: str | None
    host: str

    def hub(self, path: str) -> str:
        """``path`` on the hub: absolute under ``public_url``, else the path itself."""
        return (self.public_url or "").rstrip("/") + path

    def tensorboard(self, name: str) -> str:
        """The proxied TensorBoard of endpoint ``name``."""
        return self.hub(f"/tb/{quote(name, safe='')}/")

    def direct(self, name: str, port: int) -> str:
        """The TensorBoard of ``name`` on its own port (plain HTTP: TensorBoard serves no TLS)."""
        host = urlsplit(self.public_url).hostname if self.public_url else None
        if not host:
            host = "127.0.0.1" if self.host in _ANY_ADDRESS else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}/tb/{quote(name, safe='')}/"
