from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tbhub.config import load_config
from tbhub.errors import ConfigError, UnknownEndpoint, UsageError


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_full_config_resolves_ports_and_relative_logdirs(tmp_path: Path) -> None:
    cfg_file = write(
        tmp_path / "tbhub.toml",
        '[server]\nport = 7000\n[endpoints.lora]\nlogdir = "/volume/tensorboard"\nport = 6006\n'
        '[endpoints.router]\nlogdir = "router-logs"\n[endpoints.third]\nlogdir = "/x"\n'
        '[display]\nfresh_days = 2\nold_days = 14\n',
    )
    cfg = load_config(cfg_file)
    specs = cfg.endpoint_specs()
    assert [(s.name, s.port) for s in specs] == [("lora", 6006), ("router", 6007), ("third", 6008)]
    assert specs[1].logdir == str(tmp_path / "router-logs")
    assert cfg.server.port == 7000
    assert cfg.display.old_days == 14
    assert specs[0].reload_interval == 30


def test_config_found_via_env_then_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "tbhub.toml", '[endpoints.cwd]\nlogdir = "/a"\n')
    env_file = write(tmp_path / "env.toml", '[endpoints.env]\nlogdir = "/b"\n')
    monkeypatch.chdir(tmp_path)
    assert list(load_config().endpoints) == ["cwd"]
    monkeypatch.setenv("TBHUB_CONFIG", str(env_file))
    assert list(load_config().endpoints) == ["env"]


def test_logdir_flags_and_bare_path(tmp_path: Path) -> None:
    cfg = load_config(None, ["lora=/data/lora", "router=/data/router"])
    assert {n: e.logdir for n, e in cfg.endpoints.items()} == {"lora": "/data/lora", "router": "/data/router"}
    logs = tmp_path / "my-logs"
    logs.mkdir()
    cfg = load_config(None, (), str(logs))
    assert list(cfg.endpoints) == ["my-logs"]


def test_flag_keeps_configured_port_of_same_endpoint(tmp_path: Path) -> None:
    cfg_file = write(tmp_path / "c.toml", '[endpoints.lora]\nlogdir = "/a"\nport = 6100\n')
    cfg = load_config(cfg_file, ["lora=/elsewhere"])
    assert cfg.endpoint_specs()[0].port == 6100
    assert cfg.endpoint_specs()[0].logdir == "/elsewhere"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[endpoints.a]\nlogdr = "/x"\n', "endpoints.a.logdr: unknown key"),
        ('[endpoints.a]\nport = 6006\n', "endpoints.a.logdir: required key is missing"),
        ('[endpoints.a]\nlogdir = "/x"\nport = "6006"\n', "endpoints.a.port: Input should be a valid integer"),
        ('[endpoints.a]\nlogdir = "/x"\nport = 6006\n[endpoints.b]\nlogdir = "/y"\nport = 6006\n',
         "duplicate port 6006"),
        ('[server]\nport = 6006\n[endpoints.a]\nlogdir = "/x"\nport = 6006\n', "duplicate port 6006"),
        ('[endpoints."a/b"]\nlogdir = "/x"\n', "no slash"),
        ("[endpoints.a\n", "not valid TOML"),
        ("[sever]\nport = 1\n", "sever: unknown key"),
        ('[display]\nfresh_days = 9\n', "fresh_days must not exceed old_days"),
    ],
)
def test_bad_config_names_file_key_and_problem(tmp_path: Path, text: str, expected: str) -> None:
    cfg_file = write(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigError) as info:
        load_config(cfg_file)
    message = str(info.value)
    assert message.startswith(str(cfg_file) + ": ")
    assert expected in message
    assert "\n" not in message


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")


def test_unknown_endpoint_and_no_endpoints(tmp_path: Path) -> None:
    cfg = load_config(None, ["lora=/a"])
    with pytest.raises(UnknownEndpoint, match="unknown endpoint 'router' \\(known: lora\\)"):
        cfg.endpoint_specs(["router"])
    with pytest.raises(UsageError, match="no endpoints configured"):
        load_config().endpoint_specs()


def test_bad_logdir_flag() -> None:
    with pytest.raises(UsageError, match="NAME=PATH"):
        load_config(None, ["lora="])


def test_state_dir_and_database_from_file(tmp_path: Path) -> None:
    cfg_file = write(tmp_path / "c.toml", f'[state]\ndir = "{tmp_path / "st"}"\n[endpoints.a]\nlogdir = "/x"\n')
    cfg = load_config(cfg_file)
    assert cfg.state.path == tmp_path / "st"
    assert cfg.state.url == f"sqlite:///{tmp_path / 'st' / 'tbhub.db'}"


@pytest.mark.parametrize("text", ["a = " + "[" * 2000 + "]" * 2000, "a = " + "{b = " * 1000 + "1" + "}" * 1000])
def test_deeply_nested_toml_is_one_line_and_exit_2(tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "deep.toml", text)
    with pytest.raises(ConfigError, match="not valid TOML: nested too deeply"):
        load_config(path)
    result = subprocess.run([sys.executable, "-m", "tbhub", "runs", "--config", str(path)], capture_output=True,
                            text=True, timeout=120, env={**os.environ, "TBHUB_HOME": str(tmp_path / "home")})
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert f"{path}: not valid TOML: nested too deeply" in line


# -- one owner per tunable: the settings table holds the default and the one check ---------------------


def test_reload_interval_default_comes_from_the_settings_table(tmp_path: Path) -> None:
    from tbhub.config import setting

    cfg = load_config(None, [f"a={tmp_path}"])
    assert cfg.endpoint_specs()[0].reload_interval == setting("endpoints.NAME.reload_interval").default == 30


@pytest.mark.parametrize("value", [0, -5])
def test_reload_interval_below_one_is_one_config_error(tmp_path: Path, value: int) -> None:
    # TensorBoard would read 0 as "load once, never reload": a hub that stops showing new steps.
    cfg_file = write(tmp_path / "c.toml", f'[endpoints.a]\nlogdir = "/x"\nreload_interval = {value}\n')
    with pytest.raises(ConfigError) as info:
        load_config(cfg_file)
    assert str(info.value) == (
        f"{cfg_file}: endpoints.a.reload_interval: must be a whole number of seconds, at least 1 "
        f"(got {value}); 0 would make TensorBoard load the logs once and never show new steps"
    )


def test_reload_interval_zero_is_refused_the_same_by_the_config_and_the_demo_flag(tmp_path: Path) -> None:
    env = {**os.environ, "TBHUB_HOME": str(tmp_path / "home")}
    cfg_file = write(tmp_path / "c.toml", f'[endpoints.a]\nlogdir = "{tmp_path}"\nreload_interval = 0\n')
    from_file = subprocess.run([sys.executable, "-m", "tbhub", "runs", "--config", str(cfg_file)],
                               capture_output=True, text=True, timeout=120, env=env)
    demo_dir = tmp_path / "demo"
    from_flag = subprocess.run(
        [sys.executable, "-m", "tbhub", "demo", "--dir", str(demo_dir), "--reload-interval", "0"],
        capture_output=True, text=True, timeout=120, env=env,
    )
    problem = "must be a whole number of seconds, at least 1 (got 0)"
    for result in (from_file, from_flag):
        assert result.returncode == 2, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert problem in line
    assert "endpoints.a.reload_interval:" in from_file.stderr
    assert "--reload-interval:" in from_flag.stderr
    assert not demo_dir.exists()  # refused before any demo log is written


def test_model_defaults_are_the_settings_table_defaults() -> None:
    from tbhub.config import SETTINGS, Config

    values = Config().model_dump()
    for row in SETTINGS:
        section, _, field = row.key.partition(".")
        if section in ("server", "display", "cost", "auth", "retention") and "." not in field:
            assert values[section][field] == row.default, row.key
    assert values["alerts"]["max_age"] == next(r.default for r in SETTINGS if r.key == "alerts.max_age")
