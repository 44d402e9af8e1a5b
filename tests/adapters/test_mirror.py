"""The local mirror of an object-storage log root, against a real S3-compatible server (moto_server)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import s3
from eventfiles import raw_loader_count, scalar_event, write_events, write_scalar_file
from s3 import s3_bucket, s3_endpoint, s3_server  # noqa: F401  (pytest fixtures)
from tbhub.adapters.storage.mirror import (
    APPEND_CHECK_BYTES,
    MANIFEST,
    RETRY_AFTER_S,
    Mirror,
    MirrorKeeper,
    MirrorPlan,
    MirrorStatus,
    SyncStats,
    safe_relpath,
)
from tbhub.adapters.storage.objectstore import DELETE_MARKER, RESTORE_MARKER
from tbhub.adapters.storage.remote import open_filesystem
from tbhub.errors import LogRootError

PREFIX = "logs"
RUN_1 = "ds-a/run-1/events.out.tfevents.1.host.1.0"


def _tree(root: Path) -> dict[str, Path]:
    """Two datasets, three runs (one with train/ and eval/ sub-runs), plus files that are not events."""
    written = [
        write_scalar_file(root / "ds-a" / "run-1", range(50), name=RUN_1.rsplit("/", 1)[1]),
        write_scalar_file(root / "ds-a" / "run-2" / "train", range(30), ("loss", "lr"),
                          name="events.out.tfevents.2.host.1.0"),
        write_scalar_file(root / "ds-a" / "run-2" / "eval", range(0, 30, 5), name="events.out.tfevents.2.host.1.1"),
        write_scalar_file(root / "ds-b" / "run-3", range(20), ("epoch_loss",),
                          name="events.out.tfevents.3.host.1.0.v2", v2=True),
    ]
    files = {p.relative_to(root).as_posix(): p for p in written}
    (root / "ds-a" / "run-1" / "config.yaml").write_text("lr: 0.1\n")
    (root / "ds-b" / "run-3" / "checkpoint.pt").write_bytes(b"\0" * 1000)
    return files


def _local_files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".tbhub-")
    }


@dataclass(frozen=True)
class Bucket:
    """A fresh bucket on the test's moto_server."""

    endpoint: str
    name: str

    def put(self, key: str, body: bytes) -> None:
        s3.s3_client(self.endpoint).put_object(Bucket=self.name, Key=key, Body=body)

    def delete(self, key: str) -> None:
        s3.s3_client(self.endpoint).delete_object(Bucket=self.name, Key=key)

    def url(self, prefix: str = PREFIX) -> str:
        return f"s3://{self.name}/{prefix}"

    def mirror(self, local: Path, prefix: str = PREFIX, **options: Any) -> Mirror:
        fs, root = open_filesystem(self.url(prefix), {"endpoint_url": self.endpoint, **options})
        return Mirror(fs, root, local, label=self.url(prefix))


@pytest.fixture
def bucket(s3_endpoint: str, s3_bucket: str) -> Bucket:  # noqa: F811  (pytest fixtures)
    return Bucket(s3_endpoint, s3_bucket)


@pytest.fixture
def uploaded(bucket: Bucket, tmp_path: Path) -> dict[str, Path]:
    files = _tree(tmp_path / "src")
    s3.upload_tree(bucket.endpoint, tmp_path / "src", bucket.name, PREFIX)
    return files


def test_first_sync_copies_every_event_file_and_nothing_else(
    bucket: Bucket, uploaded: dict[str, Path], tmp_path: Path
) -> None:
    mirror = bucket.mirror(tmp_path / "mirror")
    assert not mirror.ready

    stats = mirror.sync()

    assert mirror.ready
    assert _local_files(tmp_path / "mirror") == {rel: p.read_bytes() for rel, p in uploaded.items()}
    assert stats.files == stats.files_fetched == len(uploaded)
    assert stats.bytes_fetched == sum(p.stat().st_size for p in uploaded.values())
    assert (stats.files_appended, stats.files_replaced, stats.files_removed) == (0, 0, 0)
    assert stats.errors == () and stats.rejected == ()
    manifest = json.loads((tmp_path / "mirror" / MANIFEST).read_text())
    assert manifest["remote_root"] == f"{bucket.name}/{PREFIX}"
    assert {rel: e["size"] for rel, e in manifest["files"].items()} == {
        rel: p.stat().st_size for rel, p in uploaded.items()
    }


def test_a_sync_with_nothing_new_fetches_nothing(
    bucket: Bucket, uploaded: dict[str, Path], tmp_path: Path
) -> None:
    mirror = bucket.mirror(tmp_path / "mirror")
    mirror.sync()
    # A new process over the same folder trusts the manifest: still nothing to fetch.
    second = bucket.mirror(tmp_path / "mirror")
    again = second.sync()
    assert (again.files_fetched, again.files_appended, again.files_removed, again.bytes_fetched) == (0, 0, 0, 0)
    assert again.files == len(uploaded)
    assert not again.changed
    written = (tmp_path / "mirror" / MANIFEST).stat().st_ino
    assert not second.sync().changed
    assert (tmp_path / "mirror" / MANIFEST).stat().st_ino == written  # an idle sync writes nothing


def test_a_grown_object_costs_only_its_appended_bytes(
    bucket: Bucket, uploaded: dict[str, Path], tmp_path: Path
) -> None:
    mirror = bucket.mirror(tmp_path / "mirror")
    mirror.sync()
    rel = RUN_1
    source = uploaded[rel]
    before = source.stat().st_size
    write_events(source, [scalar_event(step, 0.01) for step in range(50, 80)], append=True)
    appended = source.stat().st_size - before
    bucket.put(f"{PREFIX}/{rel}", source.read_bytes())

    stats = mirror.sync()

    assert (stats.files_appended, stats.files_fetched, stats.files_replaced) == (1, 0, 0)
    assert stats.bytes_fetched == appended + APPEND_CHECK_BYTES
    local = tmp_path / "mirror" / rel
    assert local.read_bytes() == source.read_bytes()
    assert raw_loader_count(local) == 81  # file_version + 80 steps: every record readable


def test_appends_to_a_file_being_written_arrive_in_pieces(
    bucket: Bucket, tmp_path: Path
) -> None:
    """A job that uploads its event file as it writes: the last record may be cut anywhere."""
    source = write_events(tmp_path / "src" / "events.out.tfevents.9", [scalar_event(s, 0.5) for s in range(100)])
    data = source.read_bytes()
    mirror = bucket.mirror(tmp_path / "mirror")
    local = tmp_path / "mirror" / "ds" / "run" / source.name
    total = 0
    for cut in (1000, 1001, 2500, 2501, len(data)):
        bucket.put(f"{PREFIX}/ds/run/{source.name}", data[:cut])
        stats = mirror.sync()
        total += stats.bytes_fetched
        assert local.read_bytes() == data[:cut]
    assert total == len(data) + 4 * APPEND_CHECK_BYTES


def test_removed_objects_are_removed_with_their_empty_folders(
    bucket: Bucket, uploaded: dict[str, Path], tmp_path: Path
) -> None:
    mirror = bucket.mirror(tmp_path / "mirror")
    mirror.sync()
    gone = [rel for rel in uploaded if rel.startswith("ds-a/run-2/")]
    for rel in gone:
        bucket.delete(f"{PREFIX}/{rel}")

    stats = mirror.sync()

    assert stats.files_removed == len(gone) == 2
    assert stats.bytes_fetched == 0
    assert not (tmp_path / "mirror" / "ds-a" / "run-2").exists()
    assert (tmp_path / "mirror" / "ds-a" / "run-1").is_dir()
    assert set(_local_files(tmp_path / "mirror")) == set(uploaded) - set(gone)
    manifest = json.loads((tmp_path / "mirror" / MANIFEST).read_text())
    assert set(manifest["files"]) == set(uploaded) - set(gone)


@pytest.mark.parametrize("how", ["same size", "grown, not an append", "shrunk"])
def test_a_replaced_object_is_fetched_whole(
    how: str, bucket: Bucket, uploaded: dict[str, Path], tmp_path: Path
) -> None:
    mirror = bucket.mirror(tmp_path / "mirror")
    mirror.sync()
    rel = RUN_1
    old = uploaded[rel].read_bytes()
    steps = {"same size": range(50), "grown, not an append": range(80), "shrunk": range(10)}[how]
    new_file = write_scalar_file(tmp_path / "new", steps, ("rmse",))  # as long as "loss": same size
    new = new_file.read_bytes()
    assert new != old
    assert (len(new) == len(old)) == (how == "same size")
    bucket.put(f"{PREFIX}/{rel}", new)

    stats = mirror.sync()

    assert (stats.files_fetched, stats.files_replaced, stats.files_appended) == (1, 1, 0)
    # A grown object is first read from just before the old end, as an append would be; that read
    # (check bytes and new bytes) shows it is not one, and then it is read whole.
    checked = APPEND_CHECK_BYTES + len(new) - len(old) if how == "grown, not an append" else 0
    assert stats.bytes_fetched == len(new) + checked
    assert (tmp_path / "mirror" / rel).read_bytes() == new


def test_keys_that_would_leave_the_mirror_are_rejected(
    bucket: Bucket, tmp_path: Path
) -> None:
    local = tmp_path / "a" / "b" / "mirror"
    bad = ["../evil.tfevents", "../../b/evil.tfevents", "/abs.tfevents", "x/./y.tfevents", "x//y.tfevents"]
    for rel in bad:
        bucket.put(f"{PREFIX}/{rel}", b"not an event file")
    bucket.put(f"{PREFIX}/ok/events.out.tfevents.1", b"fine")

    stats = bucket.mirror(local).sync()

    assert sorted(stats.rejected) == sorted(bad)
    assert _local_files(local) == {"ok/events.out.tfevents.1": b"fine"}
    outside = [p for p in tmp_path.rglob("*evil*")] + [p for p in tmp_path.rglob("abs.tfevents")]
    assert outside == []
    assert stats.files == 1


@pytest.mark.parametrize(
    ("relpath", "safe"),
    [
        ("ds/run/events.out.tfevents.1", True),
        ("events.out.tfevents.1", True),
        ("..", False),
        ("../x", False),
        ("a/../../x", False),
        ("/etc/x", False),
        ("a//b", False),
        ("a/./b", False),
        ("a/b/", False),
        ("", False),
        ("a\x00b", False),
    ],
)
def test_safe_relpath(relpath: str, safe: bool) -> None:
    assert (safe_relpath(relpath) == relpath) is safe


def test_only_event_files_and_no_tbhub_working_names(bucket: Bucket, tmp_path: Path) -> None:
    for key, body in {
        "ds/run/events.out.tfevents.1": b"a",
        "ds/run/notes.txt": b"b",
        "ds/.tbhub-trash-run/events.out.tfevents.2": b"c",
        "ds/run/.tbhub-part-x/events.out.tfevents.3": b"d",
    }.items():
        bucket.put(f"{PREFIX}/{key}", body)
    stats = bucket.mirror(tmp_path / "m").sync()
    assert _local_files(tmp_path / "m") == {"ds/run/events.out.tfevents.1": b"a"}
    assert stats.rejected == ()


def test_a_sync_killed_midway_is_finished_by_the_next(
    bucket: Bucket, uploaded: dict[str, Path], tmp_path: Path
) -> None:
    """What a kill can leave: a temporary file, an append cut short, a stray file; the next sync repairs."""
    folder = tmp_path / "mirror"
    bucket.mirror(folder).sync()
    rel = RUN_1
    with open(folder / rel, "ab") as f:
        f.write(b"\x01\x02\x03")  # half an append: the manifest still has the old size
    (folder / "ds-a" / "run-1" / ".tbhub-part-0123").write_bytes(b"partial")
    (folder / "ds-c" / "run-9").mkdir(parents=True)
    (folder / "ds-c" / "run-9" / "events.out.tfevents.stray").write_bytes(b"x")

    stats = bucket.mirror(folder).sync()

    assert stats.files_replaced == 1
    assert stats.files_removed == 1
    assert _local_files(folder) == {r: p.read_bytes() for r, p in uploaded.items()}
    assert sorted(p.name for p in folder.rglob(".tbhub-*")) == sorted([MANIFEST, ".tbhub-mirror.lock"])
    assert not (folder / "ds-c").exists()


def test_a_new_root_starts_a_new_mirror(bucket: Bucket, tmp_path: Path) -> None:
    bucket.put("one/r/events.out.tfevents.1", b"first")
    bucket.put("two/r/events.out.tfevents.1", b"other")
    bucket.mirror(tmp_path / "m", "one").sync()
    stats = bucket.mirror(tmp_path / "m", "two").sync()
    assert stats.files_replaced == 1
    assert _local_files(tmp_path / "m") == {"r/events.out.tfevents.1": b"other"}


def test_a_missing_bucket_is_a_log_root_error(bucket: Bucket, tmp_path: Path) -> None:
    mirror = Bucket(bucket.endpoint, "no-such-bucket").mirror(tmp_path / "m")
    with pytest.raises(LogRootError, match="s3://no-such-bucket/logs"):
        mirror.sync()
    assert not mirror.ready


def test_an_unreachable_store_is_a_log_root_error_and_the_mirror_stays(
    bucket: Bucket, uploaded: dict[str, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "mirror"
    bucket.mirror(folder).sync()
    before = _local_files(folder)
    options: dict[str, Any] = {
        "endpoint_url": "http://127.0.0.1:9",  # discard port: nothing listens
        "config_kwargs": {"connect_timeout": 1, "retries": {"max_attempts": 1}},
        "retries": 1,
    }
    fs, root = open_filesystem(bucket.url(), options)
    with pytest.raises(LogRootError) as error:
        Mirror(fs, root, folder, label=bucket.url()).sync()
    assert str(error.value).startswith(f"cannot list {bucket.url()}: ")
    assert "\n" not in str(error.value)
    assert _local_files(folder) == before


def test_the_mirror_keeps_remote_modification_times(
    bucket: Bucket, uploaded: dict[str, Path], tmp_path: Path
) -> None:
    bucket.mirror(tmp_path / "mirror").sync()
    fs, root = open_filesystem(bucket.url(), {"endpoint_url": bucket.endpoint})
    for rel in uploaded:
        remote = fs.info(f"{root}/{rel}")["LastModified"].timestamp()
        assert os.stat(tmp_path / "mirror" / rel).st_mtime == pytest.approx(remote, abs=1e-3)


# -- MirrorKeeper: the serving side's schedule ---------------------------------------------------------


def test_the_keeper_reports_each_sync_and_waits_an_interval(bucket: Bucket, tmp_path: Path) -> None:
    bucket.put(f"{PREFIX}/ds/run/events.out.tfevents.1", b"one")
    calls: list[tuple[str, int, bool]] = []
    plan = MirrorPlan(bucket.url(), 3600.0, lambda: bucket.mirror(tmp_path / "m"))
    keeper = MirrorKeeper({"cloud": plan}, on_sync=lambda name, stats, first: calls.append((name, stats.files, first)))
    assert keeper.status("cloud") == MirrorStatus("cloud", bucket.url(), False, None, None, None)
    assert keeper.status("local-endpoint") is None

    delay = keeper.sync_due()  # never synced: due now

    assert calls == [("cloud", 1, True)]
    assert 3500 < delay <= 3600
    status = keeper.status("cloud")
    assert status is not None and status.ready and status.error is None
    assert status.last is not None and status.last.files_fetched == 1
    keeper.sync_due()  # not due again for an hour
    assert len(calls) == 1
    keeper.sync("cloud")  # on demand
    assert calls[-1] == ("cloud", 1, False)


def test_a_failing_sync_is_an_error_on_the_status_and_is_retried(bucket: Bucket, tmp_path: Path) -> None:
    name = f"later-{bucket.name}"
    later = Bucket(bucket.endpoint, name)
    calls: list[bool] = []
    keeper = MirrorKeeper(
        {"cloud": MirrorPlan(later.url(), 3600.0, lambda: later.mirror(tmp_path / "m"))},
        on_sync=lambda _name, _stats, first: calls.append(first),
    )

    assert keeper.sync("cloud") is None
    status = keeper.status("cloud")
    assert status is not None
    assert status.error == f"log root {later.url()} does not exist"
    assert not status.ready and calls == []
    assert keeper.sync_due() <= RETRY_AFTER_S  # retried soon, not an interval later

    s3.s3_client(bucket.endpoint).create_bucket(Bucket=name)
    later.put(f"{PREFIX}/ds/run/events.out.tfevents.1", b"one")
    stats = keeper.sync("cloud")
    assert stats is not None and stats.files == 1
    status = keeper.status("cloud")
    assert status is not None and status.error is None and status.ready
    assert calls == [True]


def test_a_root_whose_filesystem_cannot_be_built_is_an_error_not_a_crash(tmp_path: Path) -> None:
    def broken() -> Mirror:
        raise ValueError("unsupported option 'regoin'")

    keeper = MirrorKeeper({"cloud": MirrorPlan("s3://b/p", 60.0, broken)})
    assert keeper.sync("cloud") is None
    status = keeper.status("cloud")
    assert status is not None
    assert status.error == "cannot open s3://b/p: ValueError: unsupported option 'regoin'"


def test_start_runs_the_first_sync_in_the_background_once(bucket: Bucket, tmp_path: Path) -> None:
    bucket.put(f"{PREFIX}/ds/run/events.out.tfevents.1", b"one")
    firsts: list[bool] = []
    done = threading.Event()

    def synced(name: str, stats: SyncStats, first: bool) -> None:
        firsts.append(first)
        done.set()

    keeper = MirrorKeeper({"cloud": MirrorPlan(bucket.url(), 3600.0, lambda: bucket.mirror(tmp_path / "m"))},
                          on_sync=synced)
    keeper.start()
    keeper.start()
    assert done.wait(60)
    status = keeper.status("cloud")
    assert status is not None and status.ready
    assert (tmp_path / "m" / "ds" / "run" / "events.out.tfevents.1").read_bytes() == b"one"
    asyncio.run(_run_briefly(keeper))  # picks up after the first sync: nothing due for an hour
    assert firsts == [True]


async def _run_briefly(keeper: MirrorKeeper) -> None:
    task = asyncio.create_task(keeper.run_forever())
    await asyncio.sleep(0.5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def test_a_key_this_disk_cannot_hold_fails_alone(bucket: Bucket, tmp_path: Path) -> None:
    long_name = "x" * 300 + ".tfevents"  # longer than a file name may be (255 bytes)
    bucket.put(f"{PREFIX}/ds/{long_name}", b"too long")
    bucket.put(f"{PREFIX}/ds/run/events.out.tfevents.1", b"fine")
    stats = bucket.mirror(tmp_path / "m").sync()
    assert _local_files(tmp_path / "m") == {"ds/run/events.out.tfevents.1": b"fine"}
    assert len(stats.errors) == 1 and stats.errors[0].startswith(f"ds/{long_name}: OSError")
    assert stats.files == 1


@pytest.mark.parametrize("marker", [DELETE_MARKER, RESTORE_MARKER])
def test_a_run_marked_for_deletion_or_being_restored_is_not_mirrored(
    bucket: Bucket, tmp_path: Path, marker: str
) -> None:
    """A ``clean`` or ``restore`` in progress on the bucket marks its run: TensorBoard must not read a
    half-deleted or half-restored run, so the mirror drops it until the marker goes."""
    for key in ("ds/keep/events.out.tfevents.1", "ds/busy/events.out.tfevents.2", "ds/busy/sub/events.out.tfevents.3"):
        bucket.put(f"{PREFIX}/{key}", key.encode())
    mirror = bucket.mirror(tmp_path / "m")
    mirror.sync()
    assert set(_local_files(tmp_path / "m")) == {
        "ds/keep/events.out.tfevents.1", "ds/busy/events.out.tfevents.2", "ds/busy/sub/events.out.tfevents.3"}

    bucket.put(f"{PREFIX}/ds/busy/{marker}", b"{}")
    stats = mirror.sync()
    assert set(_local_files(tmp_path / "m")) == {"ds/keep/events.out.tfevents.1"}
    assert stats.files_removed == 2
    assert not (tmp_path / "m" / "ds" / "busy").exists()

    bucket.delete(f"{PREFIX}/ds/busy/{marker}")
    mirror.sync()
    assert _local_files(tmp_path / "m")["ds/busy/sub/events.out.tfevents.3"] == b"ds/busy/sub/events.out.tfevents.3"


def test_one_etag_reader_for_the_scanner_and_the_mirror(tmp_path: Path) -> None:
    from tbhub.adapters.storage.mirror.listing import object_etag
    from tbhub.adapters.storage.mirror.manifest import ObjectState, load_manifest, save_manifest
    from tbhub.adapters.storage.objectstore import content_tag

    for info in ({"ETag": '"abc"'}, {"etag": "abc"}, {"md5Hash": "abc"}, {"crc32c": "abc"}):
        assert object_etag(info) == content_tag(info) == "abc"
    assert object_etag({"size": 3}) is None
    # A manifest written before (S3's quotes kept) reads as the one reader lists: no re-fetch after an upgrade.
    path = tmp_path / "manifest.json"
    save_manifest(path, "s3://b/p", {"a/events": ObjectState(3, '"abc"', 1.0)})
    assert load_manifest(path, "s3://b/p") == {"a/events": ObjectState(3, "abc", 1.0)}
