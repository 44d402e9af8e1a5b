"""Runs explorer benchmark: the first page of an endpoint with 10,000 runs, and its views, in one command.

    python benchmarks/explorer.py [--runs N] [--repeat K] [--tree DIR]

Writes ``--runs`` real runs (default 10,000; one small event file each, ages spread over 90 days: the
test suite's ``tests/manyruns.py``, so the tests and this measure the same log root) unless ``--tree``
already holds them, scans them into a fresh state database, serves the hub in-process (real uvicorn on
loopback, the background scans on; no TensorBoard children) and measures:

(a) server time of ``GET /endpoints/big`` (the explorer's first page: 50 runs, newest first), median
    and p95 of ``--repeat`` requests, request sent to last byte read on loopback; and its HTML weight.
    The same for sorted, filtered, searched and last-page views, the all-endpoints view and the hub page.
(b) the first request after the index changed (the explorer's run rows are brought in step first).
(c) time until interactive in Chromium: navigation start to ``DOMContentLoaded`` handled (the deferred
    htmx and hub.js have run: sorting links, filters and selection work), median of 5 loads.
Baseline in the same run: ``GET /api/endpoints/big/runs``, every run of the endpoint in one answer, which
is what the hub's runs page rendered before the explorer (all rows, sorted in Python).

Targets (issue 17): first page < 150 ms server time and < 200 kB; interactive < 1 s. Ratios are
figure / target (below 1.00 meets it).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test suite's log-root writer

from manyruns import write_many_runs
from tbhub.app.explorer import sync_run_index
from tbhub.app.hub import Hub
from tbhub.app.services import Services
from tbhub.config import load_config
from tbhub.interfaces.web.app import create_app

SERVER_TARGET_MS = 150.0
WEIGHT_TARGET_KB = 200.0
INTERACTIVE_TARGET_MS = 1000.0
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def timed_get(client: httpx.Client, url: str, repeat: int) -> tuple[float, float, int]:
    """(median ms, p95 ms, bytes) of ``repeat`` GETs of ``url``."""
    times, size = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        answer = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        answer.raise_for_status()
        size = len(answer.content)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.95))], size


def interactive_ms(url: str, loads: int = 5) -> float | None:
    """Median time from navigation start to DOMContentLoaded handled, in Chromium; ``None`` without it."""
    if not Path(CHROMIUM).exists():
        return None
    from playwright.sync_api import sync_playwright

    figures = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for _ in range(loads):
                page = browser.new_page(viewport={"width": 1440, "height": 900})
                page.goto(url, wait_until="load")
                figures.append(page.evaluate(
                    "performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd"))
                assert page.locator("#runs tbody tr").count() > 0
                page.close()
        finally:
            browser.close()
    return statistics.median(figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10_000, metavar="N", help="runs in the log root (default 10000)")
    parser.add_argument("--repeat", type=int, default=30, metavar="K", help="requests per view (default 30)")
    parser.add_argument("--tree", type=Path, metavar="DIR", help="reuse (or write once) the log root here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tbhub-explorer-"))
    root = args.tree or work / "big"
    try:
        if not (root.exists() and any(root.iterdir())):
            started = time.perf_counter()
            write_many_runs(root, args.runs)
            print(f"wrote {args.runs:,} runs in {time.perf_counter() - started:.1f} s under {root}")
        config = work / "tbhub.toml"
        config.write_text(f'[state]\ndir = "{work / "state"}"\n[auth]\nmode = "none"\n'
                          f'[endpoints.big]\nlogdir = "{root}"\n')
        with Services(load_config(config)) as services:
            hub = Hub(services, None)
            started = time.perf_counter()
            record = hub.refresh("big")
            print(f"first scan: {record.files:,} event files in {time.perf_counter() - started:.1f} s "
                  "(the run rows written with it)")
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
            app = create_app(hub, scan_interval=3600, job_interval=3600, alerts=False)
            server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
            thread = threading.Thread(target=server.run, daemon=True)
            thread.start()
            while not server.started:
                time.sleep(0.05)
            base = f"http://127.0.0.1:{port}"
            try:
                with httpx.Client(base_url=base, timeout=60, trust_env=False) as client:
                    client.get("/endpoints/big")  # warm: templates compiled, connection pool
                    time.sleep(1.0)  # the background's first pass (a rescan of an unchanged tree) is over
                    views = [
                        ("explorer first page (newest first)", "/endpoints/big"),
                        ("sorted by run name", "/endpoints/big?sort=run"),
                        ("sorted by size, page 100", "/endpoints/big?sort=-size&page=100"),
                        ("filter dataset + age", "/endpoints/big?dataset=alpaca&newer=30d"),
                        ("free-text search", "/endpoints/big?text=r0123"),
                        ("last page, 200 per page", "/endpoints/big?per=200&page=50"),
                        ("all endpoints (/runs)", "/runs"),
                        ("hub page with summary cards", "/"),
                        ("live refresh (htmx partial)", "/endpoints/big"),
                        ("baseline: every run (/api/endpoints/big/runs)", "/api/endpoints/big/runs"),
                    ]
                    print(f"\n{'view':<48} {'median':>9} {'p95':>9} {'size':>10}")
                    results = {}
                    for label, url in views:
                        headers = {"HX-Request": "true"} if label.startswith("live") else {}
                        client.headers.update(headers)
                        med, p95, size = timed_get(client, url, args.repeat)
                        for key in headers:
                            del client.headers[key]
                        results[label] = (med, p95, size)
                        print(f"{label:<48} {med:>7.1f}ms {p95:>7.1f}ms {size / 1000:>8.1f}kB")

                    # (b) a job wrote to one run: the background rescan (not a request) brings the rows in step.
                    first = sorted(root.rglob("events.out.tfevents.*"))[0]
                    with first.open("ab") as out:
                        out.write(first.read_bytes())  # whole records again: the run grew
                    started = time.perf_counter()
                    hub.refresh("big")
                    rescan = (time.perf_counter() - started) * 1000
                    started = time.perf_counter()
                    client.get("/endpoints/big").raise_for_status()
                    after_change = (time.perf_counter() - started) * 1000
                    print(f"\none run grew: background rescan + run-row sync {rescan:.0f} ms; the next first page "
                          f"{after_change:.1f} ms; rows left to sync on a request: {sync_run_index(services)}")

                tti = interactive_ms(base + "/endpoints/big")
            finally:
                server.should_exit = True
                thread.join(30)

        med, p95, size = results["explorer first page (newest first)"]
        base_med, _, base_size = results["baseline: every run (/api/endpoints/big/runs)"]
        print("\nagainst the targets (ratio = figure / target; below 1.00 meets it):")
        print(f"  first page server time  {med:7.1f} ms (p95 {p95:.1f})  target < {SERVER_TARGET_MS:.0f} ms"
              f"  ratio {med / SERVER_TARGET_MS:.2f}")
        print(f"  first page HTML weight  {size / 1000:7.1f} kB            target < {WEIGHT_TARGET_KB:.0f} kB"
              f"  ratio {size / 1000 / WEIGHT_TARGET_KB:.2f}")
        if tti is None:
            print("  time until interactive  (no Chromium here)")
        else:
            print(f"  time until interactive  {tti:7.1f} ms            target < {INTERACTIVE_TARGET_MS:.0f} ms"
                  f"  ratio {tti / INTERACTIVE_TARGET_MS:.2f}")
        print(f"  baseline (every run in one answer): {base_med:.1f} ms, {base_size / 1e6:.1f} MB; "
              f"the first page is {base_med / med:.1f}x faster and {base_size / size:.0f}x lighter")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
