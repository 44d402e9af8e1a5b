"""One read per byte: a root ``serve`` mirrors is scanned and parsed from its mirror, behind real latency.

moto_server sits behind the latency proxy (``tests/latency_proxy.py``, 10 ms each way), which counts
every request: a scan of the mirrored root sends none, and its index rows are the ones a direct scan
of the bucket (what the CLI does) writes, so neither rescans what the other read.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from eventfiles import scalar_event, write_events, write_scalar_file
from latency_proxy import LatencyProxy
from s3 import s3_client, upload_tree
from tbhub.adapters.crc import crc32c
from tbhub.adapters.db.store import StateStore, open_state
from tbhub.adapters.scalar_decoder import ProtobufDecoder
from tbhub.adapters.storage.local import LocalLogStore
from tbhub.adapters.storage.mirror import Mirror, MirroredLogStore
from tbhub.adapters.storage.objectstore import ObjectLogStore
from tbhub.adapters.storage.remote import open_filesystem
from tbhub.app.scalars import parse_files, stale_files
from tbhub.core.inventory import scan_endpoint
from tbhub.core.models import EndpointSpec, RunSummary

PREFIX = "team/logs"


def _tree(root: Path) -> Path:
    write_scalar_file(root / "alpaca" / "r1" / "train", range(400), ("loss", "lr"))
    write_scalar_file(root / "alpaca" / "r1" / "eval", range(0, 400, 20), ("eval/loss",))
    write_scalar_file(root / "alpaca" / "r2", range(250), ("loss",))
    write_scalar_file(root / "dolly" / "r3", range(90), ("loss",), name="events.out.tfevents.9.host.1.0.v2", v2=True)
    return root


def _counts(runs: list[RunSummary]) -> list[tuple[object, ...]]:
    return [(r.relpath, r.event_count, r.first_step, r.last_step, r.size_bytes, r.event_files) for r in runs]


@pytest.fixture
def proxy(s3_endpoint: str) -> Iterator[LatencyProxy]:
    with LatencyProxy.to(s3_endpoint, delay_ms=10) as running:
        yield running


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateStore]:
    store = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    yield store
    store.dispose()


def _setup(tmp_path: Path, s3_endpoint: str, bucket: str, proxy: LatencyProxy) -> tuple[Path, str, Path]:
    local = _tree(tmp_path / "local")
    upload_tree(s3_endpoint, local, bucket, PREFIX)
    url = f"s3://{bucket}/{PREFIX}"
    fs, root = open_filesystem(url, {"endpoint_url": proxy.url})
    folder = tmp_path / "mirror"
    Mirror(fs, root, folder, label=url).sync()
    return local, url, folder


def test_a_mirrored_root_is_scanned_from_its_mirror_without_a_request(
    s3_endpoint: str, s3_bucket: str, proxy: LatencyProxy, state: StateStore, tmp_path: Path
) -> None:
    local, url, folder = _setup(tmp_path, s3_endpoint, s3_bucket, proxy)
    options = {"endpoint_url": proxy.url}
    spec = EndpointSpec("bucket", url, reload_interval=30)
    disk = scan_endpoint(EndpointSpec("disk", str(local), reload_interval=30), LocalLogStore(local), state,
                         crc32c=crc32c)

    proxy.reset()
    mirrored = MirroredLogStore(url, options, folder)
    scan = scan_endpoint(spec, mirrored, state, crc32c=crc32c)
    assert proxy.stats()["total_requests"] == 0  # discovery from the manifest, bytes from the disk
    assert mirrored.from_mirror and scan.files_read == scan.files == 4
    assert _counts(scan.runs) == _counts(disk.runs)

    # The CLI scans the bucket itself: the same identities, so nothing is read again...
    direct = ObjectLogStore(url, options)
    assert direct.discover().files == MirroredLogStore(url, options, folder).discover().files
    cli = scan_endpoint(spec, direct, state, crc32c=crc32c)
    assert (cli.files_read, direct.objects_opened) == (0, 0)
    assert _counts(cli.runs) == _counts(disk.runs)
    requests = proxy.stats()["requests"]
    assert set(requests) == {"LIST"}  # ...and only listings crossed the network


def test_a_direct_cold_scan_agrees_with_the_mirror(
    s3_endpoint: str, s3_bucket: str, proxy: LatencyProxy, tmp_path: Path
) -> None:
    _, url, folder = _setup(tmp_path, s3_endpoint, s3_bucket, proxy)
    options = {"endpoint_url": proxy.url}
    spec = EndpointSpec("bucket", url, reload_interval=30)
    runs = {}
    for name, store in (("mirror", MirroredLogStore(url, options, folder)), ("bucket", ObjectLogStore(url, options))):
        db = open_state(f"sqlite:///{tmp_path / f'{name}.db'}")
        proxy.reset()
        try:
            runs[name] = scan_endpoint(spec, store, db, crc32c=crc32c, remote_readers=4).runs
        finally:
            db.dispose()
    assert runs["mirror"] == runs["bucket"]  # every field, identities and mtimes included
    # The direct scan: one listing, then ranged GETs only (no HEAD per object: sizes come listed).
    requests = proxy.stats()["requests"]
    assert requests["LIST"] == 1 and requests["GET"] >= 4 and set(requests) == {"LIST", "GET"}


def test_the_scalar_reader_reads_the_mirror_and_the_bucket_only_for_what_it_lacks(
    s3_endpoint: str, s3_bucket: str, proxy: LatencyProxy, state: StateStore, tmp_path: Path
) -> None:
    local, url, folder = _setup(tmp_path, s3_endpoint, s3_bucket, proxy)
    options = {"endpoint_url": proxy.url}
    spec = EndpointSpec("bucket", url, reload_interval=30)
    # The index is a step ahead of the mirror for one file (the CLI scanned the bucket after it grew).
    grown = local / "alpaca" / "r2" / next((local / "alpaca" / "r2").glob("events*")).name
    write_events(grown, [scalar_event(step, 0.1) for step in range(250, 260)], append=True)
    s3_client(s3_endpoint).upload_file(str(grown), s3_bucket, f"{PREFIX}/{grown.relative_to(local).as_posix()}")
    runs = scan_endpoint(spec, ObjectLogStore(url, options), state, crc32c=crc32c).runs

    store = MirroredLogStore(url, options, folder)
    stale = stale_files({}, runs)
    local_reads = store.use_local(entry for entry, _ in stale)
    assert sorted(local_reads) == sorted(e.relpath for e, _ in stale if "r2" not in e.relpath)
    proxy.reset()
    states = [s for batch in parse_files(store, stale, ProtobufDecoder()) for s in batch]
    assert proxy.stats()["requests"].get("GET", 0) >= 1  # r2's new version, from the bucket
    assert store.objects_opened == 1 and store.bytes_fetched == grown.stat().st_size
    last = {s.relpath: max(t.last_step for t in s.tags.values()) for s in states}
    assert last[grown.relative_to(local).as_posix()] == 259
    assert len(states) == 4


def test_a_file_of_small_records_is_read_ahead_and_large_payloads_are_skipped(
    s3_endpoint: str, s3_bucket: str, proxy: LatencyProxy, tmp_path: Path
) -> None:
    """Behind latency a round trip costs more than bytes: reads that go on where the last ended fetch
    ahead (doubling to 4 MiB), while a scan seeking over large payloads still fetches only headers."""
    from eventfiles import file_version_event

    small = write_scalar_file(tmp_path / "src" / "ds" / "small", range(40_000), ("loss", "lr"))
    write_events(tmp_path / "src" / "ds" / "big" / "events.out.tfevents.1.img",
                 [file_version_event(), *([b"\x08" * 300_000] * 12), scalar_event(9, 0.5)])
    upload_tree(s3_endpoint, tmp_path / "src", s3_bucket, PREFIX)
    url = f"s3://{s3_bucket}/{PREFIX}"
    spec = EndpointSpec("bucket", url, reload_interval=30)
    store = ObjectLogStore(url, {"endpoint_url": proxy.url})
    db = open_state("sqlite://")
    try:
        proxy.reset()
        scan = scan_endpoint(spec, store, db, crc32c=crc32c, remote_readers=1)
    finally:
        db.dispose()
    assert {r.relpath: r.event_count for r in scan.runs} == {"ds/small": 80_001, "ds/big": 14}
    size = small.stat().st_size
    assert size > 2_000_000
    # Without read-ahead the small-record file alone takes a 64-256 KiB window per GET (> 10 GETs).
    gets = proxy.stats()["requests"]["GET"]
    assert gets <= 5 + 14, gets
    big = 13 * 300_000
    assert store.bytes_fetched < size + big / 2  # the payloads were seeked over, not fetched


def test_serve_reads_mirrored_roots_from_the_mirror_and_the_cli_from_the_bucket(
    s3_endpoint: str, s3_bucket: str, proxy: LatencyProxy, tmp_path: Path
) -> None:
    from tbhub.app.hub import endpoint_mirror
    from tbhub.app.inventory import scan_endpoints
    from tbhub.app.services import Services
    from tbhub.config import load_config

    _tree(tmp_path / "local")
    upload_tree(s3_endpoint, tmp_path / "local", s3_bucket, PREFIX)
    (tmp_path / "tbhub.toml").write_text(
        f'[state]\ndir = "{tmp_path / "state"}"\n[s3]\nendpoint_url = "{proxy.url}"\nsync_requests = 7\n'
        f'[endpoints.cloud]\nlogdir = "s3://{s3_bucket}/{PREFIX}"\n')
    config = load_config(tmp_path / "tbhub.toml")
    assert isinstance(Services(config).store("cloud"), ObjectLogStore)
    assert not isinstance(Services(config).store("cloud"), MirroredLogStore)  # the CLI reads the bucket

    services = Services(config, mirrored=True)
    store = services.store("cloud")
    assert isinstance(store, MirroredLogStore) and store.mirror_dir == tmp_path / "state" / "mirrors" / "cloud"
    plan = endpoint_mirror(services, services.spec("cloud"))
    mirror = plan.open()
    assert mirror.requests == 7 and not plan.ready()
    synced: list[str] = []
    services.sync_mirror = lambda name: synced.append(name) or mirror.sync()
    proxy.reset()
    (inventory,) = scan_endpoints(services, ["cloud"])  # a fresh scan: the mirror is synced first...
    assert synced == ["cloud"] and plan.ready() and store.from_mirror
    assert inventory.files == 4 and inventory.files_read == 4
    gets = proxy.stats()["requests"]["GET"]
    assert gets == 4  # ...each file fetched once, by the mirror; the scan read the local copies
