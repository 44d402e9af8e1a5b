"""``[alerts]`` (status rules per endpoint and dataset glob) and ``[[notify]]`` (delivery channels)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from tbhub.config.section import Duration, Section, rule_levels
from tbhub.config.settings import default
from tbhub.core.status import StatusRule, StatusRules
from tbhub.core.units import parse_duration

__all__ = [
    "STATUSES_NOTIFIED",
    "AlertsConfig",
    "EndpointAlertsConfig",
    "Notified",
    "NotifyConfig",
    "StatusRuleConfig",
]


class StatusRuleConfig(Section):
    """Status rules; every key left unset comes from the enclosing level (dataset < endpoint < alerts)."""

    stalled_after: Duration | None = None
    max_steps: int | None = Field(default=None, ge=1)
    final_tags: list[str] | None = None
    marker_files: list[str] | None = None
    watch: list[str] | None = None
    threshold: float | None = None
    factor: float | None = Field(default=None, gt=1)

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

    max_age: Duration = default("alerts.max_age", str)
    endpoints: dict[str, EndpointAlertsConfig] = Field(default_factory=dict)

    def rules_for(self, endpoint: str) -> StatusRules:
        return StatusRules(*rule_levels(self, self.endpoints.get(endpoint), StatusRule()))


Notified = Literal["diverged", "stalled", "finished"]
STATUSES_NOTIFIED: tuple[Notified, ...] = ("diverged", "stalled", "finished")


class NotifyConfig(Section):
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
