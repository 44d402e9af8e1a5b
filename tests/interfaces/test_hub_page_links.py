"""The hub page links a TensorBoard's own port only when that TensorBoard listens beyond loopback
(``expose = true``); otherwise the link would point at 127.0.0.1 of whoever clicks it."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from tbhub.app.hub import Hub
from tbhub.app.services import Services
from tbhub.config import load_config
from tbhub.interfaces.web.app import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's TestClient asks for httpx2 once, at import
    from starlette.testclient import TestClient


def test_direct_port_link_only_for_exposed_endpoints(tmp_path: Path) -> None:
    for name in ("open", "local"):
        (tmp_path / name).mkdir()
    config = tmp_path / "tbhub.toml"
    config.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n[auth]\nmode = "none"\n'
                      f'[endpoints.open]\nlogdir = "{tmp_path / "open"}"\nport = 16006\nexpose = true\n'
                      f'[endpoints.local]\nlogdir = "{tmp_path / "local"}"\nport = 16007\n')
    with Services(load_config(config)) as services:
        app = create_app(Hub(services, None), scan_interval=3600, job_interval=3600, alerts=False)
        with TestClient(app) as client:
            for path in ("/", "/endpoints/open", "/endpoints/local"):
                page = client.get(path).text
                assert ("direct :16006" in page) == (path in ("/", "/endpoints/open")), path
                assert "16007" not in page, path
                assert not re.search(r'href="http://127\.0\.0\.1:16007', page)
