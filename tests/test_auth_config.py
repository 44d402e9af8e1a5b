"""``[auth]``: on by default; off only on loopback; no TensorBoard exposed around the login."""

from __future__ import annotations

from pathlib import Path

import pytest

from tbhub.config import load_config
from tbhub.errors import ConfigError


def _load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "tbhub.toml"
    path.write_text(f'[endpoints.a]\nlogdir = "{tmp_path}"\n' + text)
    return load_config(path)


def test_auth_is_on_by_default(tmp_path: Path) -> None:
    config = _load(tmp_path, "")
    assert config.auth.enabled and config.auth.session_seconds == 12 * 3600  # type: ignore[attr-defined]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_no_auth_on_loopback(tmp_path: Path, host: str) -> None:
    config = _load(tmp_path, f'[server]\nhost = "{host}"\n[auth]\nmode = "none"\n')
    assert not config.auth.enabled  # type: ignore[attr-defined]


def test_no_auth_refused_on_a_public_address(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r'auth\.mode = "none" is allowed only .*0\.0\.0\.0'):
        _load(tmp_path, '[server]\nhost = "0.0.0.0"\n[auth]\nmode = "none"\n')


def test_exposed_tensorboard_refused_with_auth(tmp_path: Path) -> None:
    path = tmp_path / "tbhub.toml"
    path.write_text(f'[endpoints.a]\nlogdir = "{tmp_path}"\nexpose = true\n')
    with pytest.raises(ConfigError, match="expose = true would bypass"):
        load_config(path)
    path.write_text(f'[auth]\nmode = "none"\n[endpoints.a]\nlogdir = "{tmp_path}"\nexpose = true\n')
    assert load_config(path).endpoints["a"].expose
