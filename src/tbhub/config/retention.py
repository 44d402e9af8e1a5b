"""``[retention]``: when policies apply, and one ``[retention.ENDPOINT]`` policy per endpoint."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from pydantic import Field, field_validator, model_validator

from tbhub.config.section import Duration, Section
from tbhub.config.settings import default
from tbhub.core.retention import RetentionPolicy, RetentionRule, Schedule
from tbhub.core.units import parse_duration, parse_size

__all__ = ["EndpointRetentionConfig", "RetentionConfig", "RetentionRuleConfig"]


class RetentionRuleConfig(Section):
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


class RetentionConfig(Section):
    """``[retention]``: the schedule, and one ``[retention.ENDPOINT]`` table per endpoint."""

    schedule: str | None = None
    every: Duration | None = None
    active_minutes: float = Field(default=default("retention.active_minutes", int), gt=0)
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
