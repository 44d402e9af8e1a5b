"""``serve`` applies retention on its schedule, shows it, and draws usage; checked over HTTP and in Chromium."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from serving import serve, wait_for

from browser import chromium_page
from eventfiles import write_scalar_file

pytestmark = pytest.mark.slow


def age(path: Path, days: float) -> None:
    t = time.time() - days * 86400
    for p in [*path.rglob("*"), path]:
        os.utime(p, (t, t))


def test_scheduled_retention_and_usage(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    for name, days in {"chat/old": 45, "chat/older": 60, "chat/new": 2, "claims/keep": 100}.items():
        write_scalar_file(root / name, range(40))
        age(root / name, days)
    extra = (
        '[retention]\nevery = "3s"\n[retention.lora]\nkeep_days = 30\n'
        f'archive_to = "{tmp_path / "cold"}"\n[retention.lora.datasets."claims"]\nkeep_days = 365\n'
        '[cost]\nstorage_per_gb_month = 100.0\ncurrency = "EUR"\n'
    )
    with serve(tmp_path / "srv", {"lora": root}, extra_config=extra, extra_args=("--job-interval", "1")) as server:
        wait_for(
            lambda: not (root / "chat" / "old").exists() and not (root / "chat" / "older").exists(),
            60,
            "the scheduled retention to remove the old runs",
        )
        assert (root / "chat" / "new").is_dir() and (root / "claims" / "keep").is_dir()
        status = wait_for(
            lambda: server.get("/api/retention").json() if server.get("/api/retention").json()["last"] else None,
            30,
            "the application to be recorded",
        )
        assert status["schedule"] == "every 3s" and status["next_at"] is not None
        removed = {r["relpath"] for r in status["last"]["runs"]}
        assert removed <= {"chat/old", "chat/older"} and status["last"]["trigger"] == "schedule"
        page = server.get("/").text
        assert 'id="retention-last"' in page and "removed" in page

        def usage_after_removal() -> dict[str, dict[str, object]] | None:
            rows = {u["dataset"]: u for u in server.get("/api/usage").json()}
            return rows if set(rows) == {"chat", "claims"} and rows["chat"]["runs"] == 1 else None

        wait_for(usage_after_removal, 30, "the index to drop the removed runs")
        sizes = {p.parent.name: p.stat().st_size for p in root.rglob("events.out.tfevents.*")}
        by_dataset = {u["dataset"]: u for u in server.get("/api/usage").json()}
        assert by_dataset["claims"]["size_bytes"] == sizes["keep"] and by_dataset["claims"]["currency"] == "EUR"
        assert by_dataset["chat"]["runs"] == 1
        history = wait_for(
            lambda: (
                server.get("/api/usage/history").json() if server.get("/api/usage/history").json()["times"] else None
            ),
            30,
            "a usage snapshot",
        )
        assert history["series"]

        with chromium_page() as page_:
            page_.goto(server.url + "/usage")
            page_.locator("#usage-chart .uplot canvas").wait_for(timeout=30_000)
            assert "lora/chat" in page_.locator("#usage-chart .u-legend").inner_text()
            assert page_.locator("#usage tbody tr").count() == 2
            page_.screenshot(path=str(tmp_path / "usage.png"), full_page=True)
