"""``/metrics``: a real ``tbhub serve`` scraped the way Prometheus does, and the alert counters in process.

Every expected value comes from somewhere else than the metrics code: the hub's JSON API, the state
database's own listings, or the requests the test made.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from serving import Server, serve, wait_for

from eventfiles import write_scalar_file, write_tf2_run
from tbhub.adapters.db.accounts import AccountStore
from tbhub.adapters.db.store import StateStore, open_state
from tbhub.app.alerts import alert_history
from tbhub.app.hub import Hub
from tbhub.app.services import Services
from tbhub.config import AuthConfig, Config, EndpointConfig, NotifyConfig, StateConfig
from tbhub.core.accounts import Role
from tbhub.interfaces.web.app import create_app

Labels = tuple[tuple[str, str], ...]


def parse(text: str) -> dict[str, dict[Labels, float]]:
    """Sample name → labels → value, as Prometheus' own parser (prometheus_client's) reads the text."""
    out: dict[str, dict[Labels, float]] = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name][tuple(sorted(sample.labels.items()))] = sample.value
    return out


def by(series: dict[Labels, float], *keys: str) -> dict[tuple[str, ...], float]:
    """The series keyed by the values of ``keys`` (other labels must not vary)."""
    return {tuple(dict(labels)[k] for k in keys): value for labels, value in series.items()}


# -- a real server, scraped with a viewer API token ------------------------------------------------------
@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("logs")
    lora, router = base / "lora", base / "router"
    write_scalar_file(lora / "alpaca" / "r16", range(120), ("train/loss", "train/lr"))
    write_scalar_file(lora / "alpaca" / "r32", range(40), ("train/loss",))
    write_tf2_run(lora / "dolly" / "keras")
    write_scalar_file(router / "moe" / "top2", range(75), ("loss", "aux_loss"))
    return {"lora": lora, "router": router}


@pytest.fixture(scope="module")
def server(roots: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # One scan at start-up and none after it during the test: the index, the last scan and the API agree.
    with serve(tmp_path_factory.mktemp("serve"), roots, scan_interval=3600, auth="password") as running:
        yield running


@pytest.fixture(scope="module")
def token(server: Server) -> str:
    state = open_state(f"sqlite:///{server.config.parent / 'state' / 'tbhub.db'}")
    try:
        secret, _ = AccountStore(state.engine).create_token("prometheus", Role.VIEWER, "test")
    finally:
        state.dispose()
    return secret


def _get(server: Server, token: str, path: str, **headers: str) -> httpx.Response:
    return server.get(path, headers={"authorization": f"Bearer {token}", **headers})


def _scrape(server: Server, token: str) -> dict[str, dict[Labels, float]]:
    response = _get(server, token, "/metrics")
    assert response.status_code == 200, response.text
    return parse(response.text)


def _endpoints(server: Server, token: str) -> dict[str, dict[str, object]]:
    def scanned() -> dict[str, dict[str, object]] | None:
        endpoints = {e["name"]: e for e in _get(server, token, "/api/endpoints").json()}
        return endpoints if all(e["last_scan"] for e in endpoints.values()) else None

    return wait_for(scanned, 60, "the first scan of every endpoint")


@pytest.mark.slow
def test_metrics_need_a_viewer_token(server: Server, token: str) -> None:
    anonymous = server.get("/metrics")
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    assert server.get("/metrics", headers={"authorization": "Bearer not-a-token"}).status_code == 401
    response = _get(server, token, "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    # A scraper that asks for OpenMetrics gets it (the format ends with an EOF marker).
    open_metrics = _get(server, token, "/metrics", accept="application/openmetrics-text; version=1.0.0")
    assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
    assert open_metrics.text.rstrip().endswith("# EOF")


@pytest.mark.slow
def test_runs_bytes_and_events_equal_the_api(server: Server, token: str) -> None:
    endpoints = _endpoints(server, token)
    metrics = _scrape(server, token)
    runs, size, events = (by(metrics[n], "endpoint", "dataset") for n in ("tbhub_runs", "tbhub_log_bytes",
                                                                          "tbhub_events"))
    for name, endpoint in endpoints.items():
        assert endpoint["runs"], f"{name} has runs"
        assert sum(v for (e, _), v in runs.items() if e == name) == endpoint["runs"]
        assert sum(v for (e, _), v in size.items() if e == name) == endpoint["size_bytes"]
        assert sum(v for (e, _), v in events.items() if e == name) == endpoint["event_count"]
        # And per dataset, from the runs listing.
        listing = _get(server, token, f"/api/endpoints/{name}/runs").json()
        expected_runs = Counter(r["dataset"] for r in listing)
        expected_bytes: dict[str, int] = defaultdict(int)
        for r in listing:
            expected_bytes[r["dataset"]] += r["size_bytes"]
        assert {d: v for (e, d), v in runs.items() if e == name} == dict(expected_runs)
        assert {d: v for (e, d), v in size.items() if e == name} == dict(expected_bytes)
    assert metrics["tbhub_build_info"]
    # One server: it leads, under the replica name /healthz reports.
    health = server.get("/healthz").json()
    assert by(metrics["tbhub_leader"], "replica") == {(health["replica"],): 1.0 if health["leader"] else 0.0}
    assert health["leader"]


@pytest.mark.slow
def test_scan_metrics_equal_the_last_scan(server: Server, token: str) -> None:
    endpoints = _endpoints(server, token)
    metrics = _scrape(server, token)
    for name, endpoint in endpoints.items():
        scan = endpoint["last_scan"]
        assert isinstance(scan, dict)
        assert round(by(metrics["tbhub_scan_duration_seconds"], "endpoint")[(name,)], 4) == scan["duration_s"]
        assert by(metrics["tbhub_scan_finished_timestamp_seconds"], "endpoint")[(name,)] == scan["finished_at"]
        assert by(metrics["tbhub_scan_files"], "endpoint")[(name,)] == scan["files"]
        assert by(metrics["tbhub_scan_files_read"], "endpoint")[(name,)] == scan["files_read"]
        assert by(metrics["tbhub_scan_failed"], "endpoint")[(name,)] == (1 if scan["error"] else 0)


@pytest.mark.slow
def test_requests_are_counted_by_route_template(server: Server, token: str) -> None:
    def count(metrics: dict[str, dict[Labels, float]], handler: str, status: str) -> float:
        key = (("handler", handler), ("method", "GET"), ("status", status))
        return metrics["tbhub_http_requests_total"].get(key, 0.0)

    before = _scrape(server, token)
    for name in ("lora", "router", "lora"):
        assert _get(server, token, f"/api/endpoints/{name}").status_code == 200
    assert server.get("/api/endpoints/lora").status_code == 401  # refused before routing: still counted
    assert _get(server, token, "/no/such/page").status_code == 404
    after = _scrape(server, token)
    assert count(after, "/api/endpoints/{name}", "200") - count(before, "/api/endpoints/{name}", "200") == 3
    assert count(after, "/api/endpoints/{name}", "401") - count(before, "/api/endpoints/{name}", "401") == 1
    assert count(after, "unmatched", "404") - count(before, "unmatched", "404") == 1
    assert not any("/lora" in dict(labels)["handler"] for labels in after["tbhub_http_requests_total"])
    # The latency histogram saw the same requests.
    hist = ("handler", "/api/endpoints/{name}"), ("method", "GET")
    assert after["tbhub_http_request_duration_seconds_count"][hist] == (
        count(after, "/api/endpoints/{name}", "200") + count(after, "/api/endpoints/{name}", "401")
    )


@pytest.mark.slow
def test_a_killed_tensorboard_counts_a_restart(server: Server, token: str) -> None:
    def restarts() -> float:
        return by(_scrape(server, token)["tbhub_tensorboard_restarts_total"], "endpoint")[("lora",)]

    wait_for(lambda: server.get("/readyz").status_code == 200, 60, "every TensorBoard up")
    metrics = _scrape(server, token)
    assert by(metrics["tbhub_tensorboard_up"], "endpoint") == {("lora",): 1.0, ("router",): 1.0}
    assert by(metrics["tbhub_tensorboard_state"], "endpoint", "state")[("lora", "up")] == 1.0
    assert by(metrics["tbhub_tensorboard_resident_memory_bytes"], "endpoint")[("lora",)] > 0
    before = restarts()
    assert before == _get(server, token, "/api/endpoints/lora").json()["restarts"]

    server.tensorboard("lora").kill()
    wait_for(lambda: restarts() == before + 1, 30, "the restart counter to go up")
    assert _get(server, token, "/api/endpoints/lora").json()["restarts"] == before + 1
    wait_for(lambda: by(_scrape(server, token)["tbhub_tensorboard_up"], "endpoint")[("lora",)] == 1.0, 60,
             "lora to be up again")
    assert by(_scrape(server, token)["tbhub_tensorboard_restarts_total"], "endpoint")[("router",)] == 0


# -- alerts and deliveries from the state database, in process -------------------------------------------
def _hub(tmp_path: Path, state: StateStore) -> Hub:
    root = tmp_path / "logs"
    write_scalar_file(root / "alpaca" / "r1", range(20))
    config = Config(
        state=StateConfig(dir=tmp_path / "state"),
        endpoints={"lora": EndpointConfig(logdir=str(root)), "router": EndpointConfig(logdir=str(root))},
        notify=[NotifyConfig(type="webhook", name="ops", url="http://127.0.0.1:9/hook"),
                NotifyConfig(type="slack", name="team", url="http://127.0.0.1:9/slack")],
        auth=AuthConfig(mode="none"),
    )
    return Hub(Services(config, state=state), None)


def _scrape_app(hub: Hub) -> tuple[dict[str, dict[Labels, float]], dict[str, dict[Labels, float]]]:
    """Two scrapes of one app, one of a second app built from the same hub, both in process."""

    async def run() -> tuple[str, str]:
        first, second = create_app(hub, alerts=False), create_app(hub, alerts=False)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=first), base_url="http://hub") as a:
            await a.get("/metrics")
            text = (await a.get("/metrics")).text
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url="http://hub") as b:
            other = (await b.get("/metrics")).text
        return text, other

    text, other = asyncio.run(run())
    return parse(text), parse(other)


def test_alerts_and_deliveries_are_counted_from_the_state_database(tmp_path: Path, state: StateStore) -> None:
    hub = _hub(tmp_path, state)
    hub.refresh("lora")
    recorded = [("lora", "stalled"), ("lora", "stalled"), ("lora", "diverged"), ("router", "finished")]
    ids = []
    for i, (endpoint, status) in enumerate(recorded):
        alert_id = state.insert_alert(key=f"k{i}", endpoint=endpoint, dataset="alpaca", run=f"r{i}", status=status,
                                      at=1_700_000_000.0 + i, message="m", details="{}", url=None)
        assert alert_id is not None
        ids.append(alert_id)
    for alert_id in ids:
        state.record_delivery(alert_id, "ops", 1, "retry", "HTTP 500", next_at=0.0)
        state.record_delivery(alert_id, "ops", 2, "sent")
    state.record_delivery(ids[0], "team", 1, "failed", "HTTP 404")
    state.set_channel("team", disabled=True, reason="HTTP 404")

    metrics, _ = _scrape_app(hub)

    expected_alerts = Counter((a["endpoint"], a["status"]) for a in alert_history(state, limit=1000))
    assert by(metrics["tbhub_alerts_total"], "endpoint", "status") == dict(expected_alerts)
    expected_deliveries = Counter((d["channel"], d["outcome"]) for d in state.deliveries())
    assert by(metrics["tbhub_alert_deliveries_total"], "channel", "outcome") == dict(expected_deliveries)
    assert by(metrics["tbhub_notify_channel_disabled"], "channel") == {("ops",): 0.0, ("team",): 1.0}
    # No supervisor in process: no TensorBoard series, rather than made-up ones.
    assert "tbhub_tensorboard_up" not in metrics
    # An endpoint never scanned has no scan series; the scanned one has.
    assert set(by(metrics["tbhub_scan_files"], "endpoint")) == {("lora",)}


def test_each_app_counts_its_own_requests(tmp_path: Path, state: StateStore) -> None:
    first, second = _scrape_app(_hub(tmp_path, state))
    scraped = (("handler", "/metrics"), ("method", "GET"), ("status", "200"))
    assert first["tbhub_http_requests_total"][scraped] == 1  # the first scrape, seen by the second
    assert scraped not in second.get("tbhub_http_requests_total", {})  # a new app starts from zero
