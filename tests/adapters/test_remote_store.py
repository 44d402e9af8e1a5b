"""The object-storage log store against a real S3-compatible server (moto_server on 127.0.0.1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from s3 import read_object, upload_tree
from tbhub.adapters.storage.remote import is_url, open_filesystem
from tbhub.config import load_config
from tbhub.errors import ConfigError, LogRootError


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
