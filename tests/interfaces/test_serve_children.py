"""``tbhub serve`` and its TensorBoard children under hostile conditions: the redaction of
``/data/environment`` under every spelling TensorBoard routes there, a child that stops answering, a hub
killed hard, and the environment a child runs with. Real serve, real TensorBoard."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from serving import Server, serve, wait_for

from eventfiles import write_scalar_file

pytestmark = pytest.mark.slow

#: Stand-ins for the hub's secrets: the AWS SDK's, a ``TBHUB_*`` setting, and a notifier secret in a
#: variable whose name only the config knows.
SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "aws-secret-value",
    "AWS_ACCESS_KEY_ID": "aws-key-id",
    "TBHUB_TEST_SECRET": "tbhub-secret-value",
    "SMTP_PASSWORD_FOR_ALERTS": "smtp-secret-value",
}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    logs = tmp_path_factory.mktemp("logs") / "lora"
    write_scalar_file(logs / "alpaca" / "r1", range(20))
    return logs


@pytest.fixture(scope="module")
def server(root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in SECRETS.items():
            patch.setenv(name, value)
        with serve(tmp_path_factory.mktemp("serve"), {"lora": root}) as running:
            yield running


def raw_get(server: Server, path: str) -> tuple[int, bytes]:
    """GET ``path`` exactly as written: no client-side normalisation of dots or escapes (httpx has some)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


ENVIRONMENT_SPELLINGS = [
    "data/environment",
    "data/environment/",
    "data/./environment",
    "data/environment/.",
    "data/environment%3F",
    "data/environment%3Fx=1",
    "data/environment;x",
    "data/environment%3Bx",
    "data/environment%23x",
    "data/%2e/environment",
    "data/%2E/environment",
    "data/x/../environment",
    "data/x/%2e%2e/environment",
    "data//environment",
    "/data/environment",
    "data%2Fenvironment",
    "data%252Fenvironment",
    "experiment/abc/data/environment",
    "data/Environment",
    "DATA/ENVIRONMENT",
]


@pytest.mark.parametrize("spelling", ENVIRONMENT_SPELLINGS)
def test_environment_is_redacted_under_every_spelling(server: Server, root: Path, spelling: str) -> None:
    status, body = raw_get(server, f"/tb/lora/{spelling}")
    assert str(root).encode() not in body, f"{spelling!r} leaked the log root ({status})"
    assert b"--logdir" not in body and b"logdir" not in body.lower()
    if status == 200:
        assert json.loads(body)["data_location"] == "lora"


def test_the_environment_route_still_answers_redacted(server: Server) -> None:
    response = server.get("/tb/lora/data/environment")
    assert response.status_code == 200
    assert response.json()["data_location"] == "lora"
    assert server.get("/tb/lora/data/runs").json() == ["alpaca/r1"]  # other routes pass as they are


def test_tensorboard_children_get_none_of_the_hubs_secrets(server: Server) -> None:
    hub_environment = psutil.Process(server.proc.pid).environ()
    assert all(hub_environment.get(name) == value for name, value in SECRETS.items())  # the hub has them
    tensorboard = server.tensorboard("lora")
    for process in [tensorboard, *tensorboard.children(recursive=True)]:  # the data server too
        environment = process.environ()
        leaked = sorted(name for name in environment if name in SECRETS or name.startswith(("AWS_", "TBHUB_")))
        assert leaked == [], f"{process.cmdline()[:3]} inherited {leaked}"
        assert not any(value in environment.values() for value in SECRETS.values())
        assert environment.get("PATH")  # what it does need is still there


def _tensorboard_pid(server: Server) -> int | None:
    try:
        return server.tensorboard("lora").pid
    except AssertionError:  # between two children
        return None


def test_a_stopped_tensorboard_answers_504_quickly_and_is_replaced(tmp_path: Path, root: Path) -> None:
    with serve(tmp_path, {"lora": root}) as server:
        tensorboard = server.tensorboard("lora")
        assert server.get("/tb/lora/data/runs").status_code == 200
        os.kill(tensorboard.pid, signal.SIGSTOP)
        try:
            began = time.monotonic()
            response = server.get("/tb/lora/data/runs")
            took = time.monotonic() - began
            assert response.status_code == 504, response.text
            assert "did not answer in time" in response.json()["error"]
            assert took < 8.0, f"a stopped TensorBoard held the request for {took:.1f} s"
            # Meanwhile the hub itself answers at once.
            began = time.monotonic()
            assert server.get("/healthz").status_code == 200
            assert time.monotonic() - began < 2.0
            # The supervisor's health check replaces the hung child; the proxy serves again.
            replaced = lambda: _tensorboard_pid(server) not in (None, tensorboard.pid)  # noqa: E731
            wait_for(replaced, 60, "the hung child to be replaced")
            wait_for(lambda: server.get("/tb/lora/data/runs").status_code == 200, 60, "the proxy to answer again")
        finally:
            with contextlib.suppress(psutil.Error):
                tensorboard.resume()


def test_a_killed_hub_takes_its_tensorboards_along(tmp_path: Path, root: Path) -> None:
    with serve(tmp_path, {"lora": root}) as server:
        children = [p for p in server.tree() if p.pid != server.proc.pid]
        assert any("tensorboard.main" in p.cmdline() for p in children)
        assert any("tensorboard_data_server" in " ".join(p.cmdline()) for p in children)
        os.kill(server.proc.pid, signal.SIGKILL)  # the hub alone: no clean-up code runs
        server.proc.wait(10)

        def all_gone() -> bool:
            return not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in children)

        try:
            wait_for(all_gone, 15, "the dead hub's TensorBoard and data server to exit")
            with socket.socket() as sock:
                # As any server binds (TensorBoard too): connections the dead child had accepted may
                # linger in TIME_WAIT, which is no holder; a process still listening would fail this.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("127.0.0.1", server.ports["lora"]))  # nothing holds the port
                sock.listen()
        finally:
            for child in children:  # serve() can no longer find them below the dead hub
                with contextlib.suppress(psutil.Error):
                    child.kill()
                    child.wait(10)
