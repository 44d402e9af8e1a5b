"""Archive → verify → restore on real run folders with real event files, and everything that must fail.

Archives are read back independently here (zstandard / gzip + tarfile, and GNU tar where present), so
the tests do not only check tbhub against itself.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import zstandard

import tbhub
from eventfiles import (
    frame,
    scalar_event,
    write_scalar_file,
    write_tf2_run,
    write_zero_byte_file,
)
from tbhub.adapters.storage import archive as archive_mod
from tbhub.adapters.storage.archive import (
    RESTORE_PREFIX,
    ArchiveManifest,
    archive_run,
    compression,
    durable,
    list_archives,
    remove_partial_archives,
    restore_archive,
    sources,
    verify_archive,
)
from tbhub.errors import ArchiveError

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
DATASET = "données"
RUN = "run-α β"
CODECS = ["zstd", "gzip"]
DEAD_PID = 4_194_999  # above the kernel's largest pid_max (2**22): never a live process

FileState = tuple[str, int, int, int]  # sha256, size, mtime_ns, mode
FolderState = tuple[int, int]  # mtime_ns, mode


# --- helpers -------------------------------------------------------------------------------------------


def folder_state(path: Path) -> FolderState:
    st = path.lstat()
    return st.st_mtime_ns, stat.S_IMODE(st.st_mode)


def tree_state(root: Path) -> tuple[dict[str, FileState], dict[str, FolderState]]:
    """(files → (sha256, size, mtime_ns, mode), folders → (mtime_ns, mode)) below ``root``, ``"."``
    included."""
    files: dict[str, FileState] = {}
    folders = {".": folder_state(root)}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            path = Path(dirpath, name)
            folders[path.relative_to(root).as_posix()] = folder_state(path)
        for name in filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            files[path.relative_to(root).as_posix()] = (digest, st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode))
    return files, folders


def make_run(run_dir: Path) -> Path:
    """A run as teams have them: a PyTorch file, Keras train/ and validation/, a unicode sub-folder,
    a zero-byte event file (a job that just started), empty sub-folders, a non-event file with its
    own mode, and distinct nanosecond mtimes everywhere."""
    write_scalar_file(run_dir, range(300), ("loss", "accuracy"))
    write_tf2_run(run_dir, train_steps=60)
    write_scalar_file(run_dir / "训练" / "évaluation", range(30), name="events.out.tfevents.1700000001.hôte.2.0")
    write_zero_byte_file(run_dir / "events.out.tfevents.1700000002.host.3.0")
    (run_dir / "empty").mkdir()
    (run_dir / "nested" / "deeper").mkdir(parents=True)
    notes = run_dir / "hparams.yaml"
    notes.write_text("lr: 3e-4\n")
    notes.chmod(0o640)
    (run_dir / "empty").chmod(0o700)
    run_dir.chmod(0o751)
    files = sorted(p for p in run_dir.rglob("*") if p.is_file())
    folders = sorted((p for p in run_dir.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
    for i, path in enumerate([*files, *folders, run_dir]):
        t = 1_700_000_000_123_456_789 + i * 1_000_000_007
        os.utime(path, ns=(t, t))
    return run_dir


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_run(tmp_path / "logs" / DATASET / RUN)


def archive(run: Path, dest: Path, **kwargs: Any) -> archive_mod.ArchiveResult:
    kwargs.setdefault("now", NOW)
    return archive_run(
        run, dest, endpoint="ep", dataset=run.parent.name, run=run.name, relpath=f"{run.parent.name}/{run.name}",
        **kwargs,
    )


def decompress(path: Path) -> bytes:
    """The tar stream inside an archive, decoded without tbhub."""
    raw = path.read_bytes()
    if raw.startswith(b"\x1f\x8b"):
        return gzip.decompress(raw)
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw), read_across_frames=True)
    return bytes(reader.read())


def tar_members(path: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(decompress(path))) as tar:
        return tar.getmembers()


def embedded_manifest(path: Path) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(decompress(path))) as tar:
        first = tar.getmembers()[0]
        assert first.name == "MANIFEST.json"
        reader = tar.extractfile(first)
        assert reader is not None
        return reader.read()


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x55
    path.write_bytes(bytes(data))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


# --- round trip ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
def test_round_trip_is_byte_identical(run_dir: Path, tmp_path: Path, codec: str) -> None:
    before = tree_state(run_dir)
    result = archive(run_dir, tmp_path / "cold", compression=codec, summary={"status": "finished", "steps": 299})

    suffix = {"zstd": ".tar.zst", "gzip": ".tar.gz"}[codec]
    folder = tmp_path / "cold" / "ep" / DATASET
    assert result.archive == folder / f"{RUN}--20250102T030405Z{suffix}"
    assert result.manifest_path == folder / f"{RUN}--20250102T030405Z.manifest.json"
    assert sorted(p.name for p in folder.iterdir()) == sorted([result.archive.name, result.manifest_path.name])
    assert result.bytes_in == sum(size for _, size, _, _ in before[0].values())
    assert result.bytes_out == result.archive.stat().st_size
    assert tree_state(run_dir) == before  # archiving only reads

    (tmp_path / "restored-root").mkdir()
    restored = restore_archive(result.archive, tmp_path / "restored-root")
    assert restored == tmp_path / "restored-root" / DATASET / RUN
    assert tree_state(restored) == before  # content, sizes, mtimes (ns), modes, folders and their mtimes
    assert not [p for p in restored.parent.iterdir() if p.name.startswith(RESTORE_PREFIX)]


@pytest.mark.parametrize("codec", CODECS)
def test_manifest_is_embedded_first_and_equals_the_sidecar(run_dir: Path, tmp_path: Path, codec: str) -> None:
    summary = {"status": "finished", "last_step": 299, "scalars": {"loss": [0.1, 0.2]}}
    result = archive(run_dir, tmp_path / "cold", compression=codec, summary=summary)
    embedded = embedded_manifest(result.archive)
    assert result.manifest_path.read_bytes() == embedded
    manifest = ArchiveManifest.from_json(embedded)
    assert manifest == result.manifest
    assert (manifest.format, manifest.endpoint, manifest.dataset, manifest.run) == (1, "ep", DATASET, RUN)
    assert manifest.relpath == f"{DATASET}/{RUN}"
    assert manifest.original_path == str(run_dir)
    assert manifest.created == NOW and manifest.compression == codec
    assert manifest.summary == summary
    assert set(manifest.folders) == {
        "empty", "nested", "nested/deeper", "train", "validation", "训练", "训练/évaluation",
    }
    files = {f.path: f for f in manifest.files}
    assert files["events.out.tfevents.1700000002.host.3.0"].size == 0
    assert files["hparams.yaml"].mode == 0o640
    for path, (digest, size, mtime_ns, mode) in tree_state(run_dir)[0].items():
        assert (files[path].sha256, files[path].size, files[path].mtime_ns, files[path].mode) == (
            digest, size, mtime_ns, mode,
        )
    names = [m.name for m in tar_members(result.archive)]
    assert names[:2] == ["MANIFEST.json", "run"]
    assert set(names[2:]) == {f"run/{p}" for p in [*files, *manifest.folders]}
    assert ArchiveManifest.from_json(manifest.to_json()) == manifest


@pytest.mark.parametrize("codec", CODECS)
def test_gnu_tar_extracts_the_archive_too(run_dir: Path, tmp_path: Path, codec: str) -> None:
    if shutil.which("tar") is None or (codec == "zstd" and shutil.which("zstd") is None):
        pytest.skip("tar (and zstd) not installed")
    result = archive(run_dir, tmp_path / "cold", compression=codec)
    out = tmp_path / "untarred"
    out.mkdir()
    flag = "--zstd" if codec == "zstd" else "--gzip"
    subprocess.run(["tar", flag, "-xf", str(result.archive), "-C", str(out)], check=True, capture_output=True)
    files, _ = tree_state(out / "run")
    expected, _ = tree_state(run_dir)
    assert {p: (d, s, m) for p, (d, s, m, _) in files.items()} == {p: (d, s, m) for p, (d, s, m, _) in expected.items()}
    assert ArchiveManifest.from_json((out / "MANIFEST.json").read_bytes()) == result.manifest


def test_restore_to_another_relpath(run_dir: Path, tmp_path: Path) -> None:
    result = archive(run_dir, tmp_path / "cold")
    root = tmp_path / "root"
    root.mkdir()
    restored = restore_archive(result.archive, root, relpath="elsewhere/run-copy")
    assert restored == root / "elsewhere" / "run-copy"
    assert tree_state(restored) == tree_state(run_dir)


def test_same_second_never_overwrites(run_dir: Path, tmp_path: Path) -> None:
    first = archive(run_dir, tmp_path / "cold")
    first_bytes = first.archive.read_bytes()
    second = archive(run_dir, tmp_path / "cold")
    third = archive(run_dir, tmp_path / "cold", compression="gzip")  # the sidecar name is shared too
    assert second.archive.name == f"{RUN}--20250102T030405Z-1.tar.zst"
    assert third.archive.name == f"{RUN}--20250102T030405Z-2.tar.gz"
    assert second.manifest_path.name == f"{RUN}--20250102T030405Z-1.manifest.json"
    assert first.archive.read_bytes() == first_bytes
    for result in (first, second, third):
        assert verify_archive(result.archive) == result.manifest


def test_long_names_and_threads(tmp_path: Path) -> None:
    long_run = make_run(tmp_path / "logs" / "ds" / ("長" * 70))  # 210 bytes: temporary names get cut
    result = archive(long_run, tmp_path / "cold", zstd_threads=2)
    assert verify_archive(result.archive) == result.manifest
    too_long = tmp_path / "logs" / "ds" / ("長" * 80)
    too_long.mkdir()
    with pytest.raises(ArchiveError, match="too long"):
        archive(too_long, tmp_path / "cold")


def test_gzip_when_zstandard_is_missing(run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    zstd_archive = archive(run_dir, tmp_path / "cold").archive
    monkeypatch.setattr(compression, "_zstd", None)
    result = archive(run_dir, tmp_path / "cold2")
    assert result.archive.name.endswith(".tar.gz") and result.manifest.compression == "gzip"
    assert verify_archive(result.archive) == result.manifest
    with pytest.raises(ArchiveError, match="zstandard"):
        archive(run_dir, tmp_path / "cold3", compression="zstd")
    with pytest.raises(ArchiveError, match="zstandard package is not installed"):
        verify_archive(zstd_archive)
    with pytest.raises(ArchiveError, match="unknown compression"):
        archive(run_dir, tmp_path / "cold4", compression="xz")


# --- verification --------------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("where", ["manifest", "middle", "last"])
def test_verify_detects_a_flipped_byte(run_dir: Path, tmp_path: Path, codec: str, where: str) -> None:
    result = archive(run_dir, tmp_path / "cold", compression=codec)
    size = result.archive.stat().st_size
    offset = {"manifest": 40, "middle": size // 2, "last": size - 1}[where]
    flip(result.archive, offset)
    with pytest.raises(ArchiveError):
        verify_archive(result.archive)
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(ArchiveError):
        restore_archive(result.archive, root)
    assert list(root.rglob("*")) in ([], [root / DATASET])  # nothing restored, no temp folder left


@pytest.mark.parametrize("codec", CODECS)
def test_verify_detects_truncation_and_a_stale_sidecar(run_dir: Path, tmp_path: Path, codec: str) -> None:
    result = archive(run_dir, tmp_path / "cold", compression=codec)
    good = result.archive.read_bytes()
    for cut in (len(good) - 1, len(good) - 4, len(good) - 5, len(good) // 2, 20, 3):
        result.archive.write_bytes(good[:cut])
        with pytest.raises(ArchiveError):
            verify_archive(result.archive)
    result.archive.write_bytes(good + good[:100])
    with pytest.raises(ArchiveError):
        verify_archive(result.archive)
    result.archive.write_bytes(good)
    verify_archive(result.archive)
    result.manifest_path.write_bytes(result.manifest_path.read_bytes().replace(b'"ep"', b'"other"'))
    with pytest.raises(ArchiveError, match="differs from the manifest"):
        verify_archive(result.archive)
    result.manifest_path.unlink()
    assert verify_archive(result.archive) == result.manifest  # the embedded manifest suffices


def test_verify_rejects_a_member_whose_content_disagrees_with_the_manifest(tmp_path: Path) -> None:
    manifest = base_manifest({"a.txt": b"hello"})
    bad = craft(tmp_path / "x.tar.zst", manifest, [dir_member("run"), file_member("run/a.txt", b"hellO")])
    with pytest.raises(ArchiveError, match="does not match the manifest"):
        verify_archive(bad)
    missing = craft(tmp_path / "y.tar.zst", base_manifest({"a.txt": b"hello"}), [dir_member("run")])
    with pytest.raises(ArchiveError, match="incomplete"):
        verify_archive(missing)
    extra = craft(
        tmp_path / "z.tar.zst", manifest,
        [dir_member("run"), file_member("run/a.txt", b"hello"), file_member("run/b.txt", b"sneaky")],
    )
    with pytest.raises(ArchiveError, match="not in the manifest"):
        verify_archive(extra)
    good = craft(tmp_path / "ok.tar.zst", manifest, [dir_member("run"), file_member("run/a.txt", b"hello")])
    assert verify_archive(good).files[0].path == "a.txt"


def test_a_failed_restore_closes_its_files_and_removes_its_folder(tmp_path: Path) -> None:
    manifest = base_manifest({"a.txt": b"hello", "b.txt": b"world"})
    bad = craft(
        tmp_path / "x.tar.zst", manifest,
        [dir_member("run"), file_member("run/a.txt", b"hello"), file_member("run/b.txt", b"World")],
    )
    root = tmp_path / "root"
    root.mkdir()
    fds = len(os.listdir("/proc/self/fd"))
    with pytest.raises(ArchiveError, match=r"b\.txt does not match"):
        restore_archive(bad, root)
    assert len(os.listdir("/proc/self/fd")) == fds
    assert [p.name for p in root.rglob("*")] == ["ds"]


def test_not_an_archive(tmp_path: Path) -> None:
    (tmp_path / "junk.tar.zst").write_bytes(b"definitely not an archive")
    with pytest.raises(ArchiveError, match="not a tbhub archive"):
        verify_archive(tmp_path / "junk.tar.zst")
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w") as tar:
        tar.addfile(tarfile.TarInfo("hello"), io.BytesIO(b""))
    (tmp_path / "plain.tar.gz").write_bytes(gzip.compress(plain.getvalue()))
    with pytest.raises(ArchiveError, match=r"first member is not MANIFEST\.json"):
        verify_archive(tmp_path / "plain.tar.gz")
    with pytest.raises(ArchiveError, match=r"^no such file or directory reading "):
        verify_archive(tmp_path / "missing.tar.zst")


# --- restore safety ------------------------------------------------------------------------------------


def test_restore_refuses_an_existing_target(run_dir: Path, tmp_path: Path) -> None:
    result = archive(run_dir, tmp_path / "cold")
    root = tmp_path / "root"
    target = root / DATASET / RUN
    target.mkdir(parents=True)  # even an empty folder
    with pytest.raises(ArchiveError, match="already exists"):
        restore_archive(result.archive, root)
    assert list(target.iterdir()) == []
    target.rmdir()
    target.write_text("a file")
    with pytest.raises(ArchiveError, match="already exists"):
        restore_archive(result.archive, root)
    target.unlink()
    target.symlink_to(tmp_path / "nowhere")
    with pytest.raises(ArchiveError, match="already exists"):
        restore_archive(result.archive, root)
    assert sorted(p.name for p in target.parent.iterdir()) == [RUN]
    with pytest.raises(ArchiveError, match="not an existing folder"):
        restore_archive(result.archive, tmp_path / "no-such-root")
    with pytest.raises(ArchiveError, match="unsafe"):
        restore_archive(result.archive, root, relpath="../escape")


def base_manifest(contents: dict[str, bytes], **overrides: Any) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "format": 1, "endpoint": "ep", "dataset": "ds", "run": "run", "relpath": "ds/run",
        "original_path": "/logs/ds/run", "created_at": NOW.isoformat(), "compression": "zstd",
        "folders": [], "folder_mtimes_ns": {},
        "files": [
            {"path": p, "size": len(d), "sha256": hashlib.sha256(d).hexdigest(), "mtime_ns": 1, "mode": 0o644}
            for p, d in contents.items()
        ],
        "summary": {},
    }
    manifest.update(overrides)
    return manifest


def dir_member(name: str) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info, None


def file_member(
    name: str, data: bytes, kind: bytes = tarfile.REGTYPE, link: str = ""
) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.linkname = link
    return info, data if kind == tarfile.REGTYPE else None


def craft(path: Path, manifest: dict[str, Any], members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    """An archive written by hand with tarfile, as an attacker (or another tool) would."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        text = json.dumps(manifest).encode()
        info = tarfile.TarInfo("MANIFEST.json")
        info.size = len(text)
        tar.addfile(info, io.BytesIO(text))
        for member, data in members:
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue()
    zstd = manifest["compression"] == "zstd"
    path.write_bytes(zstandard.ZstdCompressor().compress(raw) if zstd else gzip.compress(raw))
    return path


SLIPS: dict[str, Callable[[Path], tuple[dict[str, Any], list[tuple[tarfile.TarInfo, bytes | None]]]]] = {
    "dotdot-below-run": lambda t: (base_manifest({"ok": b"ok"}), [file_member("run/../../../evil", b"pwned")]),
    "dotdot": lambda t: (base_manifest({"ok": b"ok"}), [file_member("../evil", b"pwned")]),
    "absolute": lambda t: (base_manifest({"ok": b"ok"}), [file_member(f"{t}/evil", b"pwned")]),
    "symlink": lambda t: (
        base_manifest({"ok": b"ok", "evil": b""}), [file_member("run/evil", b"", tarfile.SYMTYPE, f"{t}/evil")]
    ),
    "hardlink": lambda t: (
        base_manifest({"ok": b"ok", "evil": b""}), [file_member("run/evil", b"", tarfile.LNKTYPE, "run/ok")]
    ),
    "device": lambda t: (base_manifest({"ok": b"ok", "evil": b""}), [file_member("run/evil", b"", tarfile.CHRTYPE)]),
    "manifest-dotdot": lambda t: (
        base_manifest({"ok": b"ok", "../evil": b"pwned"}), [file_member("run/../evil", b"pwned")]
    ),
    "manifest-absolute": lambda t: (
        base_manifest({"ok": b"ok", f"{t}/evil": b"pwned"}), [file_member(f"run/{t}/evil", b"pwned")]
    ),
    "relpath-dotdot": lambda t: (base_manifest({"ok": b"ok"}, relpath="../../evil"), []),
    "relpath-absolute": lambda t: (base_manifest({"ok": b"ok"}, relpath=f"{t}/evil"), []),
}


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("case", sorted(SLIPS))
def test_restore_rejects_tar_slip(tmp_path: Path, case: str, codec: str) -> None:
    manifest, evil = SLIPS[case](tmp_path)
    manifest["compression"] = codec
    members = [dir_member("run"), file_member("run/ok", b"ok"), *evil]  # the bad member after a good one
    bad = craft(tmp_path / f"bad.tar.{'zst' if codec == 'zstd' else 'gz'}", manifest, members)
    root = tmp_path / "logs" / "root"
    root.mkdir(parents=True)
    with pytest.raises(ArchiveError):
        restore_archive(bad, root)
    with pytest.raises(ArchiveError):
        verify_archive(bad)
    assert not [p for p in tmp_path.rglob("*evil*")]
    assert not (root / "ds" / "run").exists()
    assert not [p for p in root.rglob(f"{RESTORE_PREFIX}*")]


# --- refusing runs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["file-link", "dir-link", "dangling", "run-is-link", "fifo"])
def test_symlinks_and_special_files_are_refused(run_dir: Path, tmp_path: Path, kind: str) -> None:
    target = run_dir
    if kind == "file-link":
        (run_dir / "train" / "linked").symlink_to(run_dir / "hparams.yaml")
    elif kind == "dir-link":
        (run_dir / "nested" / "loop").symlink_to(run_dir)
    elif kind == "dangling":
        (run_dir / "gone").symlink_to(tmp_path / "gone")
    elif kind == "run-is-link":
        target = tmp_path / "logs" / DATASET / "alias"
        target.symlink_to(run_dir)
    else:
        os.mkfifo(run_dir / "pipe")
    with pytest.raises(ArchiveError, match=r"symlink|neither a regular file") as info:
        archive(target, tmp_path / "cold")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "cold").exists()  # refused before anything was written


def test_bad_names_and_destinations_are_refused(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="single path component"):
        archive_run(run_dir, tmp_path / "cold", endpoint="ep", dataset="a/b", run="r", relpath="a/b/r")
    with pytest.raises(ArchiveError, match="unsafe run path"):
        archive_run(run_dir, tmp_path / "cold", endpoint="ep", dataset="d", run="r", relpath="../r")
    with pytest.raises(ArchiveError, match="inside the run folder"):
        archive(run_dir, run_dir / "archives")
    with pytest.raises(ArchiveError, match="JSON"):
        archive(run_dir, tmp_path / "cold", summary={"when": object()})
    with pytest.raises(ArchiveError, match=r"^no such file or directory reading "):
        archive(tmp_path / "logs" / DATASET / "missing", tmp_path / "cold")


def entry(**fields: Any) -> dict[str, Any]:
    return {"path": "x", "size": 0, "sha256": "0" * 64, "mtime_ns": 0, "mode": 0o644, **fields}


@pytest.mark.parametrize(
    "patch",
    [
        pytest.param({"relpath": "/abs"}, id="abs-relpath"),
        pytest.param({"folders": ["a/../b"]}, id="dotdot-folder"),
        pytest.param({"folders": ["sub"], "files": []}, id="ok"),
        pytest.param({"format": 2}, id="future-format"),
        pytest.param({"compression": "xz"}, id="compression"),
        pytest.param({"created_at": "yesterday"}, id="created-at"),
        pytest.param({"created_at": "2025-01-02T03:04:05"}, id="created-at-naive"),
        pytest.param({"files": [entry(path="x/y")]}, id="orphan"),
        pytest.param({"files": [entry(size=-1)]}, id="size"),
        pytest.param({"files": [entry(sha256="zz")]}, id="sha"),
        pytest.param({"files": [entry(size=True)]}, id="bool"),
        pytest.param({"files": [entry(), entry()]}, id="twice"),
        pytest.param({"files": [entry(path="sub")], "folders": ["sub"]}, id="file-and-folder"),
    ],
)
def test_manifest_validation(patch: dict[str, Any]) -> None:
    text = json.dumps(base_manifest({"a": b"a"}, **patch))
    if patch.get("files") == []:
        assert ArchiveManifest.from_json(text).folders == ("sub",)
    else:
        with pytest.raises(ArchiveError):
            ArchiveManifest.from_json(text)


# --- runs that change while archived -------------------------------------------------------------------


def test_a_file_growing_during_archive_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "logs" / "ds" / "live"
    live = write_scalar_file(run, range(2000), ("loss", "accuracy", "lr"))
    live.write_bytes(live.read_bytes() * 16)  # a few MB, so the archive takes a while
    record = frame(scalar_event(99_999, 0.5))
    stop, started = threading.Event(), threading.Event()

    def writer() -> None:  # a training job still logging
        with open(live, "ab") as f:
            while not stop.is_set():
                f.write(record)
                f.flush()
                started.set()
                time.sleep(0.0005)

    thread = threading.Thread(target=writer)
    thread.start()
    started.wait()
    try:
        with pytest.raises(ArchiveError, match="changed while being archived"):
            archive(run, tmp_path / "cold")
    finally:
        stop.set()
        thread.join()
    assert leftovers(tmp_path / "cold") == []


@pytest.mark.parametrize("change", ["append", "truncate", "replace", "new-file", "remove-other", "touch"])
def test_changes_at_the_worst_moment_are_refused(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """Deterministic: the change lands right after tbhub opened ``train/``'s event file."""
    real_open = sources._open_source
    victim = next((run_dir / "train").iterdir())

    def open_then_change(path: str) -> int:
        fd = real_open(path)
        if path == str(victim):
            if change == "append":
                with open(victim, "ab") as f:
                    f.write(frame(scalar_event(1000, 0.1)))
            elif change == "truncate":
                os.truncate(victim, 10)
            elif change == "replace":
                victim.with_suffix(".new").write_bytes(victim.read_bytes())
                os.replace(victim.with_suffix(".new"), victim)
            elif change == "new-file":
                write_scalar_file(run_dir / "validation", range(3), name="events.out.tfevents.1700009999.host.9.9.v2")
            elif change == "remove-other":
                (run_dir / "validation" / next((run_dir / "validation").iterdir()).name).unlink()
            else:
                os.utime(victim)
        return fd

    monkeypatch.setattr(sources, "_open_source", open_then_change)
    with pytest.raises(ArchiveError, match="changed while being archived"):
        archive(run_dir, tmp_path / "cold")
    assert leftovers(tmp_path / "cold") == []


# --- I/O errors ----------------------------------------------------------------------------------------


def count_writes(monkeypatch: pytest.MonkeyPatch, fail_at: int | None) -> list[int]:
    """Patch the one place tbhub writes bytes; fail the ``fail_at``-th call with ENOSPC."""
    real = durable._write_all
    calls: list[int] = []

    def write_all(fd: int, data: bytes) -> None:
        calls.append(len(data))
        if fail_at is not None and len(calls) - 1 == fail_at:
            real(fd, data[: len(data) // 2])  # a partial write, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd, data)

    monkeypatch.setattr(durable, "_write_all", write_all)
    return calls


def test_disk_full_at_every_write_leaves_nothing(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as m:
        calls = count_writes(m, None)
        archive(run_dir, tmp_path / "probe")
    total = len(calls)
    assert total >= 3  # body, archive, sidecar at least
    for fail_at in range(total):
        dest = tmp_path / f"cold{fail_at}"
        with monkeypatch.context() as m:
            count_writes(m, fail_at)
            with pytest.raises(ArchiveError) as info:
                archive(run_dir, dest)
        message = str(info.value)
        assert message.startswith("no space left on device writing ") and str(dest) in message
        assert "\n" not in message
        assert leftovers(dest) == [], fail_at
    assert [i.archive.parents[2] for i in list_archives(tmp_path)] == [tmp_path / "probe"]


def test_fsync_failure_is_reported(run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_fsync(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(ArchiveError, match=r"^input/output error syncing "):
        archive(run_dir, tmp_path / "cold")
    assert leftovers(tmp_path / "cold") == []


def test_disk_full_during_restore_leaves_nothing(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = archive(run_dir, tmp_path / "cold")
    root = tmp_path / "root"
    root.mkdir()
    for fail_at in (0, 3):
        with monkeypatch.context() as m:
            count_writes(m, fail_at)
            with pytest.raises(ArchiveError, match=r"^no space left on device writing "):
                restore_archive(result.archive, root)
        assert [p.name for p in root.rglob("*")] == [DATASET]
    assert tree_state(restore_archive(result.archive, root)) == tree_state(run_dir)


# --- listing and partial files -------------------------------------------------------------------------


def test_list_archives_ignores_partials_and_remove_partial_archives_deletes_them(
    run_dir: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "cold"
    older = archive(run_dir, dest, now=datetime(2024, 6, 1, tzinfo=UTC))
    newer = archive(run_dir, dest)
    gz = archive(run_dir, dest, compression="gzip", now=datetime(2024, 12, 1, tzinfo=UTC))
    folder = dest / "ep" / DATASET
    stem = f"{RUN}--20250102T030405Z"
    dead = [
        folder / f".{stem}.tar.zst.partial-{DEAD_PID}-0123abcd",
        folder / f".{stem}.tar.zst.body.partial-{DEAD_PID}-0123abcd",
        folder / f".{stem}.manifest.json.sidecar.partial-{DEAD_PID}-0123abcd",
    ]
    alive = folder / f".{stem}-9.tar.zst.partial-{os.getpid()}-89abcdef"  # an archive_run in progress
    for path in [*dead, alive]:
        path.write_bytes(b"half an archive")
    (folder / "notes.txt").write_text("not an archive")

    infos = list_archives(dest)
    assert [i.archive for i in infos] == [older.archive, gz.archive, newer.archive]
    assert [i.size_bytes for i in infos] == [r.bytes_out for r in (older, gz, newer)]
    assert [i.manifest for i in infos] == [r.manifest for r in (older, gz, newer)]

    newer.manifest_path.unlink()  # killed before the sidecar was written: the embedded one is used
    (folder / "garbage.tar.zst").write_bytes(b"junk")  # unreadable: left out, logged
    assert [i.manifest for i in list_archives(dest)] == [r.manifest for r in (older, gz, newer)]
    assert list_archives(tmp_path / "nothing-here") == []

    assert remove_partial_archives(dest) == sorted(dead)
    assert alive.exists() and all(not p.exists() for p in dead)
    assert remove_partial_archives(dest) == []


# --- crash safety --------------------------------------------------------------------------------------

CHILD = r"""
import sys, time
from pathlib import Path
from tbhub.adapters.storage.archive import archive_run
print("ready", flush=True)
sys.stdin.readline()
started = time.monotonic()
archive_run(Path(sys.argv[1]), Path(sys.argv[2]), endpoint="ep", dataset="ds", run="big", relpath="ds/big")
print(time.monotonic() - started, flush=True)
"""


def start_child(run: Path, dest: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(tbhub.__file__).parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(run), str(dest)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


def test_sigkill_at_random_moments_leaves_nothing_or_a_verified_archive(tmp_path: Path) -> None:
    run = tmp_path / "logs" / "ds" / "big"
    events = write_scalar_file(run, range(3000), ("loss", "accuracy"))
    events.write_bytes(events.read_bytes() * 12)  # ~3 MB of real records
    write_tf2_run(run, train_steps=200)
    (run / "media").mkdir()
    (run / "media" / "images.bin").write_bytes(random.Random(7).randbytes(1 << 20))  # incompressible
    source = tree_state(run)

    probe = start_child(run, tmp_path / "probe")
    out, _ = probe.communicate("go\n", timeout=60)
    assert probe.returncode == 0
    duration = float(out.strip())

    rng = random.Random(20250102)
    delays = [0.0, 3 * duration] + [rng.uniform(0, 1.3 * duration) for _ in range(22)]
    outcomes = {"none": 0, "archive": 0}
    for i, delay in enumerate(delays):
        dest = tmp_path / f"cold{i}"
        proc = start_child(run, dest)
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)

        folder = dest / "ep" / "ds"
        names = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
        finals = [n for n in names if not n.startswith(".")]
        archives = [n for n in finals if n.endswith(".tar.zst")]
        assert len(archives) <= 1, names
        if archives:
            outcomes["archive"] += 1
            manifest = verify_archive(folder / archives[0])  # and the sidecar, if written, agrees
            assert {f.path: f.sha256 for f in manifest.files} == {p: s[0] for p, s in source[0].items()}
            assert set(finals) <= {archives[0], archives[0].replace(".tar.zst", ".manifest.json")}
        else:
            outcomes["none"] += 1
            assert finals == [], names  # in particular no sidecar without its archive
        assert [i.archive.name for i in list_archives(dest)] == archives
        partials = [folder / n for n in names if n.startswith(".")]
        assert remove_partial_archives(dest) == sorted(partials)
        assert tree_state(run) == source  # the run was never touched
    assert outcomes["none"] and outcomes["archive"], outcomes
