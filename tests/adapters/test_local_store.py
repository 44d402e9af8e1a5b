from __future__ import annotations

import os
from pathlib import Path

import pytest

from tbhub.adapters.storage.local import LocalLogStore
from tbhub.errors import LogRootError, UnsafePathError


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_discover_lists_event_files_only_sorted(tmp_path: Path) -> None:
    touch(tmp_path / "ds" / "run1" / "events.out.tfevents.1.host")
    touch(tmp_path / "ds" / "run1" / "train" / "events.out.tfevents.2.host.v2")
    touch(tmp_path / "ds" / "run1" / "notes.txt")
    touch(tmp_path / "ds" / "ränn ü" / "events.out.tfevents.3")
    (tmp_path / "empty" / "run").mkdir(parents=True)
    found = LocalLogStore(tmp_path).discover()
    assert [f.relpath for f in found.files] == [
        "ds/run1/events.out.tfevents.1.host",
        "ds/run1/train/events.out.tfevents.2.host.v2",
        "ds/ränn ü/events.out.tfevents.3",
    ]
    assert all(f.size == 1 and f.inode > 0 and f.mtime_ns > 0 for f in found.files)
    assert found.skipped == []


def test_symlink_leaving_root_is_reported_not_followed(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    touch(outside / "run" / "events.out.tfevents.9")
    touch(root / "ds" / "run" / "events.out.tfevents.1")
    os.symlink(outside / "run", root / "ds" / "escaped")
    os.symlink(outside / "run" / "events.out.tfevents.9", root / "ds" / "run" / "events.out.tfevents.link")
    found = LocalLogStore(root).discover()
    assert [f.relpath for f in found.files] == ["ds/run/events.out.tfevents.1"]
    assert {s.relpath for s in found.skipped} == {"ds/escaped", "ds/run/events.out.tfevents.link"}
    assert all("leaves the log root" in s.reason for s in found.skipped)


def test_symlink_inside_root_followed_once_and_cycles_end(tmp_path: Path) -> None:
    touch(tmp_path / "ds" / "run" / "events.out.tfevents.1")
    os.symlink(tmp_path / "ds", tmp_path / "ds" / "run" / "loop")
    found = LocalLogStore(tmp_path).discover()
    assert [f.relpath for f in found.files] == ["ds/run/events.out.tfevents.1"]


def test_missing_root_and_file_root(tmp_path: Path) -> None:
    with pytest.raises(LogRootError, match="does not exist"):
        LocalLogStore(tmp_path / "nope").discover()
    f = touch(tmp_path / "file")
    with pytest.raises(LogRootError, match="not a folder"):
        LocalLogStore(f).discover()


def test_resolve_refuses_escapes(tmp_path: Path) -> None:
    root = tmp_path / "root"
    touch(root / "ds" / "run" / "events.out.tfevents.1")
    os.symlink(tmp_path, root / "ds" / "up")
    store = LocalLogStore(root)
    assert store.resolve("ds/run/events.out.tfevents.1") == str(root / "ds/run/events.out.tfevents.1")
    for bad in ["../x", "ds/../../x", "/etc/passwd", "", "ds/up/secret"]:
        with pytest.raises(UnsafePathError):
            store.resolve(bad)


def test_trash_siblings_are_not_runs(tmp_path: Path) -> None:
    touch(tmp_path / "ds" / ".tbhub-trash-run" / "events.out.tfevents.1")
    touch(tmp_path / "ds" / ".tbhub-restore-run-123" / "events.out.tfevents.1")
    assert LocalLogStore(tmp_path).discover().files == []
