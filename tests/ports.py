"""Loopback ports for the servers tests start: one implementation for every test.

A port picked by binding port 0 comes from the kernel's ephemeral range, the range every outgoing
connection takes its local port from: between the pick and the server's bind, a client connection
(the tests make thousands) may take it, and the server exits "port in use". Ports picked here lie
below that range, where only listeners bind, are checked free and are never handed out twice in one
test session.
"""

from __future__ import annotations

import contextlib
import random
import socket
from pathlib import Path

LOOPBACK = "127.0.0.1"
_LOWEST = 10_000
_handed_out: set[int] = set()


def _ephemeral_low() -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    return 32_768


def free_port() -> int:
    """A loopback port nobody listens on, outside the ephemeral range (racy only against other listeners)."""
    high = max(_ephemeral_low(), _LOWEST + 1_000)
    for _ in range(1_000):
        port = random.randrange(_LOWEST, high)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind((LOOPBACK, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise AssertionError(f"no free loopback port between {_LOWEST} and {high}")


def closed_port() -> int:
    """A loopback port where connections are refused (nobody listens there)."""
    return free_port()
