"""Loading: the config file (``--config``, ``$TBHUB_CONFIG`` or ``./tbhub.toml``) < command-line flags.

Every problem is a ``ConfigError`` (or ``UsageError`` for a flag) whose message names the file, the
key and the problem, and never a traceback.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tbhub.config.models import Config
from tbhub.core.archive_places import overlapping_endpoint
from tbhub.core.places import is_url
from tbhub.errors import ConfigError, UsageError

__all__ = ["load_config", "parse_logdir_flag"]


def _describe(error: ValidationError, source: str) -> str:
    # An unknown key explains the "missing" error that usually comes with it (a typo): report it first.
    errors = sorted(error.errors(), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    key = ".".join(str(p) for p in first["loc"])
    kind = first["type"]
    if kind == "extra_forbidden":
        problem = "unknown key"
    elif kind == "missing":
        problem = "required key is missing"
    else:
        problem = first["msg"].removeprefix("Value error, ")
        if "input" in first and kind.endswith("_type"):
            problem += f" (got {first['input']!r})"
    return f"{source}: {key}: {problem}" if key else f"{source}: {problem}"


def _from_mapping(data: Mapping[str, Any], source: str) -> Config:
    try:
        return Config.model_validate({**data, "source": source})
    except ValidationError as error:
        raise ConfigError(_describe(error, source)) from None


def parse_logdir_flag(value: str) -> tuple[str, str]:
    """``NAME=PATH`` → (name, path); a bare PATH is named after its folder."""
    name, sep, path = value.partition("=")
    if not sep or "://" in name:
        path = value
        if is_url(value):
            name = value.split("://", 1)[1].rstrip("/").rpartition("/")[2] or "root"
        else:
            name = Path(value).expanduser().resolve().name or "root"
    if not name or not path:
        raise UsageError(f"--logdir wants NAME=PATH, got {value!r}")
    return name, path


def load_config(
    config_file: str | Path | None = None,
    logdirs: Sequence[str] = (),
    path: str | None = None,
    *,
    cwd: Path | None = None,
) -> Config:
    """Build the config from a file (``--config``, ``$TBHUB_CONFIG``, ``./tbhub.toml``) and flags.

    ``--logdir NAME=PATH`` and a bare ``PATH`` replace the file's endpoints; the rest of the file
    (server, state, display) still applies. Raises ``ConfigError`` with one line naming the file,
    the key and the problem.
    """
    cwd = cwd or Path.cwd()
    data: dict[str, Any] = {}
    source = "<flags>"
    explicit = config_file or os.environ.get("TBHUB_CONFIG")
    candidate = Path(explicit).expanduser() if explicit else cwd / "tbhub.toml"
    if explicit or candidate.is_file():
        source = str(candidate)
        try:
            with candidate.open("rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"{source}: config file not found") from None
        except IsADirectoryError:
            raise ConfigError(f"{source}: is a folder, not a config file") from None
        except PermissionError:
            raise ConfigError(f"{source}: permission denied") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{source}: not valid TOML: {error}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{source}: not valid TOML: not UTF-8 text") from None
        except RecursionError:
            # tomllib parses nested arrays and inline tables recursively: a few KB of "[[[[..." exhaust
            # the stack. No real config nests more than a few levels.
            raise ConfigError(f"{source}: not valid TOML: nested too deeply") from None
    flag_endpoints: dict[str, dict[str, Any]] = {}
    for value in [*logdirs, *([path] if path else [])]:
        name, logdir = parse_logdir_flag(value)
        if name in flag_endpoints:
            raise UsageError(f"endpoint {name!r} given twice")
        flag_endpoints[name] = {"logdir": logdir if is_url(logdir) else str(Path(logdir).expanduser())}
    if flag_endpoints:
        file_endpoints = data.get("endpoints", {}) if isinstance(data.get("endpoints"), dict) else {}
        for name, spec in flag_endpoints.items():
            # Keep a configured port etc. when a flag names a known endpoint.
            old = file_endpoints.get(name)
            if isinstance(old, dict):
                flag_endpoints[name] = {**old, **spec}
        data = {**data, "endpoints": flag_endpoints}
    config = _from_mapping(data, source)
    base = candidate.parent if source != "<flags>" else cwd
    endpoints = {
        name: e.model_copy(update={"logdir": _absolute(e.logdir, base)})
        for name, e in config.endpoints.items()
    }
    config = config.model_copy(update={"endpoints": endpoints})
    _check_archive_places(config, source)
    return config


def _check_archive_places(config: Config, source: str) -> None:
    """Every configured ``archive_to`` must lie outside every log root (and hold none): retention
    would otherwise archive runs into a folder that a later cleanup deletes."""
    roots = {name: e.logdir for name, e in config.endpoints.items()}
    for name, policy in config.retention.policies.items():
        places = [(f"retention.{name}.archive_to", policy.archive_to)]
        places += [(f"retention.{name}.datasets.{g}.archive_to", r.archive_to) for g, r in policy.datasets.items()]
        for key, place in places:
            endpoint = overlapping_endpoint(place, roots) if place else None
            if endpoint is not None:
                raise ConfigError(
                    f"{source}: {key}: {place!r} overlaps the log root of endpoint {endpoint!r} "
                    f"({roots[endpoint]}): archive outside every log root"
                )


def _absolute(logdir: str, base: Path) -> str:
    if is_url(logdir):
        return logdir
    p = Path(logdir).expanduser()
    return str(p if p.is_absolute() else (base / p))
