"""A TCP proxy that adds a fixed latency (and optionally a bandwidth cap) between a client and a server.

Loopback S3 (moto_server, MinIO) answers in well under a millisecond, so nothing measured against it
says how tbhub behaves against real object storage, where every request waits tens of milliseconds.
This proxy puts that wait back, in user space (``tc netem`` is not available here):

- **Latency**: every chunk read from one side is handed to the other side ``delay_ms`` after it
  arrived (a timestamp per chunk, so it is a true added latency, not a throughput limit: many
  chunks and many connections are in flight at once). Each way, so a request/response round trip
  costs ``2 × delay_ms`` more. With ``handshake=True`` a new connection costs one round trip more
  (the TCP handshake): its first bytes are held until ``2 × delay_ms`` after it was accepted. Off by
  default: moto_server (werkzeug) closes every connection after one response, where real object
  storage keeps connections alive, so without it a request costs one round trip, as on a kept-alive
  connection.
- **Bandwidth** (``bandwidth_mbps``, optional): one link per direction shared by all connections;
  a chunk occupies it for ``len / bandwidth`` after its latency has elapsed.
- **Counts**: connections, bytes each way, and HTTP/1.1 requests by kind (``LIST``, ``GET``,
  ``HEAD``, ``PUT``, ...), parsed from the client's stream (keep-alive and bodies understood), so a
  test can say "this rescan sent only LIST pages".

Two ways to run it, both bound to 127.0.0.1:

- in a thread of the test: ``with LatencyProxy("127.0.0.1", port, delay_ms=10) as proxy: proxy.url``;
  ``proxy.stats()`` and ``proxy.reset()``;
- as a process (``ProxyProcess``, what the benchmark uses, so the proxy's own Python never competes
  with the measured client for the GIL): ``python tests/latency_proxy.py --upstream URL --delay-ms 30``
  prints one JSON line (``{"url": ..., "control": ...}``) once listening; ``GET /stats`` and
  ``POST /reset`` on the control port read and zero the counts.

tests/ and benchmarks/ both import this module (benchmarks/s3.py puts tests/ on ``sys.path``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = ["LatencyProxy", "ProxyProcess", "ProxyStats", "request_kind"]

_CHUNK = 64 * 1024


def request_kind(method: str, target: str) -> str:
    """``LIST`` for an S3 listing (``GET /bucket?list-type=2...``, ``GET /bucket/?prefix=...``), else the
    method (``GET`` of an object, ``HEAD``, ``PUT``, ...)."""
    path, _, query = target.partition("?")
    if method == "GET":
        params = {p.partition("=")[0] for p in query.split("&") if p}
        if "list-type" in params or "prefix" in params or "delimiter" in params:
            return "LIST"
        if path.strip("/").count("/") == 0 and not params - {"encoding-type", "max-keys"}:
            return "LIST"  # the bucket itself: a listing of its top
    return method


@dataclass
class ProxyStats:
    """What went through the proxy since it started or was last reset."""

    connections: int = 0
    bytes_up: int = 0  # client -> server
    bytes_down: int = 0  # server -> client
    requests: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"connections": self.connections, "bytes_up": self.bytes_up, "bytes_down": self.bytes_down,
                "requests": dict(self.requests), "total_requests": sum(self.requests.values())}


class _RequestCounter:
    """Follows the HTTP/1.1 requests in one connection's client stream (headers, then a body of
    ``Content-Length`` or chunked), counting each by kind."""

    def __init__(self, stats: ProxyStats) -> None:
        self.stats = stats
        self.buffer = b""
        self.body_left = 0
        self.chunked = False

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.body_left:
                used = min(self.body_left, len(self.buffer))
                self.body_left -= used
                self.buffer = self.buffer[used:]
                if self.body_left:
                    return
            if self.chunked:
                end = self.buffer.find(b"\r\n0\r\n\r\n")
                if end < 0 and not self.buffer.startswith(b"0\r\n\r\n"):
                    self.buffer = self.buffer[-8:]
                    return
                self.buffer = self.buffer[5:] if end < 0 else self.buffer[end + 7 :]
                self.chunked = False
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                if len(self.buffer) > 1 << 20:  # not HTTP: stop looking
                    self.buffer = b""
                return
            head, self.buffer = self.buffer[:head_end].decode("latin-1"), self.buffer[head_end + 4 :]
            lines = head.split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) == 3:
                self.stats.requests[request_kind(parts[0], parts[1])] += 1
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
            if headers.get("transfer-encoding", "").lower() == "chunked":
                self.chunked = True
            else:
                with contextlib.suppress(ValueError):
                    self.body_left = int(headers.get("content-length", "0"))


class _Link:
    """One direction's shared bandwidth: the time the link is next free."""

    def __init__(self) -> None:
        self.free_at = 0.0

    def occupy(self, now: float, nbytes: int, bytes_per_s: float) -> float:
        start = max(now, self.free_at)
        self.free_at = start + nbytes / bytes_per_s
        return self.free_at


class LatencyProxy:
    """The proxy in a daemon thread with its own event loop (see the module docstring)."""

    def __init__(self, upstream_host: str, upstream_port: int, *, delay_ms: float,
                 bandwidth_mbps: float | None = None, port: int = 0, handshake: bool = False) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.handshake = handshake
        self.delay = delay_ms / 1000.0
        self.bandwidth = bandwidth_mbps * 1e6 / 8 if bandwidth_mbps else None
        self.port = port
        self._stats = ProxyStats()
        self._lock = threading.Lock()
        self._links = {"up": _Link(), "down": _Link()}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @classmethod
    def to(cls, url: str, **kwargs: Any) -> LatencyProxy:
        """A proxy in front of ``http://HOST:PORT``."""
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or 80, **kwargs)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- counts ------------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        with self._lock:
            return self._stats.as_dict()

    def reset(self) -> dict[str, Any]:
        """Zero the counts; returns them as they were."""
        with self._lock:
            old, self._stats = self._stats.as_dict(), ProxyStats()
        return old

    # -- lifetime ----------------------------------------------------------------------------------
    def start(self) -> LatencyProxy:
        ready = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            loop = self._loop = asyncio.new_event_loop()
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True))
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as error:
                failure.append(error)
                ready.set()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=main, name="latency-proxy", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is None or server is None:
            return

        async def shutdown() -> None:
            server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await server.wait_closed()
            await asyncio.sleep(0)  # the closed transports' last callbacks
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = self._server = None

    def __enter__(self) -> LatencyProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def serve_forever(self) -> None:
        """Run in the current event loop until cancelled (the process mode)."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        async with self._server:
            await self._server.serve_forever()

    # -- one connection ----------------------------------------------------------------------------
    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        accepted = time.monotonic()
        with self._lock:
            self._stats.connections += 1
        server_w: asyncio.StreamWriter | None = None
        try:
            server_r, server_w = await asyncio.open_connection(*self.upstream)
            counter = _RequestCounter(self._stats)
            # SYN, SYN-ACK: one round trip before any data
            handshake = accepted + 2 * self.delay if self.handshake else accepted
            await asyncio.gather(
                self._pump(client_r, server_w, "up", handshake, counter),
                self._pump(server_r, client_w, "down", handshake, None),
            )
        except (ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # a peer went away, or the proxy stops
        finally:
            for writer in (client_w, server_w):
                if writer is not None:
                    writer.close()
            # Until the transports are closed for real: a loop stopped while they are only "closing"
            # leaves their sockets to the garbage collector (a ResourceWarning in a later test).
            for writer in (client_w, server_w):
                if writer is not None:
                    with contextlib.suppress(Exception, asyncio.CancelledError):
                        await asyncio.wait_for(writer.wait_closed(), 2)
            self._connections.discard(task)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: str,
                    not_before: float, counter: _RequestCounter | None) -> None:
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()

        async def read() -> None:
            try:
                while data := await reader.read(_CHUNK):
                    with self._lock:
                        if direction == "up":
                            self._stats.bytes_up += len(data)
                            if counter is not None:
                                counter.stats = self._stats  # follow a reset
                                counter.feed(data)
                        else:
                            self._stats.bytes_down += len(data)
                    queue.put_nowait((time.monotonic() + self.delay, data))
            finally:
                queue.put_nowait(None)

        async def write() -> None:
            link = self._links[direction]
            while (item := await queue.get()) is not None:
                due, data = item
                due = max(due, not_before)
                if self.bandwidth:
                    due = link.occupy(due, len(data), self.bandwidth)
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
            with contextlib.suppress(OSError, RuntimeError):
                if writer.can_write_eof():
                    writer.write_eof()

        reading = asyncio.create_task(read())
        try:
            await write()
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                await reading


# -- the process mode ---------------------------------------------------------------------------------
async def _control(proxy: LatencyProxy, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        method = head.split(b" ", 1)[0]
        body = json.dumps(proxy.reset() if method == b"POST" else proxy.stats()).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def _main_async(args: argparse.Namespace) -> None:
    proxy = LatencyProxy.to(args.upstream, delay_ms=args.delay_ms, bandwidth_mbps=args.bandwidth_mbps,
                            port=args.port, handshake=args.handshake)
    control = await asyncio.start_server(lambda r, w: _control(proxy, r, w), "127.0.0.1", 0)
    serving = asyncio.create_task(proxy.serve_forever())
    while proxy._server is None:
        await asyncio.sleep(0.01)
    control_port = control.sockets[0].getsockname()[1]
    print(json.dumps({"url": proxy.url, "control": f"http://127.0.0.1:{control_port}"}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    serving.cancel()
    control.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A TCP proxy adding latency (and a bandwidth cap).")
    parser.add_argument("--upstream", required=True, metavar="URL", help="http://HOST:PORT to forward to")
    parser.add_argument("--delay-ms", type=float, default=30.0, metavar="MS", help="added each way (30)")
    parser.add_argument("--bandwidth-mbps", type=float, default=None, metavar="MBIT",
                        help="link capacity per direction (none)")
    parser.add_argument("--handshake", action="store_true", help="a new connection costs one round trip more")
    parser.add_argument("--port", type=int, default=0, metavar="PORT", help="listen port (a free one)")
    asyncio.run(_main_async(parser.parse_args(argv)))
    return 0


class ProxyProcess:
    """``python tests/latency_proxy.py`` as a child process; ``stats()``/``reset()`` over its control port."""

    def __init__(self, upstream: str, *, delay_ms: float, bandwidth_mbps: float | None = None) -> None:
        self.args = [sys.executable, str(Path(__file__).resolve()), "--upstream", upstream,
                     "--delay-ms", str(delay_ms)]
        if bandwidth_mbps:
            self.args += ["--bandwidth-mbps", str(bandwidth_mbps)]
        self.delay_ms, self.bandwidth_mbps = delay_ms, bandwidth_mbps
        self.proc: subprocess.Popen[str] | None = None
        self.url = self.control = ""

    def __enter__(self) -> ProxyProcess:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                                     start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.__exit__()
            raise RuntimeError("the latency proxy did not start")
        info = json.loads(line)
        self.url, self.control = info["url"], info["control"]
        return self

    def _call(self, method: str) -> dict[str, Any]:
        request = urllib.request.Request(f"{self.control}/stats", method=method, data=b"" if method == "POST" else None)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=10) as response:
            data: dict[str, Any] = json.loads(response.read())
        return data

    def stats(self) -> dict[str, Any]:
        return self._call("GET")

    def reset(self) -> dict[str, Any]:
        return self._call("POST")

    def __exit__(self, *exc: object) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
        self.proc = None


if __name__ == "__main__":
    sys.exit(main())
