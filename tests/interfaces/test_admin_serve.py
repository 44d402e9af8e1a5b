"""Admin and editor actions against a real ``tbhub serve`` with auth on: a clean from the hub that
archives and deletes real run folders and leaves the active one (over HTTP, and in real Chromium),
and an alert rule override that the server's own alert engine picks up."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import httpx
import pytest
from serving import accounts_of, serve, wait_for

from browser import chromium_page
from eventfiles import write_scalar_file

pytestmark = pytest.mark.slow


def age(path: Path, days: float) -> None:
    t = time.time() - days * 86400
    for p in [*path.rglob("*"), path]:
        os.utime(p, (t, t))


def logs(root: Path) -> Path:
    for name, days in {"chat/old": 40, "chat/older": 60, "chat/live": 0}.items():
        write_scalar_file(root / name, range(30))
        if days:
            age(root / name, days)
    return root


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found
    return found.group(1)


def test_clean_from_the_hub_archives_and_deletes_real_runs(tmp_path: Path) -> None:
    root = logs(tmp_path / "logs")
    cold = tmp_path / "cold"
    with serve(tmp_path / "srv", {"lora": root}, auth=None) as server:
        password, admin_token, editor_token = accounts_of(server)
        with httpx.Client(base_url=server.url, trust_env=False, timeout=60) as client:
            assert client.get("/endpoints/lora/clean").status_code == 401
            editor = {"authorization": f"Bearer {editor_token}"}
            refused = client.post("/api/endpoints/lora/clean", json={"runs": ["chat/old"]}, headers=editor)
            assert refused.status_code == 403

            client.get("/login")
            login = {"name": "ada", "password": password, "csrf": client.cookies["tbhub_csrf"]}
            assert client.post("/login", data=login).status_code == 303
            wait_for(lambda: "chat/live" in client.get("/endpoints/lora/clean").text, 30, "the first scan")
            csrf = csrf_of(client.get("/endpoints/lora/clean").text)
            choice = {"run": ["chat/old", "chat/older", "chat/live"], "mode": "archive", "archive_to": str(cold),
                      "csrf": csrf}
            preview = client.post("/endpoints/lora/clean/preview", data=choice)
            assert preview.status_code == 200 and "<strong>2 runs," in preview.text, server.output()[-4000:]
            assert "active: written to in the last 10 minutes" in preview.text
            plan = re.search(r'name="plan" value="(\w+)"', preview.text)
            assert plan is not None and all((root / "chat" / r).is_dir() for r in ("old", "older", "live"))
            done = client.post("/endpoints/lora/clean/execute", data={**choice, "plan": plan[1], "confirm": "yes"})
            assert done.status_code == 200 and "deleted 2, failed 0" in done.text, server.output()[-4000:]

            assert not (root / "chat" / "old").exists() and not (root / "chat" / "older").exists()
            assert (root / "chat" / "live").is_dir()
            assert sorted(p.name.split("--")[0] for p in cold.rglob("*.tar.*")) == ["old", "older"]
            history = client.get("/api/history", headers={"authorization": f"Bearer {admin_token}"}).json()
            assert sorted((h["relpath"], h["actor"], h["outcome"]) for h in history) == [
                ("chat/old", "ada (hub)", "deleted"), ("chat/older", "ada (hub)", "deleted")]
            runs = client.get("/api/endpoints/lora/runs").json()
            assert [r["relpath"] for r in runs] == ["chat/live"]


def test_an_alert_rule_override_reaches_the_servers_engine(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    write_scalar_file(root / "chat" / "live", range(30))
    age(root / "chat" / "live", 2 / 1440)  # two minutes without new events: running under the default 15m
    with serve(tmp_path / "srv", {"lora": root}, auth=None) as server:
        _, _, editor_token = accounts_of(server)
        editor = {"authorization": f"Bearer {editor_token}"}

        def status() -> str | None:
            runs = server.get("/api/endpoints/lora/runs", headers=editor).json()
            return runs[0]["status"] if runs else None

        assert wait_for(status, 60, "the first evaluation") == "running"
        put = httpx.put(server.url + "/api/endpoints/lora/alert-rules", json={"rule": {"stalled_after": "1m"}},
                        headers=editor, timeout=30, trust_env=False)
        assert put.status_code == 200
        wait_for(lambda: status() == "stalled", 60, "the engine to use the override")
        alerts = server.get("/api/alerts", headers=editor).json()  # running → stalled: a change, alerted once
        assert [(a["run"], a["status"]) for a in alerts] == [("live", "stalled")]
        removed = httpx.delete(server.url + "/api/endpoints/lora/alert-rules", headers=editor, timeout=30,
                               trust_env=False)
        assert removed.status_code == 200
        wait_for(lambda: status() == "running", 60, "the config's rule to apply again")


def test_admin_clean_in_chromium(tmp_path: Path) -> None:
    root = logs(tmp_path / "logs")
    with serve(tmp_path / "srv", {"lora": root}, auth=None) as server:
        password, _, _ = accounts_of(server)
        with chromium_page() as page:
            page.goto(server.url + "/login")
            page.fill("input[name=name]", "ada")
            page.fill("input[name=password]", password)
            page.click("button[type=submit]")
            page.wait_for_url(server.url + "/")
            page.goto(server.url + "/endpoints/lora")
            wait_for(lambda: page.reload() and page.locator('tr[data-run="chat/live"]').count() == 1, 30,
                     "the first scan")
            page.click("#clean-link")
            page.wait_for_url("**/endpoints/lora/clean")
            page.click("a[href='?select=old']")
            assert page.locator("#clean-runs input:checked").count() == 2  # the CLI's "old": the two aged runs
            page.check('input[value="chat/live"]')
            page.click("#clean-form button[type=submit]")
            page.wait_for_url("**/clean/preview")
            assert "2 runs" in page.locator("#clean-preview").inner_text()
            assert "active" in page.locator('#preview-skipped tr[data-run="chat/live"]').inner_text()
            assert (root / "chat" / "old").is_dir()
            page.click("#execute")  # the confirmation box is required: nothing happens without it
            assert page.url.endswith("/clean/preview") and (root / "chat" / "old").is_dir()
            page.check("#confirm")
            page.click("#execute")
            page.wait_for_url("**/clean/execute")
            assert "deleted 2, failed 0" in page.locator("#clean-done").inner_text()
            page.screenshot(path=str(tmp_path / "clean.png"), full_page=True)
        assert not (root / "chat" / "old").exists() and not (root / "chat" / "older").exists()
        assert (root / "chat" / "live").is_dir()
