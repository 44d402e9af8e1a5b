"""Shared fixtures: every test gets a clean environment and its own tbhub home."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# The S3 fixtures (a real moto_server, started only by tests that ask for one) for every test module.
from s3 import s3_bucket, s3_endpoint, s3_server  # noqa: F401  (pytest fixtures)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No TBHUB_* variable leaks in; state lives in a fresh temporary home; cwd has no tbhub.toml."""
    for key in list(os.environ):
        if key.startswith("TBHUB_"):
            monkeypatch.delenv(key)
    home = tmp_path_factory.mktemp("tbhub-home")
    monkeypatch.setenv("TBHUB_HOME", str(home))
    workdir = tmp_path_factory.mktemp("cwd")
    monkeypatch.chdir(workdir)
    yield home
