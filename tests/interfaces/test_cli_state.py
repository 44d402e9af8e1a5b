"""Commands that only read the state database never create one, and say which one they read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clirun import run_cli

from eventfiles import write_scalar_file
from tbhub.app.services import Services
from tbhub.config import load_config

READ_ONLY = [
    ["alerts"], ["history"], ["pins"], ["notify", "list"], ["users", "list"], ["tokens", "list"],
    ["bookmarks", "list"],
]


def files_in(home: Path) -> list[Path]:
    return sorted(home.rglob("*"))


@pytest.mark.parametrize("command", READ_ONLY, ids=" ".join)
def test_a_read_only_command_creates_no_state(capsys: pytest.CaptureFixture[str], isolated_env: Path,
                                              command: list[str]) -> None:
    code, out, err = run_cli(capsys, *command)
    assert code == 0, err
    assert f"no state database at {isolated_env / 'tbhub.db'} yet" in err
    assert files_in(isolated_env) == []
    code, out, err = run_cli(capsys, *command, "--json")
    assert code == 0 and json.loads(out) in ([], {}), out  # the note is on stderr, never in the JSON
    assert files_in(isolated_env) == []


@pytest.mark.parametrize("command", READ_ONLY, ids=" ".join)
def test_a_read_only_command_names_the_database_it_read(capsys: pytest.CaptureFixture[str], isolated_env: Path,
                                                        command: list[str]) -> None:
    assert run_cli(capsys, "db", "upgrade")[0] == 0
    code, _, err = run_cli(capsys, *command)
    assert code == 0 and f"state database: {isolated_env / 'tbhub.db'}" in err.splitlines(), err


def test_usage_scans_without_creating_state(capsys: pytest.CaptureFixture[str], isolated_env: Path,
                                            tmp_path: Path) -> None:
    write_scalar_file(tmp_path / "logs" / "ds" / "run", range(50))
    code, out, err = run_cli(capsys, "usage", str(tmp_path / "logs"), "--json")
    assert code == 0, err
    assert f"no state database at {isolated_env / 'tbhub.db'} yet: no growth history" in err
    (row,) = json.loads(out)
    assert row["runs"] == 1 and row["size_bytes"] > 0 and row["growth_7d_bytes"] is None
    assert files_in(isolated_env) == []
    # With a database, usage reads it and records the day's snapshot there, as before.
    assert run_cli(capsys, "db", "upgrade")[0] == 0
    code, out, err = run_cli(capsys, "usage", str(tmp_path / "logs"))
    assert code == 0 and f"state database: {isolated_env / 'tbhub.db'}" in err
    with Services(load_config(None, (), str(tmp_path / "logs"))) as services:
        assert len(services.state.usage_history()) == 1


def test_describe_state_hides_a_server_password(tmp_path: Path) -> None:
    config = tmp_path / "tbhub.toml"
    config.write_text('[state]\ndatabase = "postgresql+psycopg://tbhub:s3cret@db.internal:5432/tbhub"\n')
    services = Services(load_config(str(config), (), None))
    assert services.describe_state() == "postgresql+psycopg://tbhub:***@db.internal:5432/tbhub"
    assert services.state_file() is None and services.state_exists()  # a server is always connected
