"""The typed configuration: ``tbhub.toml`` < ``TBHUB_*`` environment < command-line flags.

A config names *endpoints* (log roots served as one TensorBoard each) three ways, the same for every
command: ``--config FILE`` (or ``$TBHUB_CONFIG``, or ``./tbhub.toml``), repeatable ``--logdir NAME=PATH``,
or a bare ``PATH`` (one endpoint named after the folder).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tbhub.core.archive_places import overlapping_endpoint
from tbhub.core.models import DEFAULT_LAYOUT, EndpointSpec
from tbhub.core.retention import RetentionPolicy, RetentionRule, Schedule
from tbhub.core.status import StatusRule, StatusRules
from tbhub.core.units import parse_duration, parse_size
from tbhub.errors import ConfigError, UnknownEndpoint, UsageError

__all__ = [
    "LOOPBACK_HOSTS",
    "SETTINGS",
    "AuthConfig",
    "Config",
    "DisplayConfig",
    "EndpointConfig",
    "S3Config",
    "ServerConfig",
    "StateConfig",
    "default_state_dir",
    "load_config",
]

ENDPOINT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
FIRST_ENDPOINT_PORT = 6006

#: Every setting as data: (key, default, help). ``tests/test_docs.py`` checks each is in the README.
SETTINGS: tuple[tuple[str, object, str], ...] = (
    ("server.host", "127.0.0.1", "Address the hub binds to."),
    ("server.port", 6005, "Port of the hub (pages, API and the /tb/NAME proxy)."),
    ("server.public_url", None, "The hub's URL as users reach it, for links in notifications."),
    ("state.dir", "$TBHUB_HOME or ~/.local/share/tbhub", "Folder for the state database and logs."),
    ("state.database", "sqlite:///STATE_DIR/tbhub.db", "SQLAlchemy URL of the state database."),
    ("display.fresh_days", 1, "Runs younger than this many days show green."),
    ("display.old_days", 7, "Runs at least this many days old show red and are 'old'."),
    ("endpoints.NAME.logdir", None, "The log root (required)."),
    ("endpoints.NAME.layout", DEFAULT_LAYOUT, "Where runs live below the log root."),
    ("endpoints.NAME.port", "6006, 6007, ...", "Port of this endpoint's TensorBoard."),
    ("endpoints.NAME.reload_interval", 30, "Seconds between TensorBoard reloads."),
    ("endpoints.NAME.title", None, "A human title for the hub page."),
    ("endpoints.NAME.expose", False, "Bind this TensorBoard to all interfaces, not only 127.0.0.1."),
    ("endpoints.NAME.s3", None, "[s3] settings for this endpoint's s3:// log root; unset keys come from [s3]."),
    ("s3.endpoint_url", None, "S3-compatible server URL (else $AWS_ENDPOINT_URL, else AWS)."),
    ("s3.region", None, "Region (else $AWS_DEFAULT_REGION or the profile's)."),
    ("s3.profile", None, "Profile in ~/.aws/config and credentials (else $AWS_PROFILE)."),
    ("s3.access_key_id_env", None, "Variable holding the access key id (else $AWS_ACCESS_KEY_ID)."),
    ("s3.secret_access_key_env", None, "Variable holding the secret key (else $AWS_SECRET_ACCESS_KEY)."),
    ("s3.secret_access_key_file", None, "Or a file holding the secret key."),
    ("s3.anon", False, "Read public buckets without credentials."),
    ("retention.schedule", None, "Apply the retention policies daily at this local time (\"03:00\")."),
    ("retention.every", None, "Or apply them at this interval (\"6h\")."),
    ("retention.active_minutes", 10, "Runs written this recently are never removed by a policy."),
    ("retention.ENDPOINT.keep_days", None, "Remove runs older than this many days."),
    ("retention.ENDPOINT.keep_last", None, "Always keep this many newest runs of each dataset."),
    ("retention.ENDPOINT.archive_to", None, "Archive runs here before removing them."),
    ("retention.ENDPOINT.max_delete", None, "Refuse (and report) an application that removes more runs."),
    ("retention.ENDPOINT.max_bytes", None, "Refuse (and report) an application that frees more (\"500GB\")."),
    ("retention.ENDPOINT.datasets.GLOB", None, "A rule for matching datasets: keep_days, keep_last, archive_to."),
    ("alerts.stalled_after", "15m", "A run with no new events for this long is stalled."),
    ("alerts.max_steps", None, "A run whose last step reaches this is finished."),
    ("alerts.final_tags", [], "A run that logs one of these tags is finished (train/train_runtime)."),
    ("alerts.marker_files", [], "A run folder holding one of these files is finished (DONE)."),
    ("alerts.watch", ["*loss*"], "Scalar tags watched for divergence."),
    ("alerts.threshold", None, "A watched scalar above this has diverged."),
    ("alerts.factor", None, "A watched scalar above factor x its minimum has diverged."),
    ("alerts.max_age", "24h", "Alerts older than this are dropped, not delivered, when a channel recovers."),
    ("alerts.endpoints.NAME", None, "Status rules for one endpoint; .datasets.GLOB for matching datasets."),
    ("notify", [], "[[notify]] channels: type slack, webhook or email; see Alerts."),
    ("cost.storage_per_gb_month", 0.0, "Storage price per GB and month, for `tbhub usage`."),
    ("cost.currency", "USD", "Currency of that price."),
    ("auth.mode", "password", "\"password\" (accounts and roles) or \"none\" (no login; only on a loopback host)."),
    ("auth.session_max_age", "12h", "A browser session ends this long after login."),
    ("auth.trusted_proxies", [], "Addresses of an authenticating proxy (oauth2-proxy) whose header is trusted."),
    ("auth.proxy_header", "X-Auth-Request-Email", "The header naming the user, read only from trusted_proxies."),
    ("auth.proxy_role", "viewer", "Role of a proxy-authenticated user who has no account of their own."),
)

#: Hosts the hub may listen on with ``[auth] mode = "none"``.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def default_state_dir() -> Path:
    home = os.environ.get("TBHUB_HOME")
    if home:
        return Path(home).expanduser()
    return Path("~/.local/share/tbhub").expanduser()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=6005, ge=1, le=65535)
    public_url: str | None = None


class StateConfig(_Strict):
    dir: Path | None = Field(default=None, strict=False)  # TOML has no path type
    database: str | None = None

    @property
    def path(self) -> Path:
        return (self.dir or default_state_dir()).expanduser()

    @property
    def url(self) -> str:
        return self.database or f"sqlite:///{self.path / 'tbhub.db'}"


class DisplayConfig(_Strict):
    fresh_days: float = Field(default=1, gt=0)
    old_days: float = Field(default=7, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> DisplayConfig:
        if self.fresh_days > self.old_days:
            raise ValueError("fresh_days must not exceed old_days")
        return self


class S3Config(_Strict):
    """``[s3]`` (and ``[endpoints.NAME.s3]``): how to reach S3-compatible object storage.

    Every key is optional: what is unset comes from the enclosing ``[s3]`` and then from the usual
    AWS environment (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``, ...), which
    botocore reads itself. Secrets are never in the file: ``*_env`` names a variable, ``*_file`` a file.
    """

    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    access_key_id_env: str | None = None
    secret_access_key_env: str | None = None
    secret_access_key_file: str | None = None
    anon: bool | None = None

    @field_validator("endpoint_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"endpoint_url must be an http:// or https:// URL, not {value!r}")
        return value

    @model_validator(mode="after")
    def _one_secret(self) -> S3Config:
        if self.secret_access_key_env and self.secret_access_key_file:
            raise ValueError("set either secret_access_key_env or secret_access_key_file, not both")
        return self

    def over(self, base: S3Config) -> S3Config:
        """These settings, with every unset key taken from ``base``."""
        own = self.model_dump(exclude_none=True)
        return base.model_copy(update=own)

    def storage_options(self, where: str = "s3") -> dict[str, Any]:
        """Keyword arguments for ``s3fs.S3FileSystem``, secrets read now from their variable or file.

        Raises ``ConfigError`` (naming ``where``, never a value) when a named variable is unset or a
        file unreadable. The result holds secrets: never log or print it.
        """
        options: dict[str, Any] = {}
        if self.endpoint_url:
            options["endpoint_url"] = self.endpoint_url
        if self.region:
            # Only the client's region: s3fs would also send it as a bucket LocationConstraint, and
            # tbhub never creates buckets.
            options["client_kwargs"] = {"region_name": self.region}
        if self.profile:
            options["profile"] = self.profile
        if self.anon:
            options["anon"] = True
        if self.access_key_id_env:
            options["key"] = _secret_from_env(self.access_key_id_env, f"{where}.access_key_id_env")
        if self.secret_access_key_env:
            options["secret"] = _secret_from_env(self.secret_access_key_env, f"{where}.secret_access_key_env")
        elif self.secret_access_key_file:
            path = Path(self.secret_access_key_file).expanduser()
            try:
                options["secret"] = path.read_text().strip()
            except OSError as error:
                raise ConfigError(
                    f"{where}.secret_access_key_file: cannot read {path} ({error.strerror or error})"
                ) from None
        return options


def _secret_from_env(variable: str, key: str) -> str:
    value = os.environ.get(variable)
    if not value:
        raise ConfigError(f"{key}: environment variable {variable} is not set")
    return value


class EndpointConfig(_Strict):
    logdir: str
    layout: str = DEFAULT_LAYOUT
    port: int | None = Field(default=None, ge=1, le=65535)
    reload_interval: int = Field(default=30, ge=1)
    title: str | None = None
    expose: bool = False
    s3: S3Config | None = None

    @field_validator("layout")
    @classmethod
    def _layout(cls, value: str) -> str:
        if value != DEFAULT_LAYOUT:
            raise ValueError(f"only the layout {DEFAULT_LAYOUT!r} is supported")
        return value


class RetentionRuleConfig(_Strict):
    keep_days: float | None = Field(default=None, gt=0)
    keep_last: int | None = Field(default=None, ge=0)
    archive_to: str | None = None

    def rule(self) -> RetentionRule:
        return RetentionRule(self.keep_days, self.keep_last, self.archive_to)


class EndpointRetentionConfig(RetentionRuleConfig):
    max_delete: int | None = Field(default=None, ge=0)
    max_bytes: int | str | None = None
    datasets: dict[str, RetentionRuleConfig] = Field(default_factory=dict)

    @field_validator("max_bytes")
    @classmethod
    def _size(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, str):
            parse_size(value)  # raises ValueError with a readable message
        return value

    def policy(self, endpoint: str) -> RetentionPolicy:
        size = parse_size(self.max_bytes) if isinstance(self.max_bytes, str) else self.max_bytes
        return RetentionPolicy(
            endpoint,
            self.rule(),
            tuple((glob, rule.rule()) for glob, rule in self.datasets.items()),
            self.max_delete,
            size,
        )


class RetentionConfig(_Strict):
    """``[retention]``: the schedule, and one ``[retention.ENDPOINT]`` table per endpoint."""

    schedule: str | None = None
    every: str | None = None
    active_minutes: float = Field(default=10, gt=0)
    policies: dict[str, EndpointRetentionConfig] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _gather(cls, data: Any) -> Any:
        if isinstance(data, dict) and "policies" not in data:
            fixed = {k: v for k, v in data.items() if k in ("schedule", "every", "active_minutes")}
            fixed["policies"] = {k: v for k, v in data.items() if k not in fixed}
            return fixed
        return data

    @field_validator("schedule")
    @classmethod
    def _daily(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError(f"schedule must be a time of day like \"03:00\", not {value!r}")
        return value

    @field_validator("every")
    @classmethod
    def _every(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @model_validator(mode="after")
    def _one_schedule(self) -> RetentionConfig:
        if self.schedule and self.every:
            raise ValueError("set either schedule or every, not both")
        return self

    def schedule_spec(self) -> Schedule | None:
        if self.schedule:
            hour, minute = map(int, self.schedule.split(":"))
            return Schedule(daily_at=dt.time(hour, minute))
        if self.every:
            return Schedule(every_s=parse_duration(self.every))
        return None


class StatusRuleConfig(_Strict):
    """Status rules; every key left unset comes from the enclosing level (dataset < endpoint < alerts)."""

    stalled_after: str | None = None
    max_steps: int | None = Field(default=None, ge=1)
    final_tags: list[str] | None = None
    marker_files: list[str] | None = None
    watch: list[str] | None = None
    threshold: float | None = None
    factor: float | None = Field(default=None, gt=1)

    @field_validator("stalled_after")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @field_validator("marker_files")
    @classmethod
    def _markers(cls, value: list[str] | None) -> list[str] | None:
        for name in value or []:
            if "/" in name or name in ("", ".", ".."):
                raise ValueError(f"marker file {name!r} must be a plain file name")
        return value

    def over(self, base: StatusRule) -> StatusRule:
        return StatusRule(
            parse_duration(self.stalled_after) if self.stalled_after else base.stalled_after_s,
            self.max_steps if self.max_steps is not None else base.max_steps,
            tuple(self.final_tags) if self.final_tags is not None else base.final_tags,
            tuple(self.marker_files) if self.marker_files is not None else base.marker_files,
            tuple(self.watch) if self.watch is not None else base.watch,
            self.threshold if self.threshold is not None else base.threshold,
            self.factor if self.factor is not None else base.factor,
        )


class EndpointAlertsConfig(StatusRuleConfig):
    datasets: dict[str, StatusRuleConfig] = Field(default_factory=dict)


class AlertsConfig(StatusRuleConfig):
    """``[alerts]``: status rules, per endpoint and dataset glob, and delivery limits."""

    max_age: str = "24h"
    endpoints: dict[str, EndpointAlertsConfig] = Field(default_factory=dict)

    @field_validator("max_age")
    @classmethod
    def _age(cls, value: str) -> str:
        parse_duration(value)
        return value

    def rules_for(self, endpoint: str) -> StatusRules:
        base = self.over(StatusRule())
        own = self.endpoints.get(endpoint)
        if own is None:
            return StatusRules(base)
        default = own.over(base)
        return StatusRules(default, tuple((glob, rule.over(default)) for glob, rule in own.datasets.items()))


Notified = Literal["diverged", "stalled", "finished"]
STATUSES_NOTIFIED: tuple[Notified, ...] = ("diverged", "stalled", "finished")


class NotifyConfig(_Strict):
    """One ``[[notify]]`` channel. Secrets come from ``*_env`` (a variable) or ``*_file`` (a file)."""

    type: Literal["slack", "webhook", "email"]
    name: str | None = None
    on: list[Notified] = Field(default_factory=lambda: list(STATUSES_NOTIFIED))
    url: str | None = None
    url_env: str | None = None
    url_file: str | None = None
    secret_env: str | None = None
    secret_file: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    sender: str | None = None
    to: list[str] = Field(default_factory=list)
    ca_file: str | None = None
    timeout: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _complete(self) -> NotifyConfig:
        if self.type in ("slack", "webhook") and not (self.url or self.url_env or self.url_file):
            raise ValueError(f"a {self.type} channel needs url, url_env or url_file")
        if self.type == "email" and (not self.host or not self.to):
            raise ValueError("an email channel needs host and to")
        return self


class CostConfig(_Strict):
    storage_per_gb_month: float = Field(default=0.0, ge=0)
    currency: str = "USD"


class AuthConfig(_Strict):
    """``[auth]``: on by default; ``mode = "none"`` only on a hub bound to loopback."""

    mode: Literal["password", "none"] = "password"
    session_max_age: str = "12h"
    trusted_proxies: list[str] = Field(default_factory=list)
    proxy_header: str = "X-Auth-Request-Email"
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


class Config(_Strict):
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
    source: str = Field(default="<flags>", exclude=True)

    @field_validator("endpoints")
    @classmethod
    def _names(cls, value: dict[str, EndpointConfig]) -> dict[str, EndpointConfig]:
        for name in value:
            if not ENDPOINT_NAME.match(name):
                raise ValueError(
                    f"endpoint name {name!r} must be letters, digits, '.', '_' or '-' (no slash)"
                )
        return value

    @model_validator(mode="after")
    def _retention_endpoints(self) -> Config:
        unknown = sorted(set(self.retention.policies) - set(self.endpoints))
        if unknown and self.endpoints:
            raise ValueError(f"retention.{unknown[0]}: no endpoint named {unknown[0]!r}")
        return self

    def retention_policies(self) -> dict[str, RetentionPolicy]:
        return {
            name: policy.policy(name) for name, policy in self.retention.policies.items() if name in self.endpoints
        }

    @model_validator(mode="after")
    def _ports(self) -> Config:
        seen: dict[int, str] = {self.server.port: "server.port"}
        for name, spec in self.resolved_ports().items():
            owner = f"endpoints.{name}.port"
            if spec in seen:
                raise ValueError(f"duplicate port {spec}: {seen[spec]} and {owner}")
            seen[spec] = owner
        return self

    def resolved_ports(self) -> dict[str, int]:
        """Each endpoint's port: its own, else the next free one from 6006 in config order."""
        taken = {e.port for e in self.endpoints.values() if e.port is not None} | {self.server.port}
        ports: dict[str, int] = {}
        candidate = FIRST_ENDPOINT_PORT
        for name, endpoint in self.endpoints.items():
            if endpoint.port is not None:
                ports[name] = endpoint.port
                continue
            while candidate in taken:
                candidate += 1
            ports[name] = candidate
            taken.add(candidate)
        return ports

    def endpoint_specs(self, names: Sequence[str] | None = None) -> list[EndpointSpec]:
        """The core's view of the endpoints; ``names`` selects some (``None`` or ``["all"]``: all)."""
        if not self.endpoints:
            raise UsageError(
                "no endpoints configured: pass a PATH, --logdir NAME=PATH or --config FILE"
            )
        wanted = list(self.endpoints) if not names or list(names) == ["all"] else list(names)
        ports = self.resolved_ports()
        specs = []
        for name in wanted:
            if name not in self.endpoints:
                known = ", ".join(sorted(self.endpoints))
                raise UnknownEndpoint(f"unknown endpoint {name!r} (known: {known})")
            e = self.endpoints[name]
            specs.append(
                EndpointSpec(
                    name=name,
                    logdir=e.logdir,
                    layout=e.layout,
                    port=ports[name],
                    reload_interval=e.reload_interval,
                    title=e.title,
                )
            )
        return specs


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
        if "://" in value:
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
        flag_endpoints[name] = {"logdir": logdir if "://" in logdir else str(Path(logdir).expanduser())}
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
    if "://" in logdir:
        return logdir
    p = Path(logdir).expanduser()
    return str(p if p.is_absolute() else (base / p))
