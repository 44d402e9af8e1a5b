"""A real S3-compatible server (moto's standalone ``moto_server``) for the test session.

``tests/conftest.py`` imports the fixtures, so every test module can ask for them:

- ``s3_server`` (session): the running :class:`S3Server` on a free 127.0.0.1 port, killed at the end.
- ``s3_endpoint`` (function): the server's URL, with the AWS environment of the test pointing at it:
  dummy credentials, ``AWS_DEFAULT_REGION=us-east-1`` and no ``AWS_ENDPOINT_URL``/profile leaking in
  (tests that want the endpoint from the environment set ``AWS_ENDPOINT_URL`` themselves).
- ``s3_bucket`` (function): a brand-new empty bucket (unique name) on that server.

Helpers: :func:`upload_tree` copies a local folder to ``s3://bucket/prefix``; :func:`list_keys`
and :func:`read_object` read back what a test wrote; :func:`s3_client` is a boto3 client.

Buckets are created with boto3 and ``us-east-1`` (s3fs's ``mkdir`` with ``region_name`` sends a
``LocationConstraint`` that moto refuses for us-east-1). moto keeps everything in memory; each test
has its own bucket, so tests never see each other's objects.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ports import free_port

__all__ = [
    "S3Server",
    "list_keys",
    "read_object",
    "running_moto",
    "s3_bucket",
    "s3_client",
    "s3_endpoint",
    "s3_server",
    "upload_tree",
]

#: The environment a test gets: fixed dummy credentials, one region, and nothing from the host.
S3_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
#: Variables that would send the test elsewhere (a real profile, a real endpoint, a session token).
S3_UNSET_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "S3_ENDPOINT",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_REGION",
)


def _moto_server_binary() -> str | None:
    beside = Path(sys.executable).parent / "moto_server"
    if beside.exists():
        return str(beside)
    return shutil.which("moto_server")


@dataclass(frozen=True)
class S3Server:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def reset(self) -> None:
        """Forget every bucket and object (moto's reset API)."""
        httpx.post(f"{self.url}/moto-api/reset", timeout=10, trust_env=False).raise_for_status()


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/moto-api/data.json", timeout=2, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class running_moto:
    """Start ``moto_server -H 127.0.0.1 -p PORT``, wait until it answers; kill and wait for it after."""

    def __init__(self, workdir: Path, timeout: float = 60.0) -> None:
        self.workdir = workdir
        self.timeout = timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_fh: Any = None

    def __enter__(self) -> S3Server:
        binary = _moto_server_binary()
        if binary is None:
            raise FileNotFoundError("moto_server not found; pip install 'moto[server]'")
        last = ""
        for _attempt in range(3):  # the free port may be taken between probing and binding
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            log = self.workdir / f"moto-{port}.log"
            self._log_fh = log.open("wb")
            env = {**os.environ, **S3_TEST_ENV}
            self._proc = subprocess.Popen(
                [binary, "-H", "127.0.0.1", "-p", str(port)],
                stdout=self._log_fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            )
            deadline = time.monotonic() + self.timeout
            while time.monotonic() < deadline and self._proc.poll() is None:
                if _answers(url):
                    return S3Server(url, self._proc, log)
                time.sleep(0.1)
            _stop(self._proc)
            self._log_fh.close()
            last = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"moto_server did not start:\n{last}")

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            _stop(self._proc)
        if self._log_fh is not None:
            self._log_fh.close()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    if _moto_server_binary() is None:
        pytest.skip("moto_server is not installed; pip install -e '.[dev]' installs moto[server]")
    with running_moto(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def s3_endpoint(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The moto server's URL; this test's AWS environment points nowhere else."""
    for key in S3_UNSET_ENV:
        monkeypatch.delenv(key, raising=False)
    for key, value in S3_TEST_ENV.items():
        monkeypatch.setenv(key, value)
    # No ~/.aws/config or credentials of the machine may change what the test sees.
    empty = tmp_path_factory.mktemp("aws")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty / "credentials"))
    return s3_server.url


def s3_client(endpoint: str) -> Any:
    """A boto3 S3 client for ``endpoint`` with the test credentials."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=S3_TEST_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_TEST_ENV["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    """A fresh, empty bucket for this test (its name; the URL is ``s3://NAME``)."""
    name = f"tbhub-test-{uuid.uuid4().hex[:20]}"
    s3_client(s3_endpoint).create_bucket(Bucket=name)
    return name


def upload_tree(endpoint: str, local: Path, bucket: str, prefix: str = "") -> list[str]:
    """Upload every file below ``local`` to ``s3://bucket/prefix/...``; returns the keys, sorted."""
    client = s3_client(endpoint)
    prefix = prefix.strip("/")
    keys = []
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        rel = path.relative_to(local).as_posix()
        key = f"{prefix}/{rel}" if prefix else rel
        client.upload_file(str(path), bucket, key)
        keys.append(key)
    return keys


def list_keys(endpoint: str, bucket: str, prefix: str = "") -> list[str]:
    """Every key in ``bucket`` under ``prefix``, sorted."""
    client = s3_client(endpoint)
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return sorted(keys)


def read_object(endpoint: str, bucket: str, key: str) -> bytes:
    body = s3_client(endpoint).get_object(Bucket=bucket, Key=key)["Body"]
    try:
        data: bytes = body.read()
    finally:
        body.close()
    return data
