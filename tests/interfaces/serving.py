"""Run a real ``tbhub serve`` in a subprocess for tests, on free loopback ports."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import psutil

from ports import free_port
from tbhub.adapters.db.accounts import AccountStore
from tbhub.adapters.db.store import open_state
from tbhub.core.accounts import Role

T = TypeVar("T")


def wait_for(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll ``check`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (httpx.HTTPError, OSError, ValueError, KeyError) as error:
            last_error = error
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_error!r})")


@dataclass
class Server:
    proc: subprocess.Popen[str]
    port: int
    ports: dict[str, int]
    config: Path
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, **kw: object) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30, trust_env=False, **kw)  # type: ignore[arg-type]

    def direct(self, name: str, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.ports[name]}{path}", timeout=30, trust_env=False)

    def tree(self) -> list[psutil.Process]:
        """The server and every process below it (TensorBoards and their data servers)."""
        try:
            me = psutil.Process(self.proc.pid)
            return [me, *me.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def tensorboard(self, name: str) -> psutil.Process:
        for p in self.tree():
            with contextlib.suppress(psutil.Error):
                if f"/tb/{name}" in p.cmdline() and "tensorboard.main" in p.cmdline():
                    return p
        raise AssertionError(f"no TensorBoard process for {name}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def write_config(path: Path, roots: dict[str, Path], *, hub_port: int, reload_interval: int = 1,
                 state_dir: Path | None = None, extra: str = "", auth: str | None = "none",
                 database: str | None = None) -> dict[str, int]:
    """``auth``: the ``[auth]`` mode to write ("none": no login on loopback); ``None`` writes no ``[auth]``.
    ``database``: a state database URL (default: SQLite in ``state_dir``)."""
    ports = {name: free_port() for name in roots}
    lines = [f"[server]\nport = {hub_port}\n"]
    if auth is not None:
        lines.append(f'[auth]\nmode = "{auth}"\n')
    if state_dir is not None or database is not None:
        lines.append("[state]\n" + (f'dir = "{state_dir}"\n' if state_dir else "")
                     + (f'database = "{database}"\n' if database else ""))
    for name, root in roots.items():
        lines.append(
            f'[endpoints.{name}]\nlogdir = "{root}"\nport = {ports[name]}\nreload_interval = {reload_interval}\n'
        )
    lines.append(extra)
    path.write_text("\n".join(lines))
    return ports


PORT_CLASH = "already in use"


@contextlib.contextmanager
def serve(tmp: Path, roots: dict[str, Path], *, scan_interval: float = 1.0, wait: bool = True,
          extra_args: tuple[str, ...] = (), extra_config: str = "", auth: str | None = "none",
          database: str | None = None) -> Iterator[Server]:
    """Start ``tbhub serve`` over ``roots`` and wait until the hub answers (``wait``: until every TensorBoard
    does); always stop it (SIGTERM, then SIGKILL of the whole tree).

    Ports come from :func:`free_port`, so another socket may take one between the pick and the bind (an
    outgoing connection's ephemeral port): a server that exits saying a port is in use is started again on
    fresh ports. A server that exits for any other reason fails the test with its output."""
    tmp.mkdir(parents=True, exist_ok=True)
    for attempt in range(3):
        server = _start(tmp, roots, scan_interval, extra_args, extra_config, auth, database)
        try:
            if _answers(server, "/healthz", 90, "the hub") and (
                    not wait or _answers(server, "/readyz", 90, "every TensorBoard to be ready")):
                break
        except BaseException:
            stop(server.proc)
            raise
        stop(server.proc)
        if attempt == 2:
            raise AssertionError(f"the server's ports were taken three times: {server.output()}")
    try:
        yield server
    finally:
        stop(server.proc)


def _start(tmp: Path, roots: dict[str, Path], scan_interval: float, extra_args: tuple[str, ...],
           extra_config: str, auth: str | None, database: str | None) -> Server:
    port = free_port()
    config = tmp / "tbhub.toml"
    ports = write_config(config, roots, hub_port=port, state_dir=tmp / "state", extra=extra_config,
                         auth=auth, database=database)
    log = tmp / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tbhub", "serve", "--config", str(config),
             "--scan-interval", str(scan_interval), "--alerts-warmup", "0", *extra_args],
            stdout=out, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    return Server(proc, port, ports, config, log)


def _answers(server: Server, path: str, timeout: float, what: str) -> bool:
    """Wait until ``path`` answers 200: True; False if a port was taken (the hub's: the server exits; an
    endpoint's: its TensorBoard cannot start). Fails the test, with the server's output, if the server
    exited otherwise or never answered."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if server.get(path).status_code == 200:
                return True
        except httpx.HTTPError as error:
            last_error = error
        output = server.output()
        if PORT_CLASH in output:
            return False
        if server.proc.poll() is not None:
            raise AssertionError(f"tbhub serve exited ({server.proc.returncode}) before {what}:\n{output}")
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_error!r});"
                         f" the server said:\n{server.output()[-4000:]}")


def stop(proc: subprocess.Popen[str], wait: float = 15) -> None:
    """Stop a ``tbhub serve``: SIGTERM, SIGKILL after ``wait`` seconds, then kill whatever it left
    below it (TensorBoards, data servers) so that no test leaks a process."""
    leftovers: list[psutil.Process] = []
    with contextlib.suppress(psutil.Error):
        leftovers = psutil.Process(proc.pid).children(recursive=True)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    for p in leftovers:
        with contextlib.suppress(psutil.Error):
            p.kill()


def accounts_of(server: Server) -> tuple[str, str, str]:
    """Users and tokens in the server's own state database: (admin password, admin token, editor token)."""
    state = open_state(f"sqlite:///{server.config.parent / 'state' / 'tbhub.db'}")
    try:
        accounts = AccountStore(state.engine)
        accounts.add_user("ada", Role.ADMIN, "ada-password")
        admin, _ = accounts.create_token("ops", Role.ADMIN, "test")
        editor, _ = accounts.create_token("bot", Role.EDITOR, "test")
    finally:
        state.dispose()
    return "ada-password", admin, editor
