from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
from clirun import run_cli
from rich.console import Console

from eventfiles import (
    UNICODE_RUN,
    corrupt_header,
    record_layout,
    scalar_event,
    truncate_at,
    write_events,
    write_scalar_file,
    write_tf2_run,
)
from tbhub.core.models import EventFileScan, RunSummary
from tbhub.interfaces.cli.render import runs_table
from tbhub.interfaces.records import RUN_FIELDS

DAY = 86400


def set_age(path: Path, days: float) -> None:
    t = time.time() - days * DAY
    for p in [path, *path.rglob("*")]:
        os.utime(p, (t, t))


@pytest.fixture
def logroot(tmp_path: Path) -> Path:
    root = tmp_path / "lora"
    write_scalar_file(root / "alpaca" / "fresh", range(50))
    write_scalar_file(root / "alpaca" / "middle", range(20))
    set_age(root / "alpaca" / "middle", 3)
    write_tf2_run(root / "dolly" / "old-run")
    set_age(root / "dolly" / "old-run", 30)
    write_scalar_file(root / UNICODE_RUN.rsplit("/", 1)[0], range(5))
    (root / "empty" / "nothing").mkdir(parents=True)
    return root


def test_json_has_exactly_the_documented_fields(logroot: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "runs", str(logroot), "--json")
    assert code == 0
    records = json.loads(out)
    assert [(r["dataset"], r["run"]) for r in records] == [
        ("alpaca", "fresh"), ("alpaca", "middle"), ("dolly", "old-run"), ("données", "run-α β")
    ]
    for record in records:
        assert tuple(record) == RUN_FIELDS
        assert record["endpoint"] == "lora"
        assert record["last_modified"].endswith("Z")
    fresh, _middle, old, uni = records
    assert fresh["event_count"] == 51 and fresh["first_step"] == 0 and fresh["last_step"] == 49
    assert fresh["path"] == str(logroot / "alpaca" / "fresh")
    assert old["event_files"] == 2  # train/ and validation/ aggregated into one run
    assert old["event_count"] == (1 + 40) + (1 + 8)
    assert 29 * DAY < old["age_seconds"] < 31 * DAY
    assert uni["event_count"] == 6 and fresh["truncated"] is False and fresh["corrupt"] == []


def test_older_than_sort_and_csv(logroot: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_cli(capsys, "runs", str(logroot), "--json", "--older-than", "2d", "--sort", "age")
    assert [r["run"] for r in json.loads(out)] == ["old-run", "middle"]
    _, out, _ = run_cli(capsys, "runs", str(logroot), "--json", "--sort", "events")
    assert json.loads(out)[0]["run"] == "fresh"
    _, out, _ = run_cli(capsys, "runs", str(logroot), "--csv", "--sort", "size")
    lines = out.strip().splitlines()
    assert lines[0].split(",") == list(RUN_FIELDS) and len(lines) == 5


def test_truncated_and_corrupt_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    live = write_scalar_file(tmp_path / "ds" / "live", range(10))
    truncate_at(live, live.stat().st_size - 3)
    bad = write_scalar_file(tmp_path / "ds" / "bad", range(10))
    offset = corrupt_header(bad, record=4)
    _, out, _ = run_cli(capsys, "runs", str(tmp_path), "--json")
    by_run = {r["run"]: r for r in json.loads(out)}
    assert by_run["live"]["truncated"] is True and by_run["live"]["event_count"] == 10
    assert by_run["bad"]["event_count"] == 4
    (corrupt,) = by_run["bad"]["corrupt"]
    assert corrupt["file"] == "ds/bad/events.out.tfevents.1700000000.host.1.0"
    assert corrupt["offset"] == record_layout_offset(bad, 4) and offset >= corrupt["offset"]
    assert "header crc" in corrupt["reason"]
    # The table's state column says so; a listing with nothing to flag has no empty state column.
    _, out, _ = run_cli(capsys, "runs", str(tmp_path))
    assert "state" in out and "corrupt @" in out and "writing" in out
    write_scalar_file(tmp_path / "clean" / "ds" / "fine", range(10))
    _, out, _ = run_cli(capsys, "runs", str(tmp_path / "clean"))
    assert "fine" in out and "state" not in out


def record_layout_offset(path: Path, index: int) -> int:
    return record_layout(path)[index].offset


def test_rescan_picks_up_appended_events(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_scalar_file(tmp_path / "ds" / "run", range(10))
    _, out, _ = run_cli(capsys, "runs", str(tmp_path), "--json")
    assert json.loads(out)[0]["event_count"] == 11
    write_events(path, [scalar_event(s, 0.1) for s in range(10, 15)], append=True)
    _, out, _ = run_cli(capsys, "runs", str(tmp_path), "--json")
    assert json.loads(out)[0]["event_count"] == 16 and json.loads(out)[0]["last_step"] == 14


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["runs", "/definitely/not/here"], "log root /definitely/not/here does not exist"),
        (["runs", "--logdir", "a=/tmp", "--endpoint", "b"], "unknown endpoint 'b'"),
        (["runs"], "no endpoints configured"),
        (["runs", "--config", "/nope.toml"], "/nope.toml: config file not found"),
        (["runs", "/tmp", "--older-than", "soon"], "--older-than: 'soon' is not a duration"),
    ],
)
def test_user_errors_are_one_line_exit_2(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    code, _out, err = run_cli(capsys, *args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_entry_point_in_subprocess(logroot: Path, tmp_path: Path) -> None:
    env = {**os.environ, "TBHUB_HOME": str(tmp_path / "home")}
    ok = subprocess.run([sys.executable, "-m", "tbhub", "runs", str(logroot), "--json"], env=env,
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and len(json.loads(ok.stdout)) == 4
    bad = subprocess.run([sys.executable, "-m", "tbhub", "runs", str(tmp_path / "missing")], env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr


def _run(name: str, age_days: float, now_ns: int) -> RunSummary:
    mtime = now_ns - int(age_days * DAY * 1e9)
    scan = EventFileScan(f"ds/{name}/events.out.tfevents.1", 1, 2_100_000, mtime, 1234, 2_100_000, 0, 99)
    return RunSummary("lora", "ds", name, f"ds/{name}", (scan,))


def test_table_rows_coloured_by_age_with_totals() -> None:
    now = time.time_ns()
    runs = [_run("fresh", 0.2, now), _run("ageing", 3, now), _run("old", 9, now)]
    console = Console(file=StringIO(), width=200, color_system="truecolor", force_terminal=True)
    console.print(runs_table(runs, now_ns=now, fresh_days=1, old_days=7))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    lines = {name: next(line for line in text.splitlines()
                         if re.search(rf"\b{name}\b", re.sub(r"\x1b\[[0-9;]*m", "", line)))
             for name in ("fresh", "ageing", "old", "total")}
    green, yellow, red = "\x1b[32m", "\x1b[33m", "\x1b[31m"
    assert green in lines["fresh"] and yellow not in lines["fresh"]
    assert yellow in lines["ageing"] and red not in lines["ageing"]
    assert red in lines["old"] and green not in lines["old"]
    assert "3 runs" in lines["total"] and "6.3 MB" in lines["total"] and "3,702" in lines["total"]


def test_status_column_and_fields(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_scalar_file(tmp_path / "ds" / "calm", range(20))
    nan = write_scalar_file(tmp_path / "ds" / "nan", range(5))
    write_events(nan, [scalar_event(5, float("nan"))], append=True)
    write_scalar_file(tmp_path / "ds" / "old", range(20))
    set_age(tmp_path / "ds" / "old", 3)
    _, out, _ = run_cli(capsys, "runs", str(tmp_path), "--json", "--status")
    by_run = {r["run"]: r for r in json.loads(out)}
    assert by_run["calm"]["status"] == "running" and by_run["old"]["status"] == "stalled"
    assert by_run["nan"]["status"] == "diverged" and "NaN at step 5" in by_run["nan"]["status_reason"]
    _, out, _ = run_cli(capsys, "runs", str(tmp_path), "--json")
    assert "status" not in json.loads(out)[0]  # without --status the fields stay exactly the documented ones
    _, out, _ = run_cli(capsys, "runs", str(tmp_path), "--status")
    assert "diverged" in out and "stalled" in out


def test_status_uses_the_hubs_alert_rule_overrides(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tbhub.adapters.db.alert_rules import AlertRuleStore
    from tbhub.app.services import Services
    from tbhub.config import load_config

    root = tmp_path / "lora"
    write_scalar_file(root / "ds" / "quiet", range(20))
    set_age(root / "ds" / "quiet", 5 / (24 * 60))  # five minutes without a new event
    args = ("runs", "--logdir", f"lora={root}", "--json", "--status")
    _, out, _ = run_cli(capsys, *args)
    assert json.loads(out)[0]["status"] == "running"  # the config's 15 minutes
    with Services(load_config(None)) as services:
        AlertRuleStore(services.state.engine).set("lora", "", {"stalled_after": "2m"}, "editor")
    _, out, _ = run_cli(capsys, *args)
    assert json.loads(out)[0]["status"] == "stalled"  # an editor's override on the hub, as the engine sees it


def test_control_characters_and_undecodable_bytes_in_names_are_escaped_in_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "hostile"
    write_scalar_file(root / "ds" / "evil\x1b[31mred\x07", range(3))
    write_scalar_file(root / "ds" / "[bold]markup", range(3))
    write_scalar_file(Path(os.fsdecode(os.path.join(os.fsencode(root / "ds"), b"bytes-\xff\xfe"))), range(3))
    code, out, _ = run_cli(capsys, "runs", str(root))
    assert code == 0
    assert "\x1b" not in out and "\x07" not in out
    assert "evil\\x1b[31mred\\x07" in out and "bytes-\\xff\\xfe" in out and "[bold]markup" in out
    code, out, _ = run_cli(capsys, "runs", str(root), "--csv")
    assert code == 0 and "\x1b" not in out
    assert "evil\\x1b[31mred\\x07" in out and f"{root}/ds/bytes-\\xff\\xfe" in out
    for command in (["compare", str(root), "--tag", "loss"], ["usage", str(root)]):
        code, out, _ = run_cli(capsys, *command)
        assert code == 0 and "\x1b" not in out, command
    # --json stays lossless: JSON escapes control characters itself, and the bytes come back exactly.
    code, out, _ = run_cli(capsys, "runs", str(root), "--json")
    assert code == 0 and "\x1b" not in out
    runs = {r["run"] for r in json.loads(out)}
    assert runs == {"evil\x1b[31mred\x07", "[bold]markup", os.fsdecode(b"bytes-\xff\xfe")}


@pytest.fixture
def flat_root(tmp_path: Path) -> Path:
    """Runs directly below the log root, as single-project teams write them (``layout = "{run}"``)."""
    root = tmp_path / "flat"
    write_scalar_file(root / "lr-1", range(10))
    write_tf2_run(root / "lr-2")  # train/ and validation/ below the run
    write_scalar_file(root / "sweep" / "seed-0" / "train", range(3))  # deeper folders belong to the run
    write_events(root / "events.out.tfevents.1.loose", [])  # outside the layout: a run of its own
    return root


def test_run_layout_lists_runs_below_the_root_without_datasets(
    flat_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "tbhub.toml"
    config.write_text(f'[endpoints.flat]\nlogdir = "{tmp_path / "elsewhere"}"\nlayout = "{{run}}"\n')
    # --logdir replaces the folder and keeps the configured endpoint's layout.
    code, out, err = run_cli(capsys, "runs", "--config", str(config), "--logdir", f"flat={flat_root}", "--json")
    assert code == 0, err
    records = json.loads(out)
    assert [(r["dataset"], r["run"], r["event_files"]) for r in records] == [
        ("", "events.out.tfevents.1.loose", 1), ("", "lr-1", 1), ("", "lr-2", 2), ("", "sweep", 1),
    ]
    assert [r["path"] for r in records[1:]] == [str(flat_root / n) for n in ("lr-1", "lr-2", "sweep")]
    assert records[2]["event_count"] == (1 + 40) + (1 + 8)
    # The table shows the missing dataset as a dot, not an empty cell.
    code, out, _ = run_cli(capsys, "runs", "--config", str(config), "--logdir", f"flat={flat_root}")
    assert code == 0
    assert re.search(r"\bflat\s+│\s+·\s+│\s+lr-1\b", out), out
    # The default layout reads the same tree as datasets: lr-1 would be a dataset holding one loose file.
    code, out, _ = run_cli(capsys, "runs", str(flat_root), "--json")
    assert ("lr-2", "train") in {(r["dataset"], r["run"]) for r in json.loads(out)}


@pytest.mark.parametrize("layout", ["{run}/{dataset}", "{project}/{run}"])
def test_unknown_layout_is_one_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], layout: str) -> None:
    config = tmp_path / "tbhub.toml"
    config.write_text(f'[endpoints.a]\nlogdir = "{tmp_path}"\nlayout = "{layout}"\n')
    code, _out, err = run_cli(capsys, "runs", "--config", str(config))
    assert code == 2
    (line,) = err.strip().splitlines()
    assert f"{config}: endpoints.a.layout: unknown layout '{layout}': use '{{dataset}}/{{run}}' or '{{run}}'" in line


def test_run_layout_in_the_hubs_json(flat_root: Path, tmp_path: Path) -> None:
    import warnings

    from tbhub.app.hub import Hub
    from tbhub.app.services import Services
    from tbhub.config import load_config
    from tbhub.interfaces.web.app import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Starlette's TestClient asks for httpx2 once, at import
        from starlette.testclient import TestClient

    config = tmp_path / "tbhub.toml"
    config.write_text(f'[state]\ndir = "{tmp_path / "state"}"\n[auth]\nmode = "none"\n'
                      f'[endpoints.flat]\nlogdir = "{flat_root}"\nlayout = "{{run}}"\n')
    with Services(load_config(config)) as services:
        hub = Hub(services, None)
        hub.refresh("flat")
        app = create_app(hub, scan_interval=3600, job_interval=3600, alerts=False)
        with TestClient(app) as client:
            response = client.get("/api/endpoints/flat/runs")
    assert response.status_code == 200, response.text
    assert sorted((r["dataset"], r["run"]) for r in response.json()) == [
        ("", "events.out.tfevents.1.loose"), ("", "lr-1"), ("", "lr-2"), ("", "sweep"),
    ]
