"""Compare and status through ``Services``: scalar summaries parsed once, kept in the state database."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from eventfiles import write_scalar_file
from tbhub.app.compare import compare_runs
from tbhub.app.inventory import scan_endpoints
from tbhub.app.services import Services
from tbhub.app.status import current_statuses
from tbhub.config import load_config
from tbhub.core.compare import Target


def test_compare_parses_once_and_the_hub_reads_without_parsing(tmp_path: Path) -> None:
    write_scalar_file(tmp_path / "lora" / "ds" / "short", range(10))  # loss = 1 / (step + 1)
    write_scalar_file(tmp_path / "lora" / "ds" / "long", range(100))
    with Services(load_config(None, logdirs=[f"lora={tmp_path / 'lora'}"])) as services:
        assert compare_runs(services, tags=["loss"], scan=False) == []  # nothing indexed: the hub shows nothing
        rows = {r.run.run: r for r in compare_runs(services, tags=["loss"], target=Target("loss", "<", 0.05))}
        assert rows["long"].tags["loss"].last_value == pytest.approx(1 / 100)  # float32 on disk
        assert rows["short"].tags["loss"].last_value == pytest.approx(1 / 10)
        assert rows["long"].target is not None and rows["long"].target.step == 20  # 1/21 < 0.05
        assert rows["short"].target is None
        # The hub's request path: the index and the stored summaries only, no file opened.
        (tmp_path / "lora" / "ds" / "long" / "events.out.tfevents.1700000000.host.1.0").unlink()
        cached = {r.run.run: r for r in compare_runs(services, tags=["loss"], scan=False)}
        assert cached["long"].tags["loss"].last_value == pytest.approx(1 / 100)


def test_statuses_use_the_hubs_rule_overrides(tmp_path: Path) -> None:
    write_scalar_file(tmp_path / "lora" / "ds" / "r1", range(50))
    with Services(load_config(None, logdirs=[f"lora={tmp_path / 'lora'}"])) as services:
        inventories = scan_endpoints(services)
        now_ns = time.time_ns()
        before = current_statuses(services, inventories, now_ns)[("lora", "ds/r1")]
        services.alert_rules.set("lora", "", {"max_steps": 49}, "editor")
        after = current_statuses(services, inventories, now_ns)[("lora", "ds/r1")]
        assert before.status.value != "finished" and after.status.value == "finished"
