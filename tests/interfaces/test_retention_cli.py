"""``tbhub retention plan|apply`` and pins through the CLI, and two appliers at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from eventfiles import write_scalar_file
from tbhub.adapters.storage.archive import list_archives

DAY = 86400


def age(path: Path, days: float) -> None:
    t = time.time() - days * DAY
    for p in [*path.rglob("*"), path]:
        os.utime(p, (t, t))


def make(root: Path, runs: dict[str, float]) -> None:
    for relpath, days in runs.items():
        write_scalar_file(root / relpath, range(30))
        age(root / relpath, days)


def config(tmp: Path, root: Path, extra: str = "") -> Path:
    cfg = tmp / "tbhub.toml"
    cfg.write_text(
        f'[state]\ndir = "{tmp / "state"}"\n[endpoints.lora]\nlogdir = "{root}"\n'
        f"[retention.lora]\nkeep_days = 30\nkeep_last = 1\n{extra}"
        '[retention.lora.datasets."claims-*"]\nkeep_days = 90\n'
    )
    return cfg


def tbhub(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tbhub", *args, "--config", str(cfg)], capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


RUNS = {"chat/new": 1, "chat/mid": 20, "chat/old": 40, "chat/older": 50, "claims-v1/a": 60, "claims-v1/b": 100,
        "claims-v1/c": 120}


def test_plan_names_rules_and_apply_archives_and_records(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    make(root, RUNS)
    cfg = config(tmp_path, root, extra=f'archive_to = "{tmp_path / "cold"}"\n')
    plan = tbhub(cfg, "retention", "plan", "--json")
    assert plan.returncode == 0, plan.stderr
    data = json.loads(plan.stdout)
    gone = {d["relpath"]: d for d in data["delete"]}
    assert set(gone) == {"chat/old", "chat/older", "claims-v1/b", "claims-v1/c"}
    assert gone["claims-v1/b"]["rule"] == 'lora.datasets."claims-*"' and gone["chat/old"]["rule"] == "lora"
    assert {k["relpath"] for k in data["keep"]} == {"chat/new", "chat/mid", "claims-v1/a"}
    assert data["bytes_to_free"] == sum(d["size_bytes"] for d in data["delete"])
    text = tbhub(cfg, "retention", "plan")
    assert "would be removed" in text.stdout and "keep_days = 90" in text.stdout

    pin = tbhub(cfg, "pin", "lora/chat/older")
    assert pin.returncode == 0 and "pinned lora/chat/older" in pin.stdout
    assert tbhub(cfg, "pin", "lora/chat/nope").returncode == 2

    refused = tbhub(cfg, "retention", "apply")
    assert refused.returncode == 2 and "--yes" in refused.stderr
    applied = tbhub(cfg, "retention", "apply", "--yes", "--json")
    assert applied.returncode == 0, applied.stderr
    report = json.loads(applied.stdout)["report"]
    assert sorted(r["relpath"] for r in report["runs"]) == ["chat/old", "claims-v1/b", "claims-v1/c"]
    assert (root / "chat" / "older").is_dir() and not (root / "chat" / "old").exists()
    assert {i.manifest.relpath for i in list_archives(tmp_path / "cold")} == {"chat/old", "claims-v1/b", "claims-v1/c"}
    history = json.loads(tbhub(cfg, "history", "--json").stdout)
    assert {h["command"] for h in history} == {"retention (cli)"}
    again = json.loads(tbhub(cfg, "retention", "plan", "--json").stdout)
    assert [d["relpath"] for d in again["delete"]] == []  # the pinned run stays


def test_limits_stop_and_report(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    make(root, RUNS)
    cfg = config(tmp_path, root, extra="max_delete = 2\n")
    applied = tbhub(cfg, "retention", "apply", "--yes", "--json")
    assert applied.returncode == 1
    out = json.loads(applied.stdout)
    assert out["applied"] is False and "more than max_delete = 2" in out["refused"][0]
    assert all((root / r).is_dir() for r in RUNS)


def test_two_concurrent_appliers_never_delete_twice_or_lose_a_run(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    runs = {f"ds{i % 3}/r{i:02d}": 40 + i for i in range(24)} | {f"ds{i}/keep": 1 for i in range(3)}
    make(root, runs)
    cfg = config(tmp_path, root, extra=f'archive_to = "{tmp_path / "cold"}"\n')
    tbhub(cfg, "db", "upgrade")
    procs = [subprocess.Popen([sys.executable, "-m", "tbhub", "retention", "apply", "--yes", "--json",
                               "--config", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [p.communicate(timeout=180) for p in procs]
    reports = [json.loads(out) for out, _ in results]
    removed = [r["relpath"] for rep in reports for r in rep["report"]["runs"] if r["outcome"] == "deleted"]
    failed = [r for rep in reports for r in rep["report"]["runs"] if r["outcome"] == "failed"]
    assert failed == [] and len(removed) == len(set(removed)) == 24
    assert sum(rep["busy"] for rep in reports) in (0, 1)
    archived = [i.manifest.relpath for i in list_archives(tmp_path / "cold")]
    assert sorted(archived) == sorted(removed)  # every removed run is archived exactly once
    assert {f"{d.name}/{r.name}" for d in root.iterdir() for r in d.iterdir()} == {"ds0/keep", "ds1/keep", "ds2/keep"}
