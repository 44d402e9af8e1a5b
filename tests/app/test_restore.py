"""Archive on clean, then restore (``tbhub.app.restore``), through ``Services`` on real folders."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from eventfiles import write_scalar_file
from tbhub.app.cleanup import execute_plan
from tbhub.app.inventory import scan_endpoints
from tbhub.app.restore import archives_at, restore_run
from tbhub.app.services import Services
from tbhub.config import load_config
from tbhub.core.cleanup import CleanupPlan
from tbhub.errors import UsageError


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_an_archived_run_comes_back_byte_identical(tmp_path: Path) -> None:
    run = tmp_path / "lora" / "ds" / "r1"
    write_scalar_file(run / "train", range(50))
    before = _digest(run)
    archive = tmp_path / "archive"
    with Services(load_config(None, logdirs=[f"lora={tmp_path / 'lora'}"])) as services:
        (inventory,) = scan_endpoints(services)
        report = execute_plan(CleanupPlan(tuple(inventory.runs)), services, archive_to=archive, who="test")
        assert not run.exists() and report.deleted[0].archive
        (info,) = archives_at(services, str(archive))
        assert (info.manifest.dataset, info.manifest.run) == ("ds", "r1")
        done = restore_run(services, str(info.archive))
        assert (done.endpoint, Path(done.path)) == ("lora", run)
        assert _digest(run) == before
        with pytest.raises(Exception, match="exist"):  # never overwrites
            restore_run(services, str(info.archive))
        with pytest.raises(UsageError, match="does not exist"):
            restore_run(services, str(tmp_path / "nope.tar"))
