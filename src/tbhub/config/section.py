"""The base of every config table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Protocol, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict

from tbhub.core.units import parse_duration

__all__ = ["Duration", "EndpointLevel", "RuleLevel", "Section", "rule_levels"]

R = TypeVar("R")


def _duration(value: str) -> str:
    parse_duration(value)  # raises ValueError with a readable message
    return value


#: A duration as written in the config (``"15m"``, ``"2h"``), checked when loaded, kept as text.
Duration = Annotated[str, AfterValidator(_duration)]


class Section(BaseModel):
    """A table of the config: frozen once loaded, no type coercion (TOML already has types), and an
    unknown key is an error, so a typo is reported instead of silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class RuleLevel(Protocol[R]):
    """A level of rules (the whole table, an endpoint, a dataset glob): the keys it sets, ``over`` the
    rule of the level enclosing it."""

    def over(self, base: R) -> R: ...


class EndpointLevel(RuleLevel[R], Protocol[R]):
    @property
    def datasets(self) -> Mapping[str, RuleLevel[R]]: ...


def rule_levels(top: RuleLevel[R], endpoint: EndpointLevel[R] | None, blank: R) -> tuple[R, tuple[tuple[str, R], ...]]:
    """An endpoint's rule and its rules per dataset glob, each level over the one enclosing it (dataset
    glob < endpoint < the table < ``blank``)."""
    default = top.over(blank)
    if endpoint is None:
        return default, ()
    default = endpoint.over(default)
    return default, tuple((glob, rule.over(default)) for glob, rule in endpoint.datasets.items())
