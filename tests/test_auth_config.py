"""``[auth]``: on by default; off only on loopback; no TensorBoard exposed around the login."""

from __future__ import annotations

import re
import subprocess
import sys
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


def test_trusted_proxies_take_addresses_and_networks(tmp_path: Path) -> None:
    config = _load(tmp_path, '[auth]\ntrusted_proxies = ["10.9.9.9", " 10.0.0.0/8", "::1", "fd00::/8"]\n')
    assert config.auth.trusted_proxies == ["10.9.9.9", "10.0.0.0/8", "::1", "fd00::/8"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("entry", ["proxy.internal", "10.0.0.0/33", "10.9.9", "", "*"])
def test_an_invalid_trusted_proxy_is_a_config_error(tmp_path: Path, entry: str) -> None:
    with pytest.raises(ConfigError, match=rf"auth\.trusted_proxies: '{re.escape(entry)}' is not an IP address"):
        _load(tmp_path, f'[auth]\ntrusted_proxies = ["10.9.9.9", "{entry}"]\n')


def test_an_invalid_trusted_proxy_exits_2_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "tbhub.toml"
    path.write_text(f'[endpoints.a]\nlogdir = "{tmp_path}"\n[auth]\ntrusted_proxies = ["10.9.9.9/24x"]\n')
    done = subprocess.run([sys.executable, "-m", "tbhub", "runs", "-c", str(path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "'10.9.9.9/24x' is not an IP address" in done.stderr
