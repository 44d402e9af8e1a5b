"""The TensorBoard supervisor against real TensorBoard children, real event files and free ports.

TensorBoard takes a few seconds to start on a shared 2-core machine, so one two-endpoint supervisor
serves the module's read-only and restart tests; tests that need their own lifecycle start their own.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from eventfiles import write_scalar_file
from ports import free_port
from tbhub.adapters.storage.mirror import MANIFEST as MIRROR_MANIFEST
from tbhub.adapters.tensorboard.supervisor import (
    ChildSpec,
    ChildState,
    ChildStatus,
    StartLaunched,
    StartWaiting,
    SupervisorTiming,
    TensorBoardSupervisor,
)
from tbhub.core.models import EndpointSpec
from tbhub.errors import ConfigError, ServeError

pytestmark = pytest.mark.slow

# Short intervals: a hung child is noticed after ~2 × 0.5 s, a crashed one relaunched after 0.2 s.
TIMING = SupervisorTiming(
    tick=0.1,
    health_interval=0.5,
    health_timeout=0.5,
    health_failures=2,
    startup_timeout=30.0,
    backoff_initial=0.2,
    backoff_max=1.0,
    root_check_interval=0.2,
    stop_grace=3.0,
)
STEPS = range(5)


def spec_for(name: str, root: Path, state_dir: Path, **kwargs: object) -> ChildSpec:
    endpoint = EndpointSpec(name=name, logdir=str(root), port=free_port(), reload_interval=5)
    return ChildSpec.from_endpoint(endpoint, state_dir=state_dir, **kwargs)  # type: ignore[arg-type]


def write_root(root: Path) -> None:
    write_scalar_file(root / "ds" / "run1", STEPS, ("loss",))
    write_scalar_file(root / "ds" / "run2", STEPS, ("loss",))


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def processes_mentioning(marker: str) -> list[psutil.Process]:
    """Live (non-zombie) processes whose command line mentions ``marker``: TensorBoard children
    (``--logdir ROOT``) and their data servers (``--logdir=ROOT``)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["status"] != psutil.STATUS_ZOMBIE and any(marker in arg for arg in cmdline):
            found.append(proc)
    return found


def group_of(pid: int) -> list[psutil.Process]:
    leader = psutil.Process(pid)
    return [leader, *leader.children(recursive=True)]


def gone(proc: psutil.Process) -> bool:
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def runs(http: httpx.Client, status: ChildStatus) -> list[str]:
    response = http.get(f"{status.url}data/runs")
    response.raise_for_status()
    return sorted(response.json())


def serves_runs(http: httpx.Client, status: ChildStatus) -> bool:
    try:
        return runs(http, status) == ["ds/run1", "ds/run2"]
    except httpx.HTTPError:
        return False


def restarted(sup: TensorBoardSupervisor, name: str, old_pid: int) -> Callable[[], bool]:
    def check() -> bool:
        status = sup.child_status(name)
        return status.state is ChildState.UP and status.pid not in (None, old_pid)

    return check


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0, trust_env=False) as client:
        yield client


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TensorBoardSupervisor]:
    """Endpoints ``alpha`` and ``beta``, each a log root with runs ds/run1 and ds/run2."""
    base = tmp_path_factory.mktemp("pair")
    specs = []
    for name in ("alpha", "beta"):
        write_root(base / name)
        specs.append(spec_for(name, base / name, base / "state"))
    sup = TensorBoardSupervisor(specs, timing=TIMING)
    try:
        outcomes = sup.start()
        assert [type(o) for o in outcomes] == [StartLaunched, StartLaunched]
        assert sup.wait_ready(60), sup.status()
        yield sup
    finally:
        sup.stop()
    assert processes_mentioning(str(base)) == []


# -- specs (no process) ------------------------------------------------------------------------------


def test_spec_command_and_defaults(tmp_path: Path) -> None:
    extra = ["--samples_per_plugin=scalars=0"]
    local = spec_for("lora", tmp_path / "root", tmp_path / "state", extra_args=extra)
    assert local.command("python") == [
        "python", "-m", "tensorboard.main", "--logdir", str(tmp_path / "root"), "--load_fast", "true",
        "--reload_interval", "5", "--path_prefix", "/tb/lora", "--port", str(local.port),
        "--host", "127.0.0.1", "--samples_per_plugin=scalars=0",
    ]  # fmt: skip
    assert local.log_path == tmp_path / "state" / "logs" / "tensorboard-lora.log"
    assert local.url == f"http://127.0.0.1:{local.port}/tb/lora/"

    remote = ChildSpec.from_endpoint(
        EndpointSpec(name="s3", logdir="s3://bucket/logs", port=6010, reload_interval=5),
        state_dir=tmp_path,
        exposed=True,
    )
    assert (remote.load_fast, remote.host, remote.logdir) == ("auto", "0.0.0.0", "s3://bucket/logs")
    assert remote.url == "http://127.0.0.1:6010/tb/s3/"
    assert remote.root_problem() is None


@pytest.mark.parametrize("arg", ["--logdir=/elsewhere", "--port", "--db_import", "--bind_all"])
def test_spec_rejects_flags_it_owns(tmp_path: Path, arg: str) -> None:
    with pytest.raises(ConfigError, match="not allowed"):
        spec_for("x", tmp_path, tmp_path, extra_args=[arg])


def test_spec_needs_a_port(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="has no port"):
        ChildSpec.from_endpoint(EndpointSpec(name="x", logdir=str(tmp_path), reload_interval=5), state_dir=tmp_path)


# -- serving -----------------------------------------------------------------------------------------


def test_two_endpoints_serve_runs_and_scalars(pair: TensorBoardSupervisor, http: httpx.Client) -> None:
    for status in pair.status():
        assert status.state is ChildState.UP
        assert status.pid is not None and status.started_at is not None
        # The data server's first load cycle may still be running right after start.
        wait_for(lambda s=status: serves_runs(http, s), 30, f"runs of {status.name}")  # type: ignore[misc]
        params = {"run": "ds/run1", "tag": "loss"}
        response = http.get(f"{status.url}data/plugin/scalars/scalars", params=params)
        response.raise_for_status()
        assert [step for _, step, _ in response.json()] == list(STEPS)


def test_path_prefix_is_honoured(pair: TensorBoardSupervisor, http: httpx.Client) -> None:
    alpha, beta = pair.status()
    base = f"http://127.0.0.1:{alpha.port}"
    assert http.get(f"{base}/data/runs").status_code == 404
    assert http.get(f"{base}/tb/beta/data/runs").status_code == 404
    redirect = http.get(f"{base}/tb/alpha")
    assert redirect.is_redirect and redirect.headers["location"].endswith("/tb/alpha/")
    assert http.get(f"http://127.0.0.1:{beta.port}/tb/beta/data/environment").status_code == 200


# -- restarts ----------------------------------------------------------------------------------------


def test_killed_child_comes_back(pair: TensorBoardSupervisor, http: httpx.Client) -> None:
    before = pair.child_status("alpha")
    assert before.pid is not None
    old_group = group_of(before.pid)
    assert len(old_group) == 2, "TensorBoard and its data server"

    os.kill(before.pid, signal.SIGKILL)
    wait_for(restarted(pair, "alpha", before.pid), 30, "alpha to come back")

    after = pair.child_status("alpha")
    assert after.restarts == before.restarts + 1
    assert after.last_restart_reason == "was killed by SIGKILL"
    record = pair.restarts()[-1]
    assert (record.name, record.exit_code, record.pid) == ("alpha", -signal.SIGKILL, before.pid)
    assert all(gone(p) for p in old_group), "the old data server was reaped with its group"
    wait_for(lambda: serves_runs(http, after), 30, "alpha to serve again")
    assert "--- tbhub: was killed by SIGKILL" in pair.log_tail("alpha")


def test_hung_child_is_restarted(pair: TensorBoardSupervisor, http: httpx.Client) -> None:
    before = pair.child_status("beta")
    assert before.pid is not None
    old_group = group_of(before.pid)

    os.kill(before.pid, signal.SIGSTOP)
    wait_for(restarted(pair, "beta", before.pid), 30, "hung beta to be replaced")

    after = pair.child_status("beta")
    assert after.restarts == before.restarts + 1
    assert after.last_restart_reason is not None
    assert after.last_restart_reason.startswith("stopped answering (2 failed health checks")
    assert all(gone(p) for p in old_group)
    wait_for(lambda: serves_runs(http, after), 30, "beta to serve again")


def test_failing_child_reports_its_error(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    spec = spec_for("bad", tmp_path / "root", tmp_path / "state", extra_args=["--no_such_flag"])
    sup = TensorBoardSupervisor([spec], timing=TIMING)
    try:
        sup.start()
        wait_for(lambda: sup.child_status("bad").restarts >= 1, 30, "the bad child to exit")
        status = sup.child_status("bad")
        assert status.state in (ChildState.RESTARTING, ChildState.STARTING)
        assert status.last_restart_reason == "exited with code 2"
        assert status.last_error is not None and "no_such_flag" in status.last_error
        assert not sup.wait_ready(0.2)
    finally:
        sup.stop()


# -- log roots and ports -----------------------------------------------------------------------------


def test_missing_log_root_starts_when_created(tmp_path: Path, http: httpx.Client) -> None:
    root = tmp_path / "late"
    sup = TensorBoardSupervisor([spec_for("late", root, tmp_path / "state")], timing=TIMING)
    try:
        (outcome,) = sup.start()
        assert outcome == StartWaiting("late", f"log root {root} does not exist")
        status = sup.child_status("late")
        assert (status.state, status.pid) == (ChildState.ERROR, None)
        assert status.last_error == f"log root {root} does not exist"
        assert sup.wait_ready(0.1), "a child without a log root does not hold up readiness"

        write_root(root)
        wait_for(lambda: sup.child_status("late").state is ChildState.UP, 30, "late to start")
        assert sup.child_status("late").last_error is None
        wait_for(lambda: serves_runs(http, sup.child_status("late")), 30, "late to serve")
    finally:
        sup.stop()


def test_a_mirrored_url_root_starts_when_its_first_sync_is_done(tmp_path: Path, http: httpx.Client) -> None:
    """An ``s3://`` endpoint runs the fast loader on its local mirror, once a sync has completed there;
    ``retry_now`` (called after that sync) starts it without waiting for the next root check."""
    mirror = tmp_path / "state" / "mirrors" / "cloud"
    endpoint = EndpointSpec(name="cloud", logdir="s3://bucket/logs", port=free_port(), reload_interval=5)
    spec = ChildSpec.from_endpoint(endpoint, state_dir=tmp_path / "state", mirror_dir=mirror)
    assert spec.command("python")[3:7] == ["--logdir", str(mirror), "--load_fast", "true"]
    assert spec.mirror_of == "s3://bucket/logs"
    sup = TensorBoardSupervisor([spec], timing=dataclasses.replace(TIMING, root_check_interval=3600.0))
    try:
        (outcome,) = sup.start()
        assert outcome == StartWaiting("cloud", "waiting for the first sync of s3://bucket/logs")
        write_root(mirror)  # files alone are not enough: a sync may be half done
        assert spec.root_problem() == "waiting for the first sync of s3://bucket/logs"
        (mirror / MIRROR_MANIFEST).write_text("{}")  # what a completed sync leaves
        assert spec.root_problem() is None
        assert sup.child_status("cloud").state is ChildState.ERROR  # next root check: in an hour
        sup.retry_now("cloud")
        wait_for(lambda: sup.child_status("cloud").state is ChildState.UP, 30, "cloud to start")
        wait_for(lambda: serves_runs(http, sup.child_status("cloud")), 30, "cloud to serve its mirror")
        pid = sup.child_status("cloud").pid
        sup.retry_now("cloud")  # no effect on a running child
        assert sup.child_status("cloud").pid == pid
    finally:
        sup.stop()


def test_port_in_use_starts_nothing(tmp_path: Path) -> None:
    write_root(tmp_path / "root")
    free = spec_for("first", tmp_path / "root", tmp_path / "state")
    taken = spec_for("lora", tmp_path / "root", tmp_path / "state")
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", taken.port))
        blocker.listen()
        sup = TensorBoardSupervisor([free, taken], timing=TIMING)
        with pytest.raises(ServeError, match=f"^port {taken.port} for endpoint 'lora' is already in use$"):
            sup.start()
        sup.stop()
    assert processes_mentioning(str(tmp_path)) == []
    assert [(s.state, s.pid) for s in sup.status()] == [(ChildState.STOPPED, None)] * 2
    assert not free.log_path.exists()


# -- stop --------------------------------------------------------------------------------------------


def test_stop_leaves_no_process_behind(tmp_path: Path) -> None:
    specs = []
    for name in ("one", "two"):
        write_root(tmp_path / name)
        specs.append(spec_for(name, tmp_path / name, tmp_path / "state"))
    sup = TensorBoardSupervisor(specs, timing=TIMING)
    try:
        sup.start()
        assert sup.wait_ready(60), sup.status()
        wait_for(lambda: len(processes_mentioning(str(tmp_path))) == 4, 30, "two TensorBoards, two servers")
        hung = sup.child_status("two").pid
        assert hung is not None
        os.kill(hung, signal.SIGSTOP)  # a stopped process must not stall stop()

        began = time.monotonic()
        sup.stop(timeout=10)
        assert time.monotonic() - began < 10
        assert processes_mentioning(str(tmp_path)) == []
        assert {s.state for s in sup.status()} == {ChildState.STOPPED}
        assert not any(s.pid_path.exists() for s in specs)
        sup.stop()  # idempotent
        assert not sup.wait_ready(0.1)
    finally:
        sup.stop()


HUB_SCRIPT = """
import sys, time
from pathlib import Path
from tbhub.adapters.tensorboard.supervisor import ChildSpec, TensorBoardSupervisor
name, root, port, log_path = sys.argv[1:]
sup = TensorBoardSupervisor([ChildSpec(name=name, logdir=root, port=int(port), log_path=Path(log_path),
                                       reload_interval=5)])
sup.start()
assert sup.wait_ready(60)
print(sup.status()[0].pid, flush=True)
time.sleep(600)
"""


def _hub_with_one_child(spec: ChildSpec) -> tuple[subprocess.Popen[str], list[psutil.Process]]:
    """A hub process supervising ``spec``'s TensorBoard, and that child's group (leader first)."""
    hub = subprocess.Popen(
        [sys.executable, "-c", HUB_SCRIPT, spec.name, spec.logdir, str(spec.port), str(spec.log_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert hub.stdout is not None
    pid = int(hub.stdout.readline())
    hub.stdout.close()
    wait_for(lambda: len(group_of(pid)) > 1, 30, "the data server to start")
    return hub, group_of(pid)


def test_children_die_with_a_hard_killed_hub(tmp_path: Path) -> None:
    """A SIGKILLed hub runs no atexit hook: its TensorBoard and data server must die with it anyway."""
    write_root(tmp_path / "root")
    spec = spec_for("crash", tmp_path / "root", tmp_path / "state")
    hub, group = _hub_with_one_child(spec)
    try:
        hub.kill()
        hub.wait(10)
        wait_for(lambda: all(gone(p) for p in group), 10, "the dead hub's TensorBoard and data server to exit")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", spec.port))  # the port is free again
    finally:
        hub.kill()
        hub.wait(10)
        for proc in processes_mentioning(str(tmp_path)):
            proc.kill()


def test_start_stops_what_a_hard_killed_hub_left(tmp_path: Path) -> None:
    """A data server that could not exit with its TensorBoard (stopped here) outlives a SIGKILLed hub;
    the next start() finds its group from the pid file and stops it before launching anything."""
    write_root(tmp_path / "root")
    spec = spec_for("crash", tmp_path / "root", tmp_path / "state")
    hub, (leader, *members) = _hub_with_one_child(spec)
    try:
        for member in members:
            member.suspend()
        hub.kill()
        hub.wait(10)
        leader.kill()  # whether or not it died with the hub
        wait_for(lambda: gone(leader), 10, "the TensorBoard to exit")
        time.sleep(1.0)
        assert not any(gone(p) for p in members), "the stopped data server lives on"

        sup = TensorBoardSupervisor([spec], timing=TIMING)
        try:
            (outcome,) = sup.start()
            assert isinstance(outcome, StartLaunched)
            assert all(gone(p) for p in members)
            assert sup.wait_ready(60)
        finally:
            sup.stop()
    finally:
        hub.kill()
        hub.wait(10)
        for proc in processes_mentioning(str(tmp_path)):
            proc.kill()
