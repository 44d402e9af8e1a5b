"""``/metrics``: the hub in Prometheus text format, read at scrape time.

Nothing is counted in module-level state: each app gets its own ``CollectorRegistry`` holding

- ``HubCollector``, which reads current values when Prometheus scrapes: the index (runs, bytes,
  events per endpoint and dataset), the last scan of each endpoint, each TensorBoard child (state,
  restarts, memory), and the alerts and delivery attempts recorded in the state database;
- the hub's HTTP request counter and latency histogram, fed by ``RequestMetrics`` (an ASGI
  middleware), labelled by route template so the number of series stays bounded;
- the hub process's own CPU, memory and file descriptors (prometheus_client's ``ProcessCollector``);
- with replicas, whether this one is the leader.

Counters taken from the database (alerts, deliveries) count rows that are never deleted, so they
only grow. ``tbhub_tensorboard_restarts_total`` is counted by this process's supervisor and starts
at zero when the hub restarts, which Prometheus' ``rate()`` and ``increase()`` handle as a reset.

The route needs the viewer role: Prometheus scrapes with ``Authorization: Bearer TOKEN`` (an API
token from ``tbhub tokens create NAME``, or ``/admin``).
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator

import psutil
from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tbhub import __version__
from tbhub.app.hub import ChildState, Hub, Leadership
from tbhub.core.accounts import Role
from tbhub.interfaces.web.auth import RoleTable

__all__ = ["HubCollector", "RequestMetrics", "add_metrics"]

#: Latency buckets (seconds) for hub requests: pages and API calls take milliseconds, TensorBoard data
#: through the proxy up to seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: The ``handler`` label of a request that matched no route (a 404): one series, not one per path.
UNMATCHED = "unmatched"


class HubCollector:
    """Reads the hub's current state into metric families each time the registry is collected."""

    def __init__(self, hub: Hub, leadership: Leadership | None = None) -> None:
        self.hub = hub
        self.leadership = leadership

    def describe(self) -> Iterable[Metric]:
        # Nothing: registering must not query the database (prometheus_client calls describe() then).
        return []

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("tbhub_build_info", "The running tbhub version (always 1).", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        if self.leadership is not None:
            leader = GaugeMetricFamily(
                "tbhub_leader", "1 when this replica runs the background jobs (scans, alerts, retention).",
                labels=["replica"],
            )
            leader.add_metric([self.leadership.holder], 1 if self.leadership.is_leader else 0)
            yield leader
        yield from self._index()
        yield from self._scans()
        yield from self._tensorboards()
        yield from self._alerts()

    def _index(self) -> Iterator[Metric]:
        labels = ["endpoint", "dataset"]
        runs = GaugeMetricFamily("tbhub_runs", "Runs in the index.", labels=labels)
        size = GaugeMetricFamily("tbhub_log_bytes", "Bytes of event files in the index.", labels=labels)
        events = GaugeMetricFamily("tbhub_events", "Event records in the index.", labels=labels)
        files = GaugeMetricFamily("tbhub_event_files", "Event files in the index.", labels=labels)
        newest = GaugeMetricFamily(
            "tbhub_newest_event_file_timestamp_seconds",
            "Modification time of the newest event file of each endpoint (Unix seconds).",
            labels=["endpoint"],
        )
        status = GaugeMetricFamily(
            "tbhub_runs_by_status",
            "Runs by their last evaluated status (running, stalled, finished, diverged).",
            labels=["endpoint", "status"],
        )
        for name in self.hub.specs:
            per_dataset: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
            newest_ns = 0
            for run in self.hub.runs(name):
                sums = per_dataset[run.dataset]
                sums[0] += 1
                sums[1] += run.size_bytes
                sums[2] += run.event_count
                sums[3] += run.event_files
                newest_ns = max(newest_ns, run.last_modified_ns)
            for dataset, (n, nbytes, nevents, nfiles) in sorted(per_dataset.items()):
                runs.add_metric([name, dataset], n)
                size.add_metric([name, dataset], nbytes)
                events.add_metric([name, dataset], nevents)
                files.add_metric([name, dataset], nfiles)
            if newest_ns:
                newest.add_metric([name], newest_ns / 1e9)
            counts: dict[str, int] = defaultdict(int)
            for state, _reason in self.hub.state.load_run_states(name).values():
                counts[state] += 1
            for state, n in sorted(counts.items()):
                status.add_metric([name, state], n)
        yield from (runs, size, events, files, newest, status)

    def _scans(self) -> Iterator[Metric]:
        labels = ["endpoint"]
        duration = GaugeMetricFamily(
            "tbhub_scan_duration_seconds", "How long the last scan of the log root took.", labels=labels
        )
        finished = GaugeMetricFamily(
            "tbhub_scan_finished_timestamp_seconds", "When the last scan ended (Unix seconds).", labels=labels
        )
        files = GaugeMetricFamily("tbhub_scan_files", "Event files the last scan found.", labels=labels)
        read = GaugeMetricFamily(
            "tbhub_scan_files_read", "Event files the last scan had to read (new or grown).", labels=labels
        )
        bytes_read = GaugeMetricFamily("tbhub_scan_read_bytes", "Bytes the last scan read.", labels=labels)
        failed = GaugeMetricFamily(
            "tbhub_scan_failed", "1 when the last scan failed (log root missing or unreadable).", labels=labels
        )
        for name in self.hub.specs:
            record = self.hub.state.last_scan(name)
            if record is None:
                continue
            duration.add_metric([name], record.duration_s)
            finished.add_metric([name], record.finished_at)
            files.add_metric([name], record.files)
            read.add_metric([name], record.files_read)
            bytes_read.add_metric([name], record.bytes_read)
            failed.add_metric([name], 1 if record.error else 0)
        yield from (duration, finished, files, read, bytes_read, failed)

    def _tensorboards(self) -> Iterator[Metric]:
        if self.hub.supervisor is None:
            return
        labels = ["endpoint"]
        state = GaugeMetricFamily(
            "tbhub_tensorboard_state",
            "1 for the state each endpoint's TensorBoard is in, 0 for the others.",
            labels=["endpoint", "state"],
        )
        up = GaugeMetricFamily("tbhub_tensorboard_up", "1 when the TensorBoard answers health checks.", labels=labels)
        restarts = CounterMetricFamily(
            "tbhub_tensorboard_restarts",
            "TensorBoard restarts by this hub process (it exited, hung, or was asked to).",
            labels=labels,
        )
        started = GaugeMetricFamily(
            "tbhub_tensorboard_start_time_seconds", "When the running TensorBoard was launched.", labels=labels
        )
        memory = GaugeMetricFamily(
            "tbhub_tensorboard_resident_memory_bytes",
            "Resident memory of the TensorBoard and its data server.",
            labels=labels,
        )
        for child in self.hub.supervisor.status():
            for candidate in ChildState:
                state.add_metric([child.name, str(candidate)], 1 if child.state is candidate else 0)
            up.add_metric([child.name], 1 if child.state is ChildState.UP else 0)
            restarts.add_metric([child.name], child.restarts)
            if child.started_at is not None:
                started.add_metric([child.name], child.started_at)
            rss = _tree_rss(child.pid)
            if rss is not None:
                memory.add_metric([child.name], rss)
        yield from (state, up, restarts, started, memory)

    def _alerts(self) -> Iterator[Metric]:
        alerts = CounterMetricFamily(
            "tbhub_alerts", "Alerts recorded (one per change of a run's status).", labels=["endpoint", "status"]
        )
        for (endpoint, status), n in sorted(self.hub.state.alert_counts().items()):
            alerts.add_metric([endpoint, status], n)
        deliveries = CounterMetricFamily(
            "tbhub_alert_deliveries",
            "Attempts to deliver an alert to a channel, by outcome (sent, retry, failed, expired).",
            labels=["channel", "outcome"],
        )
        for (channel, outcome), n in sorted(self.hub.state.delivery_counts().items()):
            deliveries.add_metric([channel, outcome], n)
        disabled = GaugeMetricFamily(
            "tbhub_notify_channel_disabled",
            "1 when a permanent failure (404, 410, refused credentials) disabled the channel.",
            labels=["channel"],
        )
        states = self.hub.state.channel_states()
        for name in self.hub.config.channel_names():
            disabled.add_metric([name], 1 if states.get(name, (False, None))[0] else 0)
        yield from (alerts, deliveries, disabled)


def _tree_rss(pid: int | None) -> int | None:
    """Resident bytes of ``pid`` and its descendants (TensorBoard's data server); ``None`` if gone."""
    if pid is None:
        return None
    try:
        parent = psutil.Process(pid)
        total = parent.memory_info().rss
        for process in parent.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += process.memory_info().rss
        return int(total)
    except psutil.Error:
        return None


class RequestMetrics:
    """ASGI middleware: counts hub requests and observes their latency, by method, route and status.

    The ``handler`` label is the route's template (``/api/endpoints/{name}``), never the raw path.
    Outermost, so refusals by the auth middleware (401, 403) are counted too.
    """

    def __init__(self, app: ASGIApp, *, routes: list[BaseRoute], requests: Counter, latency: Histogram) -> None:
        self.app = app
        self.routes = routes
        self.requests = requests
        self.latency = latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception before the response started

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            handler = self._handler(scope)
            method = scope["method"]
            self.requests.labels(method, handler, str(status)).inc()
            self.latency.labels(method, handler).observe(time.perf_counter() - started)

    def _handler(self, scope: Scope) -> str:
        # The router leaves the matched route in the scope; a request refused before routing (401)
        # is matched here the way the router would have matched it.
        route = scope.get("route")
        if route is None:
            for candidate in self.routes:
                match, _ = candidate.matches(scope)
                if match is Match.FULL:
                    route = candidate
                    break
        path = getattr(route, "path", None)
        return path if isinstance(path, str) and path else UNMATCHED


def add_metrics(
    app: FastAPI, hub: Hub, access: RoleTable, leadership: Leadership | None = None
) -> CollectorRegistry:
    """Add ``GET /metrics`` (viewer role) and the request middleware; returns the app's registry."""
    registry = CollectorRegistry()
    registry.register(HubCollector(hub, leadership))
    ProcessCollector(registry=registry)
    requests = Counter(
        "tbhub_http_requests",
        "HTTP requests the hub answered, by method, route template and status.",
        ["method", "handler", "status"],
        registry=registry,
    )
    latency = Histogram(
        "tbhub_http_request_duration_seconds",
        "Time from request to the end of the response body, by method and route template.",
        ["method", "handler"],
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    app.add_middleware(RequestMetrics, routes=app.router.routes, requests=requests, latency=latency)

    @app.get("/metrics", tags=["health"], response_class=Response)
    @access(Role.VIEWER)
    def metrics(request: Request) -> Response:
        """Prometheus metrics: runs, bytes and events per endpoint and dataset, scans, TensorBoards,
        alerts and deliveries, hub requests. OpenMetrics when the scraper asks for it."""
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(registry), media_type=content_type)

    return registry
