"""The mirror behind real latency (moto_server behind ``tests/latency_proxy.py``): what crosses the
network for an append, and syncs killed (SIGKILL, a separate process) at random moments."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventfiles import file_version_event, scalar_event, write_events
from latency_proxy import LatencyProxy
from s3 import read_object, s3_client, upload_tree
from tbhub.adapters.storage.mirror import APPEND_CHECK_BYTES, MANIFEST, Mirror, MirroredLogStore
from tbhub.adapters.storage.remote import open_filesystem

PREFIX = "logs"
#: Ranged GETs of this much in the tests, so a killed sync leaves files half-fetched.
PART = 64 * 1024

SYNC = """
import sys
from tbhub.adapters.storage.mirror import Mirror
from tbhub.adapters.storage.remote import open_filesystem
url, endpoint, folder = sys.argv[1:4]
fs, root = open_filesystem(url, {"endpoint_url": endpoint})
print("started", flush=True)
Mirror(fs, root, folder, requests=3, part_bytes=int(sys.argv[4])).sync()
print("done", flush=True)
"""


def _event_file(path: Path, records: int, seed: int) -> Path:
    rng = random.Random(seed)
    payloads = [file_version_event()] + [scalar_event(step, rng.random()) + rng.randbytes(2000)
                                         for step in range(records)]
    return write_events(path, payloads)


def _tree(root: Path, files: int = 6, records: int = 150) -> dict[str, Path]:
    out = {}
    for i in range(files):
        path = _event_file(root / f"ds{i % 2}" / f"run{i}" / f"events.out.tfevents.{i}.host", records, i)
        out[path.relative_to(root).as_posix()] = path
    return out


@pytest.fixture
def proxy(s3_endpoint: str) -> Iterator[LatencyProxy]:
    # 10 ms each way and 16 Mbit/s: a sync of the tree takes a second or two, long enough to be killed.
    with LatencyProxy.to(s3_endpoint, delay_ms=10, bandwidth_mbps=16) as running:
        yield running


def _remote(endpoint: str, bucket: str, rel: str) -> bytes:
    return read_object(endpoint, bucket, f"{PREFIX}/{rel}")


def _check_served(folder: Path, remote: dict[str, bytes], complete: set[str]) -> int:
    """What a reader of the mirror may see after a kill: the bytes it holds, checked.

    Every event file is a prefix of its object, and whole if it is one of ``complete`` (it had no copy
    before: new files appear only complete); every part file is a prefix too; the manifest (what the
    scanner reads) describes only bytes that are there and right. Returns the bytes held."""
    held = 0
    for path in folder.rglob("*"):
        if not path.is_file() or path.name in (MANIFEST, ".tbhub-mirror.lock"):
            continue
        data = path.read_bytes()
        if "tfevents" in path.name:
            rel = path.relative_to(folder).as_posix()
            want = remote[rel]
            assert want.startswith(data), f"{rel} is not a prefix of its object"
            if rel in complete:
                assert data == want, f"{rel}: a half-written new file is visible"
        else:
            assert path.name.startswith(".tbhub-part-"), path
            assert any(want.startswith(data) for want in remote.values()), f"{path.name} holds foreign bytes"
        held += len(data)
    manifest_path = folder / MANIFEST
    if manifest_path.exists():
        for rel, entry in json.loads(manifest_path.read_text())["files"].items():
            local = (folder / rel).read_bytes()
            assert len(local) >= entry["size"] and local[: entry["size"]] == remote[rel][: entry["size"]]
    return held


def _killed_sync(url: str, proxy: LatencyProxy, folder: Path, after: float) -> bool:
    """Start a sync in another process and SIGKILL it ``after`` seconds in; whether it had finished."""
    proc = subprocess.Popen([sys.executable, "-c", SYNC, url, proxy.url, str(folder), str(PART)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
        time.sleep(after)
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in err, err
    return "done" in out


def _mirror(url: str, proxy: LatencyProxy, folder: Path) -> Mirror:
    fs, root = open_filesystem(url, {"endpoint_url": proxy.url})
    return Mirror(fs, root, folder, label=url, requests=3, part_bytes=PART)


def test_an_append_costs_the_appended_bytes_and_the_overlap_check(
    s3_endpoint: str, s3_bucket: str, proxy: LatencyProxy, tmp_path: Path
) -> None:
    files = _tree(tmp_path / "src")
    upload_tree(s3_endpoint, tmp_path / "src", s3_bucket, PREFIX)
    url = f"s3://{s3_bucket}/{PREFIX}"
    mirror = _mirror(url, proxy, tmp_path / "mirror")
    mirror.sync()
    appended = 0
    grown = sorted(files)[:3]
    for i, rel in enumerate(grown):
        before = files[rel].stat().st_size
        write_events(files[rel], [scalar_event(1000 + step, 0.5) + bytes(1000) for step in range(20 + i)], append=True)
        appended += files[rel].stat().st_size - before
        s3_client(s3_endpoint).upload_file(str(files[rel]), s3_bucket, f"{PREFIX}/{rel}")

    proxy.reset()
    stats = mirror.sync()
    sent = proxy.stats()

    assert stats.files_appended == 3 and stats.files_fetched == 0
    assert stats.bytes_fetched == appended + 3 * APPEND_CHECK_BYTES
    # On the wire: one listing and one ranged GET per grown file; the rest is HTTP headers.
    assert sent["requests"] == {"LIST": 1, "GET": 3}
    assert stats.bytes_fetched < sent["bytes_down"] < stats.bytes_fetched + 4 * 2048
    for rel in grown:
        assert (tmp_path / "mirror" / rel).read_bytes() == files[rel].read_bytes()


def test_a_sync_killed_at_random_moments_resumes_without_fetching_again(
    s3_endpoint: str, s3_bucket: str, proxy: LatencyProxy, tmp_path: Path
) -> None:
    files = _tree(tmp_path / "src")
    upload_tree(s3_endpoint, tmp_path / "src", s3_bucket, PREFIX)
    url = f"s3://{s3_bucket}/{PREFIX}"
    remote = {rel: path.read_bytes() for rel, path in files.items()}
    total = sum(len(b) for b in remote.values())
    folder = tmp_path / "mirror"

    started = time.monotonic()
    _mirror(url, proxy, tmp_path / "timing").sync()
    full = time.monotonic() - started
    rng = random.Random(20)

    # First syncs killed at random moments: new files appear only whole; the next sync continues.
    midway = 0
    for attempt in range(3):
        folder = tmp_path / f"mirror{attempt}"
        _killed_sync(url, proxy, folder, rng.uniform(0.15, 0.7) * full)
        held = _check_served(folder, remote, complete=set(remote))
        midway += 0 < held < total
        # Until a sync completes, the scanner reads the bucket, not a half-made mirror.
        store = MirroredLogStore(url, {"endpoint_url": proxy.url}, folder)
        assert len(store.discover().files) == len(remote) and store.from_mirror == (folder / MANIFEST).exists()
        continued = sum(1 for p in folder.rglob("*") if p.is_file() and p.name != ".tbhub-mirror.lock")

        stats = _mirror(url, proxy, folder).sync()
        # What it had is not fetched again: only the rest, plus the overlap check of each continued file.
        assert total - held <= stats.bytes_fetched <= total - held + continued * APPEND_CHECK_BYTES
        assert {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*tfevents*")} == remote
        assert sorted(p.name for p in folder.rglob(".tbhub-*")) == sorted([MANIFEST, ".tbhub-mirror.lock"])
    assert midway, "no kill landed in the middle of a sync"

    # Incremental syncs killed while appending: the manifest's bytes stay right, the rest continues.
    for rel in sorted(files)[:4]:
        write_events(files[rel], [scalar_event(5000 + s, 0.5) + bytes(3000) for s in range(60)], append=True)
        s3_client(s3_endpoint).upload_file(str(files[rel]), s3_bucket, f"{PREFIX}/{rel}")
    grown = {rel: path.read_bytes() for rel, path in files.items()}
    new_bytes = sum(len(grown[rel]) - len(remote[rel]) for rel in files)
    _killed_sync(url, proxy, folder, rng.uniform(0.05, 0.5))
    held = _check_served(folder, grown, complete=set())
    proxy.reset()
    stats = _mirror(url, proxy, folder).sync()
    already = held - total  # appended bytes the killed sync had written
    assert new_bytes - already <= stats.bytes_fetched <= new_bytes - already + 4 * APPEND_CHECK_BYTES
    assert {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*tfevents*")} == grown


def test_the_keeper_tells_readers_to_wait_for_the_first_sync_and_when_a_sync_changed_something(
    s3_endpoint: str, s3_bucket: str, proxy: LatencyProxy, tmp_path: Path
) -> None:
    from tbhub.adapters.storage.mirror import MirrorKeeper, MirrorPlan

    _tree(tmp_path / "src", files=2, records=10)
    upload_tree(s3_endpoint, tmp_path / "src", s3_bucket, PREFIX)
    url = f"s3://{s3_bucket}/{PREFIX}"
    folder = tmp_path / "mirror"
    keeper = MirrorKeeper({
        "ok": MirrorPlan(url, 60.0, lambda: _mirror(url, proxy, folder), ready=lambda: (folder / MANIFEST).exists()),
        "broken": MirrorPlan("s3://nowhere", 60.0, lambda: _mirror("s3://no-such-bucket/x", proxy, tmp_path / "b")),
    })
    assert keeper.pending("ok") and keeper.pending("broken") and not keeper.pending("not-mirrored")
    assert keeper.generation("ok") == 0

    keeper.sync("broken")
    assert not keeper.pending("broken")  # it failed: readers go to the bucket rather than wait forever
    keeper.sync("ok")
    assert not keeper.pending("ok") and keeper.generation("ok") == 1
    keeper.sync("ok")
    assert keeper.generation("ok") == 1  # nothing changed: nothing new to scan
    s3_client(s3_endpoint).put_object(Bucket=s3_bucket, Key=f"{PREFIX}/ds9/new/events.out.tfevents.9", Body=b"x")
    keeper.sync("ok")
    assert keeper.generation("ok") == 2

    # A later process finds the mirror of an earlier one: its readers need not wait.
    again = MirrorKeeper({"ok": MirrorPlan(url, 60.0, lambda: _mirror(url, proxy, folder),
                                           ready=lambda: (folder / MANIFEST).exists())})
    assert not again.pending("ok")
