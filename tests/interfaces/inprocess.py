"""The hub app served by a real uvicorn in a thread of the test process (no TensorBoard children), and
what every page test checks in Chromium: console errors, failed requests, axe-core's serious findings."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from ports import free_port
from tbhub.app.hub import Hub
from tbhub.app.services import Services
from tbhub.config import load_config
from tbhub.interfaces.web.app import create_app

__all__ = ["PageWatch", "Served", "axe_serious", "serve_inprocess"]


@dataclass
class Served:
    url: str
    services: Services
    hub: Hub


@contextlib.contextmanager
def serve_inprocess(config_text: str, tmp: Path, *, scan_interval: float = 2.0) -> Iterator[Served]:
    """``tbhub``'s web app on a free loopback port: the real background scans, no supervisor."""
    config = tmp / "tbhub.toml"
    config.write_text(config_text)
    port = free_port()
    with Services(load_config(config)) as services:
        hub = Hub(services, None)
        for name in hub.specs:
            hub.refresh(name)
        app = create_app(hub, scan_interval=scan_interval, job_interval=3600, alerts=False)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, name="hub", daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise AssertionError("the in-process hub did not start")
            time.sleep(0.05)
        try:
            yield Served(f"http://127.0.0.1:{port}", services, hub)
        finally:
            server.should_exit = True
            thread.join(30)


@dataclass
class PageWatch:
    """Console errors and failed requests of a Playwright page, from the moment it is watched."""

    errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @classmethod
    def on(cls, page: Any) -> PageWatch:
        watch = cls()
        page.on("console", lambda m: watch.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: watch.errors.append(str(e)))
        # ERR_ABORTED: the page navigated away while the request was in flight (a form's redirect
        # cancels the favicon's load); not a failure of the hub. 4xx and 5xx answers are caught below.
        page.on("requestfailed", lambda r: watch.failed.append(f"{r.url} {r.failure}")
                if "ERR_ABORTED" not in str(r.failure) else None)
        page.on("response", lambda r: watch.failed.append(f"{r.url} {r.status}") if r.status >= 400 else None)
        return watch

    def clean(self) -> bool:
        return not self.errors and not self.failed


def axe_serious(page: Any) -> list[str]:
    """axe-core's serious and critical violations on the page (rule id, impact, first target)."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    out = []
    for v in results.response["violations"]:
        if v.get("impact") in ("serious", "critical"):
            targets = [n["target"] for n in v.get("nodes", [])[:3]]
            out.append(f"{v['id']} ({v['impact']}): {v['help']} at {targets}")
    return out
