"""Status rules: the config's ``[alerts]``, with the overrides editors set from the hub on top.

A key an override sets wins over the config's key at the same level (endpoint, or one dataset glob of
it); every evaluation reads the overrides afresh.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from tbhub.adapters.db.alert_rules import RuleOverride
from tbhub.app.services import Services
from tbhub.config import AlertsConfig, Config, EndpointAlertsConfig, StatusRuleConfig
from tbhub.errors import UsageError

__all__ = ["RULE_KEYS", "alerts_with_overrides", "check_rule", "rules_config"]

log = logging.getLogger("tbhub.watch")


#: The keys of a status rule, as in the config's ``[alerts]`` sections.
RULE_KEYS: tuple[str, ...] = tuple(StatusRuleConfig.model_fields)


def check_rule(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Validate an override with the config's own model; returns the keys it sets (``None`` = unset).

    A bad key or value is a ``UsageError`` of one line naming the key, as a config file's would be.
    """
    try:
        model = StatusRuleConfig.model_validate(dict(fields))
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        problem = "unknown key" if first["type"] == "extra_forbidden" else first["msg"].removeprefix("Value error, ")
        raise UsageError(f"alert rule: {key}: {problem}" if key else f"alert rule: {problem}") from None
    rule = {k: v for k, v in model.model_dump(exclude_unset=True).items() if v is not None}
    if not rule:
        raise UsageError(f"alert rule: set at least one of {', '.join(RULE_KEYS)}")
    return rule


def alerts_with_overrides(alerts: AlertsConfig, overrides: Iterable[RuleOverride]) -> AlertsConfig:
    """``alerts`` with each override's keys replacing the config's at the override's level."""
    endpoints = dict(alerts.endpoints)
    for override in overrides:
        try:
            keys = check_rule(override.rule)
        except UsageError as error:  # written by another version, say: the config's rule stands
            log.warning("ignoring the alert rule override of %s %r: %s", override.endpoint, override.dataset, error)
            continue
        own = endpoints.get(override.endpoint, EndpointAlertsConfig())
        if not override.dataset:
            own = own.model_copy(update=keys)
        else:
            rule = own.datasets.get(override.dataset, StatusRuleConfig()).model_copy(update=keys)
            own = own.model_copy(update={"datasets": {**own.datasets, override.dataset: rule}})
        endpoints[override.endpoint] = own
    return alerts.model_copy(update={"endpoints": endpoints})


def rules_config(services: Services) -> Config:
    """The config with the hub's alert rule overrides applied: what the alert engine evaluates with."""
    config = services.config
    overrides = services.alert_rules.overrides()
    if not overrides:
        return config
    return config.model_copy(update={"alerts": alerts_with_overrides(config.alerts, overrides)})
