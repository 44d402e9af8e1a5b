"""The object-storage log store against a real S3-compatible server (moto_server on 127.0.0.1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventfiles import (
    UNICODE_RUN,
    corrupt_header,
    file_version_event,
    scalar_event,
    truncate_at,
    write_events,
    write_scalar_file,
    write_tf2_run,
)
from s3 import list_keys, read_object, s3_client, upload_tree
from tbhub.adapters.crc import crc32c
from tbhub.adapters.db.store import open_state
from tbhub.adapters.storage.objectstore import DELETE_MARKER, ObjectLogStore
from tbhub.adapters.storage.remote import is_url, open_filesystem
from tbhub.app.inventory import scan_endpoints
from tbhub.app.services import Services
from tbhub.config import load_config
from tbhub.core.inventory import scan_endpoint
from tbhub.core.models import EndpointSpec, RunSummary
from tbhub.core.scanner import scan_event_file
from tbhub.errors import ConfigError, LogRootError, UnsafePathError


def test_is_url() -> None:
    assert is_url("s3://bucket/prefix")
    assert is_url("gs://bucket")
    assert not is_url("/data/logs")
    assert not is_url("logs/s3://x")


def test_open_filesystem_reads_what_was_uploaded(s3_endpoint: str, s3_bucket: str, tmp_path: Path) -> None:
    (tmp_path / "ds" / "run").mkdir(parents=True)
    (tmp_path / "ds" / "run" / "events.out.tfevents.1").write_bytes(b"abc")
    assert upload_tree(s3_endpoint, tmp_path, s3_bucket, "logs") == ["logs/ds/run/events.out.tfevents.1"]
    fs, root = open_filesystem(f"s3://{s3_bucket}/logs/", {"endpoint_url": s3_endpoint})
    assert root == f"{s3_bucket}/logs"
    assert fs.cat(f"{root}/ds/run/events.out.tfevents.1") == b"abc"


def test_endpoint_from_the_aws_environment(
    s3_endpoint: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no endpoint_url in the config, botocore's own AWS_ENDPOINT_URL is honoured."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    config = load_config(logdirs=[f"logs=s3://{s3_bucket}/p"])
    assert config.endpoints["logs"].logdir == f"s3://{s3_bucket}/p"
    fs, root = open_filesystem(config.endpoints["logs"].logdir, config.storage_options("logs"))
    fs.pipe(f"{root}/x", b"1")
    assert read_object(s3_endpoint, s3_bucket, "p/x") == b"1"


def test_storage_options_from_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "secret").write_text("s3cr3t\n")
    (tmp_path / "tbhub.toml").write_text(
        '[s3]\nendpoint_url = "http://127.0.0.1:9000"\nregion = "eu-west-1"\naccess_key_id_env = "MY_KEY"\n'
        f'secret_access_key_file = "{tmp_path / "secret"}"\n'
        '[endpoints.a]\nlogdir = "s3://a/x"\n'
        '[endpoints.b]\nlogdir = "s3://b/y"\n[endpoints.b.s3]\nendpoint_url = "http://other:9000"\n'
    )
    monkeypatch.setenv("MY_KEY", "AKIAKEY")
    config = load_config(tmp_path / "tbhub.toml")
    assert config.storage_options("a") == {
        "endpoint_url": "http://127.0.0.1:9000",
        "client_kwargs": {"region_name": "eu-west-1"},
        "key": "AKIAKEY",
        "secret": "s3cr3t",
    }
    assert config.storage_options("b")["endpoint_url"] == "http://other:9000"
    assert config.storage_options("b")["key"] == "AKIAKEY"  # inherited from [s3]
    monkeypatch.delenv("MY_KEY")
    with pytest.raises(ConfigError, match=r"s3\.access_key_id_env: environment variable MY_KEY is not set"):
        config.storage_options("a")


def test_unknown_protocol_is_a_log_root_error() -> None:
    with pytest.raises(LogRootError, match="unknown storage protocol nosuch://"):
        open_filesystem("nosuch://bucket/x", {})


# -- the object-storage LogStore ---------------------------------------------------------------------


def build_tree(root: Path) -> Path:
    """A log root with every shape the scanner meets: v1 and TF2 runs, sub-runs, a loose event file,
    a truncated file, a damaged header, large payloads, and files that are not event files."""
    write_scalar_file(root / "alpaca" / "fresh", range(300), ("loss", "acc"))
    write_tf2_run(root / "dolly" / "tf2")
    write_scalar_file(root / UNICODE_RUN.rsplit("/", 1)[0], range(5))
    loose = write_scalar_file(root / "alpaca", range(7), name="events.out.tfevents.1700000001.loose")
    truncated = write_scalar_file(root / "alpaca" / "cut", range(40))
    truncate_at(truncated, truncated.stat().st_size - 5)
    damaged = write_scalar_file(root / "dolly" / "damaged", range(30))
    corrupt_header(damaged, record=12)
    # 20 records of 200 KB: a header-only scan must seek over these, not download them.
    write_events(root / "images" / "big" / "events.out.tfevents.1700000002.img",
                 [file_version_event(), scalar_event(0, 1.0), *([b"\x08" * 200_000] * 20), scalar_event(9, 0.5)])
    (root / "alpaca" / "fresh" / "config.yaml").write_text("lr: 0.1\n")
    assert loose.exists()
    return root


def _comparable(runs: list[RunSummary]) -> list[tuple[object, ...]]:
    """Everything of a run but the storage identity (inode vs ETag) and mtimes."""
    return [
        (r.dataset, r.run, r.relpath, r.size_bytes, r.event_files, r.event_count, r.first_step, r.last_step,
         r.first_wall_time, r.last_wall_time, r.truncated,
         [(f.relpath, f.records, f.scanned_offset, f.truncated, f.corrupt) for f in r.files])
        for r in runs
    ]


@pytest.fixture
def s3_tree(s3_endpoint: str, s3_bucket: str, tmp_path: Path) -> tuple[Path, str]:
    local = build_tree(tmp_path / "local")
    upload_tree(s3_endpoint, local, s3_bucket, "team/logs")
    return local, f"s3://{s3_bucket}/team/logs"


def test_scan_of_s3_equals_the_local_scan(s3_endpoint: str, s3_tree: tuple[Path, str], tmp_path: Path) -> None:
    local, url = s3_tree
    (tmp_path / "tbhub.toml").write_text(f'[s3]\nendpoint_url = "{s3_endpoint}"\n')
    config = load_config(tmp_path / "tbhub.toml", logdirs=[f"disk={local}", f"bucket={url}"])
    (disk, remote) = scan_endpoints(Services(config), ["disk", "bucket"], workers=1)
    assert remote.runs, "nothing found in the bucket"
    assert _comparable(remote.runs) == _comparable(disk.runs)
    assert remote.files == disk.files == 8
    assert {r.relpath for r in remote.runs if r.truncated} == {"alpaca/cut"}
    assert [c.relpath for r in remote.runs for c, _ in [(r, r.corrupt)] if r.corrupt] == ["dolly/damaged"]


def test_rescan_reads_nothing_until_an_object_is_replaced(
    s3_endpoint: str, s3_bucket: str, s3_tree: tuple[Path, str], tmp_path: Path
) -> None:
    _, url = s3_tree
    spec = EndpointSpec("bucket", url, reload_interval=30)
    state = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        store = ObjectLogStore(url, {"endpoint_url": s3_endpoint})
        cold = scan_endpoint(spec, store, state, crc32c=crc32c)
        assert cold.files_read == 8 and store.objects_opened == 8

        again = ObjectLogStore(url, {"endpoint_url": s3_endpoint})  # a new process: only the index is kept
        warm = scan_endpoint(spec, again, state, crc32c=crc32c)
        assert (warm.files_read, again.objects_opened, again.bytes_fetched) == (0, 0, 0)
        assert _comparable(warm.runs) == _comparable(cold.runs)

        # Replace one object by a file of the same size (same key, same length, new bytes): only the
        # ETag tells it apart, and it alone is read again.
        key = "alpaca/fresh/events.out.tfevents.1700000000.host.1.0"
        original = read_object(s3_endpoint, s3_bucket, f"team/logs/{key}")
        replacement = tmp_path / "replacement"
        write_scalar_file(replacement, range(300), ("lsos", "acc"))  # a tag of the same length
        data = (replacement / "events.out.tfevents.1700000000.host.1.0").read_bytes()
        assert len(data) == len(original) and data != original
        s3_client(s3_endpoint).put_object(Bucket=s3_bucket, Key=f"team/logs/{key}", Body=data)
        third = ObjectLogStore(url, {"endpoint_url": s3_endpoint})
        rescan = scan_endpoint(spec, third, state, crc32c=crc32c)
        assert (rescan.files_read, third.objects_opened) == (1, 1)
        assert state.load("bucket")[key].inode != {f.relpath: f for r in cold.runs for f in r.files}[key].inode
    finally:
        state.dispose()


def test_a_header_only_scan_skips_large_payloads(s3_endpoint: str, s3_tree: tuple[Path, str]) -> None:
    _, url = s3_tree
    store = ObjectLogStore(url, {"endpoint_url": s3_endpoint})
    entry = next(f for f in store.discover().files if f.relpath.startswith("images/"))
    with store.open(entry.relpath) as fh:
        scan = scan_event_file(fh, entry, crc32c=crc32c)
    assert scan.records == 23 and scan.last_step == 9
    # The scanner reads one 64 KiB window per 200 KB record; s3fs's default read-ahead (5 MiB blocks)
    # would have downloaded the whole object.
    assert store.bytes_fetched < entry.size / 2, f"fetched {store.bytes_fetched} of {entry.size} bytes"


def test_paths_escaping_the_root_are_refused(s3_endpoint: str, s3_bucket: str) -> None:
    client = s3_client(s3_endpoint)
    client.put_object(Bucket=s3_bucket, Key="root/ds/../../events.out.tfevents.1", Body=b"")
    client.put_object(Bucket=s3_bucket, Key="root/ds/run/events.out.tfevents.2", Body=b"")
    client.put_object(Bucket=s3_bucket, Key="rootless/ds/run/events.out.tfevents.3", Body=b"")  # not below root/
    store = ObjectLogStore(f"s3://{s3_bucket}/root", {"endpoint_url": s3_endpoint})
    found = store.discover()
    assert [f.relpath for f in found.files] == ["ds/run/events.out.tfevents.2"]
    assert [s.relpath for s in found.skipped] == ["ds/../../events.out.tfevents.1"]
    for bad in ("../rootless/ds/run/events.out.tfevents.3", "/etc/passwd", "ds//x", ""):
        with pytest.raises(UnsafePathError):
            store.open(bad)
    assert store.local_path("ds/run/events.out.tfevents.2") is None


def test_unknown_bucket_is_a_log_root_error(s3_endpoint: str) -> None:
    store = ObjectLogStore("s3://no-such-bucket-here/logs", {"endpoint_url": s3_endpoint})
    with pytest.raises(LogRootError, match="bucket no-such-bucket-here does not exist"):
        store.discover()


def test_an_empty_prefix_is_an_empty_log_root(s3_endpoint: str, s3_bucket: str) -> None:
    store = ObjectLogStore(f"s3://{s3_bucket}/nothing/yet", {"endpoint_url": s3_endpoint})
    assert store.discover().files == []


def test_delete_run_hides_the_run_first_and_a_rerun_finishes(
    s3_endpoint: str, s3_bucket: str, s3_tree: tuple[Path, str]
) -> None:
    _, url = s3_tree
    store = ObjectLogStore(url, {"endpoint_url": s3_endpoint})
    before = {f.relpath for f in store.discover().files}
    # A delete interrupted after its marker and one object: the run is hidden, nothing else is.
    marker = store.put_marker("dolly/tf2", DELETE_MARKER, {"run": "dolly/tf2"})
    s3_client(s3_endpoint).delete_object(
        Bucket=s3_bucket, Key="team/logs/dolly/tf2/train/events.out.tfevents.1700000000.host.1.0.v2"
    )
    after = {f.relpath for f in store.discover().files}
    assert after == {p for p in before if not p.startswith("dolly/tf2/")}
    assert store.leftover_trash() == ["dolly/tf2"]
    assert store.finish_trash() == ["dolly/tf2"]
    assert list_keys(s3_endpoint, s3_bucket, "team/logs/dolly/tf2") == []
    assert marker.endswith(DELETE_MARKER) and store.leftover_trash() == []

    outcome = store.delete_run("alpaca/fresh")
    assert outcome.kind == "folder"
    assert list_keys(s3_endpoint, s3_bucket, "team/logs/alpaca/fresh") == []
    loose = store.delete_run("alpaca/events.out.tfevents.1700000001.loose")
    assert loose.kind == "file"
    assert list_keys(s3_endpoint, s3_bucket, "team/logs/alpaca/") == [
        "team/logs/alpaca/cut/events.out.tfevents.1700000000.host.1.0"
    ]
    with pytest.raises(UnsafePathError):
        store.delete_run("../team")


def test_another_fsspec_filesystem_scans_like_the_disk(tmp_path: Path) -> None:
    """Not only S3: any fsspec URL is a log root (here fsspec's in-memory filesystem, which has no
    ETags: an object's identity then comes from its size and modification time)."""
    import fsspec

    local = tmp_path / "logs"
    write_scalar_file(local / "alpaca" / "r1", range(40), ("loss", "lr"))
    write_scalar_file(local / "dolly" / "r2", range(7))
    memory = fsspec.filesystem("memory")
    root = f"/tbhub-test-{tmp_path.name}"
    for path in local.rglob("*"):
        if path.is_file():
            memory.pipe(f"{root}/{path.relative_to(local)}", path.read_bytes())
    state = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        disk = scan_endpoints(Services(load_config(None, logdirs=[f"disk={local}"]), state=state), ["disk"])[0]
        spec = EndpointSpec("memory", f"memory://{root}", reload_interval=30)
        store = ObjectLogStore(spec.logdir, {})
        scanned = scan_endpoint(spec, store, state, crc32c=crc32c)
        assert _comparable(scanned.runs) == _comparable(disk.runs) and len(scanned.runs) == 2
        again = ObjectLogStore(spec.logdir, {})
        assert scan_endpoint(spec, again, state, crc32c=crc32c).files_read == 0 and again.objects_opened == 0
    finally:
        state.dispose()
        memory.rm(root, recursive=True)
