"""Usage per dataset and its daily snapshot (``tbhub.app.usage``), from the index."""

from __future__ import annotations

import time
from pathlib import Path

from eventfiles import write_scalar_file
from tbhub.app.inventory import scan_endpoints
from tbhub.app.services import Services
from tbhub.app.usage import USAGE_SNAPSHOT_EVERY_S, indexed_usage, snapshot_usage_if_due
from tbhub.config import load_config


def test_usage_from_the_index_and_one_snapshot_a_day(tmp_path: Path) -> None:
    write_scalar_file(tmp_path / "lora" / "alpaca" / "r1", range(10))
    write_scalar_file(tmp_path / "lora" / "alpaca" / "r2", range(10))
    write_scalar_file(tmp_path / "lora" / "dolly" / "r1", range(10))
    with Services(load_config(None, logdirs=[f"lora={tmp_path / 'lora'}"])) as services:
        scan_endpoints(services)
        usage = {u.dataset: u for u in indexed_usage(services, time.time())}
        assert (usage["alpaca"].runs, usage["dolly"].runs) == (2, 1)
        now = time.time()
        assert snapshot_usage_if_due(services, now)
        assert not snapshot_usage_if_due(services, now + 60)  # one a day
        assert snapshot_usage_if_due(services, now + USAGE_SNAPSHOT_EVERY_S + 1)
        assert len({s.at for s in services.state.usage_history()}) == 2
