"""``tbhub serve`` end to end: real TensorBoard children, the hub, the proxy, restarts, shutdown."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from serving import Server, free_port, serve, wait_for

from eventfiles import scalar_event, write_events, write_scalar_file, write_tf2_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("logs")
    lora, router = base / "lora", base / "router"
    write_scalar_file(lora / "alpaca" / "r16", range(200), ("train/loss", "train/lr"))
    write_scalar_file(lora / "alpaca" / "r32", range(50), ("train/loss",))
    write_tf2_run(lora / "dolly" / "keras")
    write_scalar_file(lora / "dolly" / "doomed", range(10))
    write_scalar_file(router / "moe" / "top2", range(100), ("loss", "aux_loss"))
    return {"lora": lora, "router": router}


@pytest.fixture(scope="module")
def server(roots: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(tmp_path_factory.mktemp("serve"), roots) as running:
        yield running


def scalars(response_json: object) -> list[tuple[float, int, float]]:
    return [tuple(x) for x in response_json]  # type: ignore[attr-defined, misc]


def test_runs_and_scalars_through_proxy_and_direct_port(server: Server) -> None:
    via_hub = server.get("/tb/lora/data/runs")
    direct = server.direct("lora", "/tb/lora/data/runs")
    assert via_hub.status_code == direct.status_code == 200
    assert sorted(via_hub.json()) == sorted(direct.json())
    assert {"alpaca/r16", "alpaca/r32", "dolly/keras/train", "dolly/keras/validation"} <= set(via_hub.json())
    query = "/tb/lora/data/plugin/scalars/scalars?run=alpaca%2Fr16&tag=train%2Floss"
    hub_scalars = server.get(query).json()
    assert hub_scalars == server.direct("lora", query).json()
    assert [step for _, step, _ in hub_scalars] == list(range(200))
    assert server.get("/tb/router/data/runs").json() == ["moe/top2"]


def test_large_responses_stream_byte_identical(server: Server) -> None:
    page = server.get("/tb/lora/")
    assert page.status_code == 200 and len(page.content) > 100_000
    assert page.content == server.direct("lora", "/tb/lora/").content
    assert "index.js" in page.text
    js_hub = server.get("/tb/lora/index.js")  # the 6 MB UI bundle
    js_direct = server.direct("lora", "/tb/lora/index.js")
    assert js_hub.status_code == 200 and len(js_hub.content) > 1_000_000
    assert hashlib.sha256(js_hub.content).digest() == hashlib.sha256(js_direct.content).digest()
    # gzip passes through untouched when the browser asks for it
    gz = server.get("/tb/lora/data/runs", headers={"accept-encoding": "gzip"})
    assert gz.status_code == 200 and sorted(gz.json()) == sorted(server.direct("lora", "/tb/lora/data/runs").json())


def test_environment_is_redacted(server: Server, roots: dict[str, Path]) -> None:
    direct = server.direct("lora", "/tb/lora/data/environment")
    assert str(roots["lora"]) in direct.text  # what we hide is really there
    redacted = server.get("/tb/lora/data/environment")
    assert redacted.status_code == 200
    assert str(roots["lora"]) not in redacted.text and "flags" not in redacted.text
    assert redacted.json()["data_location"] == "lora" and redacted.json()["version"]


def test_prefix_redirect_and_unknown_endpoint(server: Server) -> None:
    bare = server.get("/tb/lora")
    assert bare.status_code in (301, 302, 307, 308) and bare.headers["location"].endswith("/tb/lora/")
    missing = server.get("/tb/nope/data/runs")
    assert missing.status_code == 404 and "unknown endpoint 'nope'" in missing.json()["error"]


def test_api_health_and_openapi(server: Server) -> None:
    health = server.get("/healthz").json()
    # A lone server on SQLite leads (it holds the leader lease) and names itself host:pid.
    assert health == {"status": "ok", "leader": True, "replica": health["replica"]}
    assert health["replica"].endswith(f":{server.proc.pid}")
    ready = server.get("/readyz")
    assert ready.status_code == 200 and ready.json()["endpoints"] == {"lora": "up", "router": "up"}
    endpoints = {e["name"]: e for e in server.get("/api/endpoints").json()}
    assert set(endpoints) == {"lora", "router"}
    lora = wait_for(lambda: server.get("/api/endpoints/lora").json() if server.get(
        "/api/endpoints/lora").json()["runs"] >= 4 else None, 30, "the first scan")
    assert lora["state"] == "up" and lora["port"] == server.ports["lora"]
    assert lora["url"].endswith("/tb/lora/") and lora["direct_url"].endswith(f":{server.ports['lora']}/tb/lora/")
    runs = {r["relpath"]: r for r in server.get("/api/endpoints/lora/runs").json()}
    assert runs["alpaca/r16"]["event_count"] == 1 + 400 and runs["alpaca/r16"]["last_step"] == 199
    assert runs["dolly/keras"]["event_files"] == 2
    schema = server.get("/openapi.json").json()
    assert {"/api/endpoints", "/api/endpoints/{name}", "/api/endpoints/{name}/runs", "/healthz", "/readyz"} <= set(
        schema["paths"]
    )
    assert server.get("/api/endpoints/nope/runs").status_code == 404


def test_pages_list_endpoints_and_runs(server: Server) -> None:
    wait_for(lambda: server.get("/api/endpoints/router").json()["runs"] == 1, 30, "router scan")
    index = server.get("/")
    assert index.status_code == 200 and "text/html" in index.headers["content-type"]
    for name in ("lora", "router"):
        assert f'data-endpoint="{name}"' in index.text and f'href="/tb/{name}/"' in index.text
    page = server.get("/endpoints/lora")
    assert page.status_code == 200
    assert 'data-run="alpaca/r16"' in page.text and "age-green" in page.text
    assert server.get("/endpoints/nope").status_code == 404


def test_appended_events_arrive_and_deleted_runs_go(server: Server, roots: dict[str, Path]) -> None:
    run = roots["lora"] / "alpaca" / "r32"
    (path,) = run.glob("events.out.tfevents.*")
    write_events(path, [scalar_event(s, 0.01, "train/loss") for s in range(50, 60)], append=True)
    query = "/tb/lora/data/plugin/scalars/scalars?run=alpaca%2Fr32&tag=train%2Floss"
    wait_for(lambda: server.get(query).json()[-1][1] == 59, 20, "appended steps in TensorBoard via the proxy")

    def api_count() -> int | None:
        runs = {r["relpath"]: r for r in server.get("/api/endpoints/lora/runs").json()}
        return runs["alpaca/r32"]["event_count"] if runs["alpaca/r32"]["event_count"] == 61 else None

    wait_for(api_count, 20, "appended events in the hub index")
    shutil.rmtree(roots["lora"] / "dolly" / "doomed")
    wait_for(
        lambda: "dolly/doomed" not in {r["relpath"] for r in server.get("/api/endpoints/lora/runs").json()},
        20, "the deleted run to leave the hub",
    )


def test_killed_tensorboard_comes_back_while_hub_answers(server: Server) -> None:
    victim = server.tensorboard("router")
    failures: list[int] = []
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            if server.get("/healthz").status_code != 200:
                failures.append(1)
            time.sleep(0.1)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        victim.kill()
        wait_for(lambda: server.get("/api/endpoints/router").json()["restarts"] >= 1, 30, "a recorded restart")
        wait_for(lambda: server.get("/readyz").status_code == 200, 60, "router to be up again")
        assert server.tensorboard("router").pid != victim.pid
        assert server.get("/tb/router/data/runs").json() == ["moe/top2"]
    finally:
        stop.set()
        prober.join()
    assert failures == []


def _checksums(root: Path, skip: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p != skip
    }


@pytest.mark.skipif(shutil.which("inotifywait") is None, reason="inotify-tools is installed by .ci/run")
def test_read_only_with_live_writer_and_clean_sigterm(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    write_scalar_file(root / "ds" / "done", range(100))
    live = write_scalar_file(root / "ds" / "live", range(10))
    write_scalar_file(tmp_path / "logs2" / "ds" / "other", range(5))
    before = _checksums(root, skip=live)
    watch_log = tmp_path / "inotify.log"
    watcher = subprocess.Popen(
        ["inotifywait", "-m", "-r", "-q", "--format", "%e %w%f", "-e", "modify,attrib,close_write,moved_to,"
         "moved_from,move_self,create,delete,delete_self", str(root), "-o", str(watch_log)],
    )
    stop = threading.Event()

    def writer() -> None:
        step = 10
        while not stop.is_set():
            write_events(live, [scalar_event(step, 0.5)], append=True)
            step += 1
            time.sleep(0.2)

    thread = threading.Thread(target=writer)
    try:
        time.sleep(1)  # let inotifywait set its watches
        thread.start()
        with serve(tmp_path / "srv", {"lora": root, "other": tmp_path / "logs2"}) as server:
            query = "/tb/lora/data/plugin/scalars/scalars?run=ds%2Flive&tag=loss"
            wait_for(lambda: server.get(query).json()[-1][1] > 20, 30, "live steps through the proxy")
            tree = server.tree()
            assert len(tree) >= 5  # hub + 2 TensorBoards + 2 data servers
            assert any("tensorboard_data_server" in " ".join(p.cmdline()) for p in tree[1:])
            started = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            assert server.proc.wait(12) == 0
            _gone, alive = psutil.wait_procs(tree, timeout=max(0.1, 10 - (time.monotonic() - started)))
            assert alive == [], f"left behind: {[p.cmdline() for p in alive]}"
            assert time.monotonic() - started < 10
    finally:
        stop.set()
        if thread.is_alive():
            thread.join()
        time.sleep(0.5)
        watcher.terminate()
        watcher.wait(5)
    events = [line.split(" ", 1) for line in watch_log.read_text().splitlines() if line.strip()]
    assert events, "the watcher saw nothing, not even the live writer"
    foreign = [(kind, path) for kind, path in events if path != str(live)]
    assert foreign == []
    assert _checksums(root, skip=live) == before


def test_port_in_use_names_the_port(tmp_path: Path, roots: dict[str, Path]) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = tmp_path / "tbhub.toml"
        config.write_text(f'[server]\nport = {free_port()}\n[endpoints.lora]\nlogdir = "{roots["lora"]}"\n'
                          f"port = {port}\n")
        result = subprocess.run([sys.executable, "-m", "tbhub", "serve", "--config", str(config)],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2
        assert f"port {port} for endpoint 'lora' is already in use" in result.stderr
        assert "Traceback" not in result.stderr
        hub_busy = subprocess.run(
            [sys.executable, "-m", "tbhub", "serve", "--logdir", f"lora={roots['lora']}", "--port", str(port)],
            capture_output=True, text=True, timeout=60,
        )
        assert hub_busy.returncode == 2 and f"port {port} for the hub is already in use" in hub_busy.stderr


def test_endpoint_name_with_slash_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "tbhub.toml"
    config.write_text('[endpoints."a/b"]\nlogdir = "/tmp"\n')
    result = subprocess.run([sys.executable, "-m", "tbhub", "serve", "--config", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "no slash" in result.stderr and "Traceback" not in result.stderr


def test_missing_root_shows_error_and_recovers(tmp_path: Path, roots: dict[str, Path]) -> None:
    late = tmp_path / "late-root"
    with serve(tmp_path / "srv", {"lora": roots["lora"], "late": late}, wait=False) as server:
        wait_for(lambda: server.get("/api/endpoints/lora").json()["state"] == "up", 60, "lora up")
        late_state = wait_for(lambda: server.get("/api/endpoints/late").json() if server.get(
            "/api/endpoints/late").json()["error"] else None, 30, "the missing root's error")
        assert late_state["state"] == "error" and "does not exist" in late_state["error"]
        assert server.get("/readyz").status_code == 503
        assert server.get("/tb/lora/data/runs").status_code == 200
        index = server.get("/")
        assert "does not exist" in index.text
        write_scalar_file(late / "ds" / "run", range(5))
        wait_for(lambda: server.get("/readyz").status_code == 200, 60, "the late root to be served")
        wait_for(lambda: server.get("/tb/late/data/runs").json() == ["ds/run"], 30, "late runs in TensorBoard")


def test_unreadable_event_file_does_not_break_serving(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    write_scalar_file(root / "ds" / "good", range(20))
    bad = write_scalar_file(root / "ds" / "garbage", range(20))
    bad.write_bytes(os.urandom(5000))
    with serve(tmp_path / "srv", {"lora": root}) as server:
        wait_for(lambda: server.get("/api/endpoints/lora").json()["runs"] == 2, 30, "the scan")
        runs = {r["relpath"]: r for r in server.get("/api/endpoints/lora/runs").json()}
        assert runs["ds/good"]["event_count"] == 21 and runs["ds/good"]["corrupt"] == []
        assert runs["ds/garbage"]["corrupt"] and runs["ds/garbage"]["event_count"] == 0
        assert "ds/good" in server.get("/tb/lora/data/runs").json()
        assert json.loads(server.get("/readyz").text)["status"] == "ready"
