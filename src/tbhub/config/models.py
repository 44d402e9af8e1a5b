"""The config's tables as typed, frozen models; ``Config`` is the whole file.

Defaults, help and the checks shared with other layers live in ``settings.py``; the ``[s3]``,
``[retention]`` and ``[alerts]``/``[[notify]]`` tables in their own modules.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from tbhub.config.alerts import AlertsConfig, NotifyConfig
from tbhub.config.cost import CostConfig
from tbhub.config.endpoints import check_endpoint_names, check_ports, endpoint_specs, resolve_ports
from tbhub.config.retention import RetentionConfig
from tbhub.config.s3 import S3Config
from tbhub.config.section import Section
from tbhub.config.settings import LOOPBACK_HOSTS, checked, default, default_state_dir
from tbhub.core.models import EndpointSpec
from tbhub.core.retention import RetentionPolicy
from tbhub.core.units import parse_duration
from tbhub.errors import UnknownEndpoint

__all__ = [
    "AuthConfig",
    "Config",
    "CostConfig",
    "DisplayConfig",
    "EndpointConfig",
    "ServerConfig",
    "StateConfig",
]


class ServerConfig(Section):
    host: str = default("server.host", str)
    port: int = Field(default=default("server.port", int), ge=1, le=65535)
    public_url: str | None = None

    @property
    def link_base(self) -> str:
        """Where links sent out of the hub (notifications) point: ``public_url``, else the listening
        address; no trailing slash."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


class StateConfig(Section):
    dir: Path | None = Field(default=None, strict=False)  # TOML has no path type
    database: str | None = None

    @property
    def path(self) -> Path:
        return (self.dir or default_state_dir()).expanduser()

    @property
    def url(self) -> str:
        return self.database or f"sqlite:///{self.path / 'tbhub.db'}"


class DisplayConfig(Section):
    fresh_days: float = Field(default=default("display.fresh_days", int), gt=0)
    old_days: float = Field(default=default("display.old_days", int), gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> DisplayConfig:
        if self.fresh_days > self.old_days:
            raise ValueError("fresh_days must not exceed old_days")
        return self


class EndpointConfig(Section):
    logdir: str
    layout: Annotated[str, checked("endpoints.NAME.layout")] = default("endpoints.NAME.layout", str)
    port: int | None = Field(default=None, ge=1, le=65535)
    reload_interval: Annotated[int, checked("endpoints.NAME.reload_interval")] = default(
        "endpoints.NAME.reload_interval", int
    )
    title: str | None = None
    expose: bool = default("endpoints.NAME.expose", bool)
    s3: S3Config | None = None


class AuthConfig(Section):
    """``[auth]``: on by default; ``mode = "none"`` only on a hub bound to loopback."""

    mode: Literal["password", "none"] = "password"
    session_max_age: str = default("auth.session_max_age", str)
    trusted_proxies: list[str] = Field(default_factory=list)
    proxy_header: str = default("auth.proxy_header", str)
    proxy_role: Literal["viewer", "editor", "admin"] = "viewer"

    @field_validator("session_max_age")
    @classmethod
    def _age(cls, value: str) -> str:
        if parse_duration(value) <= 0:
            raise ValueError("session_max_age must be positive")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: list[str]) -> list[str]:
        # An entry that does not parse is an error, not skipped: the setting would look right while the
        # proxy it meant is not trusted (uvicorn, for one, keeps such entries as literal host names).
        import ipaddress

        for entry in value:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network (10.0.0.5, "
                                 "10.0.0.0/8, ::1)") from None
        return [entry.strip() for entry in value]

    @property
    def enabled(self) -> bool:
        return self.mode != "none"

    @property
    def session_seconds(self) -> float:
        return parse_duration(self.session_max_age)


class Config(Section):
    """The whole config. ``source`` names where it came from (a file, or ``<flags>``) for messages."""

    server: ServerConfig = ServerConfig()
    state: StateConfig = StateConfig()
    display: DisplayConfig = DisplayConfig()
    endpoints: dict[str, EndpointConfig] = Field(default_factory=dict)
    retention: RetentionConfig = RetentionConfig()
    cost: CostConfig = CostConfig()
    alerts: AlertsConfig = AlertsConfig()
    notify: list[NotifyConfig] = Field(default_factory=list)
    auth: AuthConfig = AuthConfig()
    s3: S3Config = S3Config()
    source: str = Field(default="<flags>", exclude=True)

    def storage_options(self, endpoint: str | None = None) -> dict[str, Any]:
        """fsspec/s3fs options for an ``s3://`` URL of ``endpoint`` (its log root, its archives), or,
        with ``None``, for any other ``s3://`` URL: ``[endpoints.NAME.s3]`` over ``[s3]``.

        Raises ``UnknownEndpoint`` for an unknown name and ``ConfigError`` when a secret's variable is
        unset. The result may hold secrets: pass it to the filesystem, never to a log or ``--json``.
        """
        settings, where = self.s3, "s3"
        if endpoint is not None:
            if endpoint not in self.endpoints:
                raise UnknownEndpoint(f"unknown endpoint {endpoint!r}")
            own = self.endpoints[endpoint].s3
            if own is not None:
                settings, where = own.over(self.s3), f"endpoints.{endpoint}.s3"
        return settings.storage_options(where)

    @model_validator(mode="after")
    def _auth_safe(self) -> Config:
        self.check_auth()
        return self

    def check_auth(self) -> None:
        """Raise ``ValueError`` for a config that would let anyone in: no login on a public address, or a
        TensorBoard reachable around the hub's login."""
        if not self.auth.enabled and self.server.host not in LOOPBACK_HOSTS:
            raise ValueError(
                f'auth.mode = "none" is allowed only when the hub listens on 127.0.0.1, localhost or ::1 '
                f"(server.host is {self.server.host!r})"
            )
        if self.auth.enabled:
            exposed = [name for name, e in self.endpoints.items() if e.expose]
            if exposed:
                raise ValueError(
                    f"endpoints.{exposed[0]}.expose = true would bypass the hub's login: with auth on, "
                    "TensorBoards listen on 127.0.0.1 and the hub's proxy is the only way in"
                )

    @model_validator(mode="after")
    def _channel_names(self) -> Config:
        names = [c.name or f"{c.type}-{i}" for i, c in enumerate(self.notify)]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"two notify channels are named {name!r}")
        return self

    def channel_names(self) -> list[str]:
        return [c.name or f"{c.type}-{i}" for i, c in enumerate(self.notify)]

    @field_validator("endpoints")
    @classmethod
    def _names(cls, value: dict[str, EndpointConfig]) -> dict[str, EndpointConfig]:
        check_endpoint_names(list(value))
        return value

    @model_validator(mode="after")
    def _known_endpoints(self) -> Config:
        """Retention and cost tables name configured endpoints (a config without any gets them from flags)."""
        for table, names in (("retention", self.retention.policies), ("cost.endpoints", self.cost.endpoints)):
            unknown = sorted(set(names) - set(self.endpoints))
            if unknown and self.endpoints:
                raise ValueError(f"{table}.{unknown[0]}: no endpoint named {unknown[0]!r}")
        return self

    def retention_policies(self) -> dict[str, RetentionPolicy]:
        return {
            name: policy.policy(name) for name, policy in self.retention.policies.items() if name in self.endpoints
        }

    @model_validator(mode="after")
    def _ports(self) -> Config:
        check_ports(self.endpoints, self.server.port)
        return self

    def resolved_ports(self) -> dict[str, int]:
        """Each endpoint's port: its own, else the next free one from 6006 in config order."""
        return resolve_ports(self.endpoints, self.server.port)

    def endpoint_specs(self, names: Sequence[str] | None = None) -> list[EndpointSpec]:
        """The core's view of the endpoints; ``names`` selects some (``None`` or ``["all"]``: all)."""
        return endpoint_specs(self.endpoints, self.server.port, names)
