"""``tbhub runs --status`` (JSON, CSV, table) and ``/api/endpoints/NAME/runs`` show framework, plan,
progress, ETA and the crashed hint, on runs the Hugging Face Trainer wrote itself (issue 18)."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import httpx
import pytest
from clirun import run_cli
from inprocess import serve_inprocess

from hf_runs import trained_runs, view
from tbhub.core.accounts import Role
from tbhub.interfaces.records import RUN_FIELDS, STATUS_FIELDS


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = trained_runs(tmp_path_factory.getbasetemp())
    # The crashed run must have been quiet for longer than stalled_after (1 s below).
    newest = max(p.stat().st_mtime for p in root.rglob("events.out.tfevents.*"))
    time.sleep(max(0.0, newest + 1.5 - time.time()))
    return root


def _config(tmp_path: Path, logs: Path) -> Path:
    cfg = tmp_path / "tbhub.toml"
    cfg.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n[endpoints.hf]\nlogdir = "{logs}"\n'
                   '[alerts]\nstalled_after = "1s"\n')
    return cfg


def test_runs_status_json_csv_and_table(logs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(_config(tmp_path, logs))
    code, out, err = run_cli(capsys, "runs", "--config", cfg, "--status", "--json")
    assert code == 0, err
    records = json.loads(out)
    by_run = {r["run"]: r for r in records}
    assert list(records[0]) == [*RUN_FIELDS, *STATUS_FIELDS]
    done = by_run["done"]
    assert (done["status"], done["framework"], done["plan"], done["progress"], done["crashed"]) == \
        ("finished", "transformers", "12 steps", 1.0, False)
    assert done["last_step"] == 12 and done["eta"] is None
    assert (by_run["epochs"]["status"], by_run["epochs"]["plan"]) == ("finished", "2 epochs")
    crash = by_run["crash"]
    assert (crash["status"], crash["crashed"], crash["progress"], crash["plan"]) == ("stalled", True, 0.35, "20 steps")
    assert crash["eta"] is None and crash["eta_seconds"] is None
    assert by_run["nan"]["status"] == "diverged"

    code, out, _ = run_cli(capsys, "runs", "--config", cfg, "--status", "--csv")
    rows = {r["run"]: r for r in csv.DictReader(io.StringIO(out))}
    assert (rows["crash"]["crashed"], rows["crash"]["progress"], rows["crash"]["framework"]) == \
        ("True", "0.35", "transformers")

    code, out, _ = run_cli(capsys, "runs", "--config", cfg, "--status")
    assert "progress" in out and "crashed? at 35% of 20 steps" in out and "100% of 12 steps" in out


def test_api_runs_carry_progress_from_the_stored_states(
    logs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(tmp_path, logs)
    run_cli(capsys, "runs", "--config", str(cfg), "--status")  # parses and stores the scalar states
    (tmp_path / "hub").mkdir()
    with serve_inprocess(cfg.read_text(), tmp_path / "hub") as served:
        token, _ = served.services.accounts.create_token("reader", Role.VIEWER, "test")
        bearer = {"authorization": f"Bearer {token}"}
        answer = httpx.get(f"{served.url}/api/endpoints/hf/runs", headers=bearer, timeout=30)
    assert answer.status_code == 200
    by_run = {r["run"]: r for r in answer.json()}
    crash = by_run["crash"]
    assert (crash["framework"], crash["plan"], crash["progress"], crash["crashed"], crash["eta"]) == \
        ("transformers", "20 steps", 0.35, True, None)
    assert (by_run["done"]["progress"], by_run["done"]["crashed"]) == (1.0, False)
    assert view(logs, "hf/done").run.last_step == by_run["done"]["last_step"] == 12
