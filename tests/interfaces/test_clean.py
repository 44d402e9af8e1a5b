"""``tbhub clean``: the interactive prompt through a pseudo-terminal, scripted use, safety."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pexpect
import pytest

from eventfiles import write_scalar_file

DAY = 86400
# Oldest first, as clean lists them: indices 0-3 are "old" (>= 7 days), 4-7 are not.
AGES = {"a/r30": 30, "a/r20": 20, "b/r10": 10, "b/r8": 8, "a/r5": 5, "b/r3": 3, "a/r2": 2, "b/r1": 1.5}
PROMPT = "Select runs"


def set_age(path: Path, days: float) -> None:
    t = time.time() - days * DAY
    for p in [*path.rglob("*"), path]:
        os.utime(p, (t, t), follow_symlinks=False)


def make_tree(root: Path) -> Path:
    for relpath, days in AGES.items():
        write_scalar_file(root / relpath, range(20))
        set_age(root / relpath, days)
    return root


def checksums(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def remaining(root: Path) -> set[str]:
    return {f"{d.name}/{r.name}" for d in root.iterdir() if d.is_dir() for r in d.iterdir()}


def env(home: Path) -> dict[str, str]:
    return {**os.environ, "TBHUB_HOME": str(home), "COLUMNS": "160", "TERM": "xterm"}


def spawn(root: Path, home: Path, *args: str) -> pexpect.spawn:
    child = pexpect.spawn(sys.executable, ["-m", "tbhub", "clean", str(root), *args], env=env(home),
                          encoding="utf-8", timeout=60, dimensions=(50, 200))
    return child


def cli(root: Path | None, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "tbhub", "clean", *([str(root)] if root else []), *args]
    return subprocess.run(argv, env=env(home), capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(
    ("selection", "deleted"),
    [
        ("0 2 5", {"a/r30", "b/r10", "b/r3"}),
        ("0-2", {"a/r30", "a/r20", "b/r10"}),
        ("0-1 3 6-7", {"a/r30", "a/r20", "b/r8", "a/r2", "b/r1"}),
        ("all", set(AGES)),
        ("old", {"a/r30", "a/r20", "b/r10", "b/r8"}),
    ],
)
def test_interactive_selection_forms(tmp_path: Path, selection: str, deleted: set[str]) -> None:
    root = make_tree(tmp_path / "logs")
    child = spawn(root, tmp_path / "home")
    child.expect(PROMPT)
    child.sendline(selection)
    child.expect(rf"Delete {len(deleted)} runs \(.* kB\)\? \[y/N\]")
    child.sendline("y")
    child.expect(f"deleted {len(deleted)}, failed 0, freed")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert remaining(root) == set(AGES) - deleted


def test_enter_cancels_and_invalid_input_asks_again(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "logs")
    before = checksums(root)
    child = spawn(root, tmp_path / "home")
    child.expect(PROMPT)
    for bad, message in [("abc", "'abc' is not an index"), ("5-2", "runs backwards"),
                         ("8", r"index 8 is out of range \(valid: 0-7\)")]:
        child.sendline(bad)
        child.expect(message)
        child.expect(PROMPT)
    child.sendline("")
    child.expect("nothing selected; nothing deleted")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert checksums(root) == before


def test_anything_but_yes_cancels_at_confirmation(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "logs")
    before = checksums(root)
    child = spawn(root, tmp_path / "home")
    child.expect(PROMPT)
    child.sendline("0-3")
    child.expect(r"Delete 4 runs .*\[y/N\]")
    child.sendline("sure")
    child.expect("cancelled; nothing deleted")
    child.expect(pexpect.EOF)
    assert checksums(root) == before


def plan_lines(text: str) -> list[str]:
    """The compact list of a plan: the lines after "N runs, SIZE, from ..." naming endpoint/dataset/run."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    after = re.split(r"\d+ runs, [\d.]+ [kMG]?B, from [^\n]*\n", text, maxsplit=1)[1]
    return [line.strip() for line in after.splitlines() if line.startswith("  logs/")]


def test_the_question_names_every_run(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "logs")
    child = spawn(root, tmp_path / "home")
    child.expect(PROMPT)
    child.sendline("0 2 5")
    child.expect(r"Delete 3 runs \(.* kB\)\? \[y/N\]")
    listed = plan_lines(child.before)
    assert [line.split()[0] for line in listed] == ["logs/a/r30", "logs/b/r10", "logs/b/r3"]
    assert [line.split()[-1] for line in listed] == ["4w", "10d", "3d"]  # age
    assert all(re.fullmatch(r"\S+\s+[\d.]+ [kM]?B\s+\S+", line) for line in listed)  # and size
    child.sendline("n")
    child.expect("cancelled; nothing deleted")
    child.expect(pexpect.EOF)


@pytest.mark.parametrize("how", [["--dry-run"], ["--yes"]])
def test_scripted_clean_names_every_run(tmp_path: Path, how: list[str]) -> None:
    root = make_tree(tmp_path / "logs")
    result = cli(root, tmp_path / "home", "--select", "0 3", *how)
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in plan_lines(result.stdout)] == ["logs/a/r30", "logs/b/r8"]
    assert remaining(root) == (set(AGES) if how == ["--dry-run"] else set(AGES) - {"a/r30", "b/r8"})


def test_table_shows_index_sizes_and_age_colours(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "logs")
    child = spawn(root, tmp_path / "home")
    child.expect(PROMPT)
    screen = child.before
    child.sendline("")
    child.expect(pexpect.EOF)
    def plain(line: str) -> str:
        return re.sub(r"\x1b\[[0-9;]*m", "", line)

    lines = {name: next(line for line in screen.splitlines() if f" {name.split('/')[1]} " in plain(line))
             for name in AGES}
    assert "\x1b[31m" in lines["a/r30"] and "\x1b[33m" in lines["a/r5"] and "\x1b[33m" in lines["b/r1"]
    assert "8 runs" in screen


def test_dry_run_touches_nothing(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "logs")
    before = checksums(root)
    mtimes = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    result = cli(root, tmp_path / "home", "--select", "all", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["dry_run"] is True and len(report["runs"]) == 8 and report["deleted"] == 0
    assert {r["outcome"] for r in report["runs"]} == {"would delete"}
    assert checksums(root) == before and {p: p.stat().st_mtime_ns for p in root.rglob("*")} == mtimes


def test_no_terminal_without_yes_refuses(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "logs")
    no_select = cli(root, tmp_path / "home")
    assert no_select.returncode == 2 and "no terminal to ask on" in no_select.stderr
    no_yes = cli(root, tmp_path / "home", "--select", "old")
    assert no_yes.returncode == 2 and "add --yes" in no_yes.stderr and "Traceback" not in no_yes.stderr
    assert remaining(root) == set(AGES)


def test_scripted_old_with_json_report_and_history(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "logs")
    result = cli(root, tmp_path / "home", "--select", "old", "--yes", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["deleted"] == 4 and report["failed"] == 0 and report["bytes_freed"] > 0
    assert remaining(root) == {"a/r5", "b/r3", "a/r2", "b/r1"}
    assert not any(p.name.startswith(".tbhub-trash") for p in root.rglob("*"))
    history = subprocess.run([sys.executable, "-m", "tbhub", "history", "--json"], env=env(tmp_path / "home"),
                             capture_output=True, text=True, timeout=60)
    records = json.loads(history.stdout)
    assert sorted(r["relpath"] for r in records) == ["a/r20", "a/r30", "b/r10", "b/r8"]
    assert {r["outcome"] for r in records} == {"deleted"} and all("@" in r["actor"] for r in records)


def test_filters_older_than_dataset_match(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "logs")
    r = cli(root, tmp_path / "home", "--select", "all", "--older-than", "9d", "--dataset", "a", "--yes", "--json")
    assert json.loads(r.stdout)["deleted"] == 2 and remaining(root) == set(AGES) - {"a/r30", "a/r20"}
    r = cli(root, tmp_path / "home", "--select", "all", "--match", "b/r1*", "--yes", "--json")
    assert remaining(root) == set(AGES) - {"a/r30", "a/r20", "b/r10", "b/r1"}


def test_limits_refuse_whole_plan(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "logs")
    r = cli(root, tmp_path / "home", "--select", "all", "--max-delete", "3", "--yes")
    assert r.returncode == 2 and "more than the limit of 3" in r.stderr
    r = cli(root, tmp_path / "home", "--select", "all", "--max-bytes", "1kB", "--yes")
    assert r.returncode == 2 and "more than the limit of 1,000 bytes" in r.stderr
    assert remaining(root) == set(AGES)


def test_active_runs_skipped_unless_force(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "logs")
    write_scalar_file(root / "c" / "live", range(5))  # written just now
    r = cli(root, tmp_path / "home", "--select", "all", "--yes", "--json")
    report = json.loads(r.stdout)
    assert report["deleted"] == 8 and [s["run"] for s in report["skipped"]] == ["live"]
    assert remaining(root) == {"c/live"}
    r = cli(root, tmp_path / "home", "--select", "all", "--yes", "--force", "--json")
    assert json.loads(r.stdout)["deleted"] == 1 and remaining(root) == set()


def test_symlinked_run_refused_then_only_link_removed(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "logs")
    outside = write_scalar_file(tmp_path / "elsewhere" / "precious", range(5)).parent
    os.symlink(outside, root / "a" / "linked")
    # discovery never follows a link out of the root, so the linked run is not listed at all
    r = cli(root, tmp_path / "home", "--select", "all", "--yes", "--json")
    assert json.loads(r.stdout)["deleted"] == 8
    assert outside.is_dir() and len(list(outside.iterdir())) == 1 and (root / "a" / "linked").is_symlink()


def test_symlink_inside_root_is_refused_unless_asked(tmp_path: Path) -> None:
    from tbhub.adapters.storage.local import LocalLogStore
    from tbhub.errors import UnsafePathError

    root = make_tree(tmp_path / "logs")
    os.symlink(root / "b" / "r3", root / "a" / "alias")
    store = LocalLogStore(root)
    with pytest.raises(UnsafePathError, match="is a symlink"):
        store.delete_run("a/alias")
    assert store.delete_run("a/alias", remove_links=True).kind == "link"
    assert not (root / "a" / "alias").exists() and (root / "b" / "r3").is_dir()
    for bad in ["..", "../x", ".", "", "a/../.."]:
        with pytest.raises(UnsafePathError):
            store.delete_run(bad)
    assert remaining(root) == set(AGES)


@pytest.mark.skipif(shutil.which("chattr") is None, reason="needs chattr")
def test_permission_error_on_one_run_does_not_stop_the_rest(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "logs")
    locked = root / "b" / "r10"
    if subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode != 0:
        pytest.skip("this filesystem has no immutable attribute")
    try:
        r = cli(root, tmp_path / "home", "--select", "old", "--yes", "--json")
    finally:
        subprocess.run(["chattr", "-i", str(locked)], check=True)
    assert r.returncode == 1
    report = json.loads(r.stdout)
    assert report["deleted"] == 3 and report["failed"] == 1
    (failed,) = [x for x in report["runs"] if x["outcome"] == "failed"]
    assert failed["relpath"] == "b/r10" and "not permitted" in failed["error"]
    assert remaining(root) == {"b/r10", "a/r5", "b/r3", "a/r2", "b/r1"}
    assert checksums(locked.parent.parent)  # the locked run is intact


def test_leftover_trash_is_finished_next_time(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "logs")
    trash = root / "a" / ".tbhub-trash-r99-1-1"
    write_scalar_file(trash, range(3))
    r = cli(root, tmp_path / "home", "--select", "", "--yes")
    assert r.returncode == 0 and "finished an interrupted cleanup" in r.stderr
    assert not trash.exists() and remaining(root) == set(AGES)
