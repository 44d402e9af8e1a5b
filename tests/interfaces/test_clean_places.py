"""Archives never go inside a log root, nor around one: ``clean --archive-to``, ``[retention.X]
archive_to`` and ``retention apply`` refuse with one line and exit 2, and nothing is deleted."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eventfiles import write_scalar_file
from tbhub.adapters.db.store import open_state
from tbhub.adapters.storage.archive import list_archives
from tbhub.app.retention import apply_retention
from tbhub.app.services import Services
from tbhub.config import load_config
from tbhub.errors import ConfigError, UsageError

DAY = 86400


def tbhub(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tbhub", *args], env={**os.environ, "TBHUB_HOME": str(home)},
                          capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)


def old_runs(root: Path) -> None:
    for run in ("runC", "runD"):
        write_scalar_file(root / "ds" / run, range(10))
    t = time.time() - 30 * DAY
    for p in [*root.rglob("*"), root]:
        os.utime(p, (t, t))


def one_line_exit_2(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize("where", ["ds/runC", "ds/runC/deeper", ".", "..", "../.."])
def test_clean_refuses_an_archive_destination_overlapping_the_log_root(tmp_path: Path, where: str) -> None:
    root = tmp_path / "logs" / "lora"
    old_runs(root)
    dest = os.path.normpath(root / where)
    result = tbhub(tmp_path / "home", "clean", str(root), "--select", "all", "--yes", "--archive-to", dest)
    one_line_exit_2(result, "overlaps the log root", "lora")
    assert (root / "ds" / "runC").is_dir() and (root / "ds" / "runD").is_dir()


def test_clean_refuses_a_symlink_that_leads_into_the_log_root(tmp_path: Path) -> None:
    root = tmp_path / "logs" / "lora"
    old_runs(root)
    (tmp_path / "cold").symlink_to(root / "ds" / "runC")
    result = tbhub(tmp_path / "home", "clean", str(root), "--select", "all", "--yes",
                   "--archive-to", str(tmp_path / "cold" / "archives"))
    one_line_exit_2(result, "overlaps the log root")
    assert (root / "ds" / "runD").is_dir()


def test_clean_archives_next_to_the_log_root(tmp_path: Path) -> None:
    root = tmp_path / "logs" / "lora"
    old_runs(root)
    result = tbhub(tmp_path / "home", "clean", str(root), "--select", "all", "--yes",
                   "--archive-to", str(tmp_path / "logs" / "lora-archives"))
    assert result.returncode == 0, result.stderr
    assert not (root / "ds" / "runC").exists()
    assert len(list_archives(tmp_path / "logs" / "lora-archives")) == 2  # a sibling whose name starts alike is fine


def _config(tmp_path: Path, archive_to: Path, key: str = "archive_to") -> Path:
    root = tmp_path / "logs" / "lora"
    old_runs(root)
    path = tmp_path / "tbhub.toml"
    path.write_text(f'[endpoints.lora]\nlogdir = "{root}"\n[state]\ndir = "{tmp_path / "state"}"\n'
                    f'[retention.lora]\nkeep_days = 7\n'
                    + (f'archive_to = "{archive_to}"\n' if key == "archive_to"
                       else f'[retention.lora.datasets."d*"]\nkeep_days = 7\narchive_to = "{archive_to}"\n'))
    return path


@pytest.mark.parametrize("key", ["archive_to", "datasets"])
def test_config_refuses_retention_archive_to_inside_a_log_root(tmp_path: Path, key: str) -> None:
    config = _config(tmp_path, tmp_path / "logs" / "lora" / "ds" / "runC", key)
    with pytest.raises(ConfigError, match=r"archive_to: .* overlaps the log root of endpoint 'lora'"):
        load_config(config)
    result = tbhub(tmp_path / "home", "retention", "apply", "--config", str(config), "--yes")
    one_line_exit_2(result, "overlaps the log root")
    assert (tmp_path / "logs" / "lora" / "ds" / "runC").is_dir()


def test_config_refuses_an_archive_folder_holding_a_log_root(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="overlaps the log root"):
        load_config(_config(tmp_path, tmp_path / "logs"))


def test_retention_apply_refuses_a_destination_that_moved_into_the_log_root(tmp_path: Path) -> None:
    """The config was fine when loaded; the archive folder became a symlink into the root since."""
    cold = tmp_path / "cold"
    config = load_config(_config(tmp_path, cold))
    cold.symlink_to(tmp_path / "logs" / "lora" / "ds")
    state = open_state(config.state.url)
    try:
        with pytest.raises(UsageError, match="overlaps the log root of endpoint 'lora'"):
            apply_retention(Services(config, state=state))
    finally:
        state.dispose()
    assert {p.name for p in (tmp_path / "logs" / "lora" / "ds").iterdir()} == {"runC", "runD"}
