"""Scanning into the index and reading it back (``tbhub.app.inventory``), with a real log root and SQLite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from eventfiles import write_scalar_file
from tbhub.app.inventory import endpoint_runs, refresh, scan_endpoints
from tbhub.app.services import Services
from tbhub.config import load_config
from tbhub.errors import LogRootError


def _services(tmp_path: Path, *roots: str) -> Services:
    return Services(load_config(None, logdirs=[f"{r}={tmp_path / r}" for r in roots]))


def test_scan_fills_the_index_that_pages_read(tmp_path: Path) -> None:
    write_scalar_file(tmp_path / "lora" / "alpaca" / "r1", range(5))
    write_scalar_file(tmp_path / "lora" / "alpaca" / "r2", range(7))
    with _services(tmp_path, "lora") as services:
        assert endpoint_runs(services, "lora") == []  # nothing scanned yet
        (inventory,) = scan_endpoints(services)
        assert sorted(r.run for r in inventory.runs) == ["r1", "r2"]
        indexed = {r.run: r for r in endpoint_runs(services, "lora")}
        assert indexed["r2"].last_step == 6 and indexed["r1"].event_count == inventory.runs[0].event_count


def test_a_missing_root_is_one_error_before_anything_is_scanned(tmp_path: Path) -> None:
    write_scalar_file(tmp_path / "lora" / "ds" / "r1")
    with _services(tmp_path, "lora", "gone") as services, pytest.raises(LogRootError, match="endpoint 'gone'"):
        scan_endpoints(services)
    with _services(tmp_path, "lora", "gone") as services:
        assert services.state.last_scan("lora") is None  # nothing scanned


def test_refresh_records_a_failure_instead_of_raising(tmp_path: Path) -> None:
    write_scalar_file(tmp_path / "lora" / "ds" / "r1")
    with _services(tmp_path, "lora") as services:
        assert refresh(services, "lora").error is None
        os.rename(tmp_path / "lora", tmp_path / "moved")
        record = refresh(services, "lora")
        assert record.error and "lora" in record.error
        assert services.state.last_scan("lora").error == record.error  # type: ignore[union-attr]
