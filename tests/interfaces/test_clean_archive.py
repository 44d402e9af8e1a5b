"""``clean --archive-to`` then ``restore``: round trip, and no run lost when killed at any moment."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eventfiles import write_scalar_file, write_tf2_run
from tbhub.adapters.storage.archive import list_archives, verify_archive

DAY = 86400


def env(home: Path) -> dict[str, str]:
    return {**os.environ, "TBHUB_HOME": str(home)}


def tbhub(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tbhub", *args], env=env(home), capture_output=True, text=True,
                          timeout=180, stdin=subprocess.DEVNULL)


def fingerprint(run: Path) -> dict[str, tuple[str, int]]:
    return {str(p.relative_to(run)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(run.rglob("*")) if p.is_file()}


def age(path: Path, days: float) -> None:
    t = time.time() - days * DAY
    for p in [*path.rglob("*"), path]:
        os.utime(p, (t, t))


def test_archive_delete_restore_round_trip(tmp_path: Path) -> None:
    root, cold, home = tmp_path / "logs", tmp_path / "cold", tmp_path / "home"
    write_tf2_run(root / "dolly" / "keras", train_steps=300)
    write_scalar_file(root / "alpaca" / "r16", range(500), ("loss", "lr"))
    age(root, 20)
    before = {r: fingerprint(root / r) for r in ("dolly/keras", "alpaca/r16")}
    result = tbhub(home, "clean", str(root), "--select", "all", "--yes", "--archive-to", str(cold), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["deleted"] == 2
    assert not (root / "dolly" / "keras").exists() and not (root / "alpaca" / "r16").exists()
    archives = {f"{i.manifest.dataset}/{i.manifest.run}": i for i in list_archives(cold)}
    assert set(archives) == {"dolly/keras", "alpaca/r16"}
    assert archives["dolly/keras"].manifest.summary["event_count"] > 0
    listing = json.loads(tbhub(home, "archives", "list", str(cold), "--json").stdout)
    assert {(a["dataset"], a["run"]) for a in listing} == {("dolly", "keras"), ("alpaca", "r16")}
    history = json.loads(tbhub(home, "history", "--json").stdout)
    assert {h["archive"] for h in history} == {str(i.archive) for i in archives.values()}

    for name, info in archives.items():
        restored = tbhub(home, "restore", str(info.archive), "--logdir", f"{root.name}={root}")
        assert restored.returncode == 0, restored.stderr
        assert fingerprint(root / name) == before[name]
    again = tbhub(home, "restore", str(archives["alpaca/r16"].archive), "--logdir", f"{root.name}={root}")
    assert again.returncode != 0 and "exists" in again.stderr and "Traceback" not in again.stderr
    assert fingerprint(root / "alpaca" / "r16") == before["alpaca/r16"]


def test_restore_of_unknown_endpoint_and_missing_archive(tmp_path: Path) -> None:
    r = tbhub(tmp_path / "home", "restore", str(tmp_path / "nope.tar.zst"), "--logdir", f"x={tmp_path}")
    assert r.returncode == 2 and "does not exist" in r.stderr


@pytest.mark.parametrize("link", ["dataset", "deeper"])
def test_restore_never_follows_a_symlinked_folder_out_of_the_log_root(tmp_path: Path, link: str) -> None:
    root, cold, home, outside = tmp_path / "logs", tmp_path / "cold", tmp_path / "home", tmp_path / "outside"
    write_scalar_file(root / "dolly" / "keras", range(50))
    age(root, 20)
    cleaned = tbhub(home, "clean", str(root), "--select", "all", "--yes", "--archive-to", str(cold))
    assert cleaned.returncode == 0, cleaned.stderr
    (archive,) = list_archives(cold)
    outside.mkdir()
    shutil.rmtree(root / "dolly")
    if link == "dataset":  # the dataset folder itself now leads out of the root
        (root / "dolly").symlink_to(outside)
    else:  # through a chain of links
        (tmp_path / "elsewhere").mkdir()
        (root / "dolly").symlink_to(tmp_path / "elsewhere" / "ds", target_is_directory=True)
        (tmp_path / "elsewhere" / "ds").symlink_to(outside)
    restored = tbhub(home, "restore", str(archive.archive), "--logdir", f"{root.name}={root}")
    assert restored.returncode == 1 and "outside the log root" in restored.stderr
    assert len(restored.stderr.strip().splitlines()) == 1 and "Traceback" not in restored.stderr
    assert list(outside.iterdir()) == []  # nothing landed outside, not even the temporary folder
    assert list_archives(cold) == [archive]


def test_restore_creates_missing_dataset_folders_inside_the_root(tmp_path: Path) -> None:
    root, cold, home = tmp_path / "logs", tmp_path / "cold", tmp_path / "home"
    write_scalar_file(root / "dolly" / "keras", range(50))
    age(root, 20)
    before = fingerprint(root / "dolly" / "keras")
    assert tbhub(home, "clean", str(root), "--select", "all", "--yes", "--archive-to", str(cold)).returncode == 0
    shutil.rmtree(root / "dolly")
    (archive,) = list_archives(cold)
    restored = tbhub(home, "restore", str(archive.archive), "--logdir", f"{root.name}={root}")
    assert restored.returncode == 0, restored.stderr
    assert fingerprint(root / "dolly" / "keras") == before


@pytest.mark.slow
def test_sigkill_at_random_moments_never_loses_a_run(tmp_path: Path) -> None:
    """20+ kills during archive and delete: every run is complete in place, or archived and verified."""
    template = tmp_path / "template"
    names = []
    for i in range(4):
        run = template / "ds" / f"run{i}"
        write_scalar_file(run / "train", range(15_000 + 3_000 * i), ("loss", "lr", "grad_norm"))
        write_scalar_file(run / "eval", range(0, 15_000, 100), ("eval/loss",))
        names.append(f"ds/run{i}")
    age(template, 30)
    originals = {n: fingerprint(template / n) for n in names}
    rng = random.Random(1234)
    # How long an uninterrupted clean takes here, to spread the kills over all of it.
    probe_root = tmp_path / "probe"
    shutil.copytree(template, probe_root, symlinks=True)
    started = time.monotonic()
    done = tbhub(tmp_path / "home-probe", "clean", str(probe_root), "--select", "all", "--yes",
                 "--archive-to", str(tmp_path / "probe-cold"))
    full = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    outcomes = {"in place": 0, "archived": 0}
    for attempt in range(22):
        root, cold = tmp_path / f"t{attempt}" / "logs", tmp_path / f"t{attempt}" / "cold"
        shutil.copytree(template, root, symlinks=True)
        proc = subprocess.Popen(
            [sys.executable, "-m", "tbhub", "clean", str(root), "--select", "all", "--yes", "--archive-to", str(cold)],
            env=env(tmp_path / "home"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.3, full))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        archived = {}
        if cold.exists():
            for info in list_archives(cold):
                manifest = verify_archive(info.archive)  # complete archives verify
                archived[manifest.relpath] = info
        for name in names:
            in_place = root / name
            if in_place.exists() and fingerprint(in_place) == originals[name]:
                outcomes["in place"] += 1
                continue
            assert name in archived, f"attempt {attempt}: {name} is neither complete in place nor archived"
            restored = tmp_path / f"t{attempt}" / "restored"
            restored.mkdir(exist_ok=True)
            from tbhub.adapters.storage.archive import restore_archive

            target = restore_archive(archived[name].archive, restored)
            assert fingerprint(target) == originals[name]
            outcomes["archived"] += 1
        # the next clean finishes what the killed one left: no trash, no partial archive
        finish = tbhub(tmp_path / "home", "clean", str(root), "--select", "", "--archive-to", str(cold), "--yes")
        assert finish.returncode == 0, finish.stderr
        assert not [p for p in root.rglob("*") if p.name.startswith(".tbhub-trash")]
        shutil.rmtree(tmp_path / f"t{attempt}")
    assert outcomes["in place"] > 0 and outcomes["archived"] > 0, outcomes
