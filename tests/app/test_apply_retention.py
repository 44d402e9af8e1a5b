"""Retention through ``Services``: plan with pins, apply under the lease, record the application."""

from __future__ import annotations

import os
import time
from pathlib import Path

from eventfiles import write_scalar_file
from tbhub.app.cleanup import RETENTION_LEASE
from tbhub.app.retention import apply_retention, plan_retention_now, retention_digest, retention_status
from tbhub.app.services import Services
from tbhub.config import load_config


def _services(tmp_path: Path) -> Services:
    root = tmp_path / "lora"
    for name, days in (("old", 40), ("pinned", 40), ("new", 1)):
        write_scalar_file(root / "ds" / name)
        t = time.time() - days * 86400
        for p in [*(root / "ds" / name).rglob("*"), root / "ds" / name]:
            os.utime(p, (t, t))
    config = tmp_path / "tbhub.toml"
    config.write_text(f'[endpoints.lora]\nlogdir = "{root}"\n[retention.lora]\nkeep_days = 30\n')
    return Services(load_config(config))


def test_plan_and_apply_skip_pins_and_record_the_application(tmp_path: Path) -> None:
    with _services(tmp_path) as services:
        services.state.pin("lora", "ds/pinned", "ada")
        plan = plan_retention_now(services)
        assert [d.run.run for d in plan.delete] == ["old"]
        digest = retention_digest(plan)
        assert retention_digest(plan_retention_now(services)) == digest  # nothing changed
        outcome = apply_retention(services, trigger="test", who="ada")
        assert outcome.applied and [o.run.run for o in outcome.report.deleted] == ["old"]
        assert sorted(p.name for p in (tmp_path / "lora" / "ds").iterdir()) == ["new", "pinned"]
        (last,) = services.state.retention_history(limit=5)
        assert (last.trigger, last.actor, last.deleted) == ("test", "ada", 1)
        assert retention_status(services, time.time())["last"]["deleted"] == 1


def test_apply_is_busy_while_a_cleanup_holds_the_lease(tmp_path: Path) -> None:
    with _services(tmp_path) as services:
        assert services.state.acquire_lease(RETENTION_LEASE, "someone", 60)
        outcome = apply_retention(services)
        assert outcome.busy and not outcome.applied
        assert (tmp_path / "lora" / "ds" / "old").exists()
