"""Usage per dataset and its daily snapshot (``tbhub.app.usage``), from the index."""

from __future__ import annotations

import time
from pathlib import Path

from eventfiles import file_version_event, scalar_event, write_events, write_scalar_file
from tbhub.app.inventory import endpoint_runs, scan_endpoints
from tbhub.app.services import Services
from tbhub.app.usage import USAGE_SNAPSHOT_EVERY_S, indexed_usage, seed_usage_history, snapshot_usage_if_due
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


def test_a_fresh_state_database_is_given_the_history_the_runs_start_times_imply(tmp_path: Path) -> None:
    """What ``tbhub demo`` does for its backdated runs: daily snapshots from each run's first record, so
    that growth over 7 and 30 days and the size chart show something at once; never over real history."""
    now = time.time()
    for name, days_ago in (("old", 40), ("mid", 20), ("new", 3)):
        t0 = now - days_ago * 86400
        write_events(tmp_path / "lora" / "alpaca" / name / "events.out.tfevents.1.h",
                     [file_version_event(t0), *(scalar_event(s, 1.0, wall_time=t0 + s) for s in range(10 * days_ago))])
    with Services(load_config(None, logdirs=[f"lora={tmp_path / 'lora'}"])) as services:
        recorded = seed_usage_history(services, now, 45)
        history = services.state.usage_history()
        assert recorded == len(history) == 40  # one a day from the oldest run's start; none before it
        sizes = {r.relpath.split("/")[-1]: r.size_bytes for r in endpoint_runs(services, "lora")}
        (usage,) = indexed_usage(services, now)
        assert usage.growth_7d == sizes["new"]  # the run started 3 days ago
        assert usage.growth_30d == sizes["new"] + sizes["mid"]
        assert seed_usage_history(services, now, 45) == 0  # history exists: left alone
        assert len(services.state.usage_history()) == 40
