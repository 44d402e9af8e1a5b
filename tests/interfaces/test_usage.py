"""``tbhub usage``: figures equal a direct walk of the tree; growth from snapshots; cost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from eventfiles import write_scalar_file
from tbhub.adapters.db.store import open_state
from tbhub.core.usage import Snapshot


def walk(root: Path) -> dict[str, tuple[int, int]]:
    """dataset -> (bytes of event files, runs), by a plain walk."""
    out: dict[str, tuple[int, int]] = {}
    for dataset in sorted(p for p in root.iterdir() if p.is_dir()):
        size = sum(f.stat().st_size for f in dataset.rglob("*") if f.is_file() and "tfevents" in f.name)
        runs = sum(1 for r in dataset.iterdir() if r.is_dir())
        out[dataset.name] = (size, runs)
    return out


def test_usage_equals_a_direct_walk_with_growth_and_cost(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    for i in range(5):
        write_scalar_file(root / "claims-v2" / f"r{i}", range(200 * (i + 1)), ("loss", "lr"))
    for i in range(3):
        write_scalar_file(root / "chat" / f"r{i}" / "train", range(100))
        write_scalar_file(root / "chat" / f"r{i}" / "eval", range(10))
    (root / "chat" / "r0" / "notes.txt").write_text("not an event file")
    cfg = tmp_path / "tbhub.toml"
    cfg.write_text(
        f'[state]\ndir = "{tmp_path / "state"}"\n[endpoints.lora]\nlogdir = "{root}"\n'
        '[cost]\nstorage_per_gb_month = 20.0\ncurrency = "EUR"\n'
    )
    # a snapshot from 8 days ago, as the server would have recorded it
    state = open_state(f"sqlite:///{tmp_path / 'state' / 'tbhub.db'}")
    import time

    state.record_usage([Snapshot(time.time() - 8 * 86400, "lora", "claims-v2", 1000, 1, 10)])
    state.dispose()
    result = subprocess.run(
        [sys.executable, "-m", "tbhub", "usage", "--config", str(cfg), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )
    assert result.returncode == 0, result.stderr
    rows = {r["dataset"]: r for r in json.loads(result.stdout)}
    expected = walk(root)
    assert {d: (r["size_bytes"], r["runs"]) for d, r in rows.items()} == expected
    claims = rows["claims-v2"]
    assert claims["growth_7d_bytes"] == claims["size_bytes"] - 1000
    assert claims["growth_30d_bytes"] is None  # no snapshot that old
    assert rows["chat"]["growth_7d_bytes"] == rows["chat"]["size_bytes"]  # absent 8 days ago: it all grew since
    assert claims["monthly_cost"] == round(claims["size_bytes"] / 1e9 * 20.0, 4) and claims["currency"] == "EUR"
    table = subprocess.run(
        [sys.executable, "-m", "tbhub", "usage", "--config", str(cfg)], capture_output=True, text=True, timeout=60
    )
    assert "lora/claims-v2" in table.stdout and "EUR/month" in table.stdout
    state = open_state(f"sqlite:///{tmp_path / 'state' / 'tbhub.db'}")
    assert len({r.at for r in state.usage_history()}) == 3  # the old one and one per CLI run
    state.dispose()
