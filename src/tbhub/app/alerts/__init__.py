"""Watch runs: status from the logs, alerts once per state change, delivery through notifiers.

``AlertEngine.evaluate`` runs after each scan inside ``tbhub serve``: it brings the scalar summaries
of changed event files up to date (only new bytes are parsed), decides each run's status and records
an alert when a run *changes* into diverged, stalled or finished. The run states and the alert keys
live in the state database, so a restart never alerts twice. ``deliver`` sends pending alerts of one
channel in order, retrying with backoff (honouring ``Retry-After``), at most about one message a second
per channel; a permanent failure (404, 410, bad credentials) disables the channel until it is fixed.
A failure of one alert's content (``UndeliverableMessage``, or a notifier raising anything else on it)
fails that alert alone: the channel stays enabled and the queue moves on.
A dead channel holds up only its own queue, and loses nothing younger than ``alerts.max_age``.

The status rules are the config's ``[alerts]`` with the overrides editors set from the hub
(``AlertRuleStore``) on top: a key an override sets wins over the config's key at the same level
(endpoint, or one dataset glob of it); every evaluation reads the overrides afresh.
"""

from tbhub.app.alerts.channels import Channel, build_channels
from tbhub.app.alerts.engine import AlertEngine
from tbhub.app.alerts.history import alert_history
from tbhub.app.alerts.rules import RULE_KEYS, alerts_with_overrides, check_rule, rules_config

__all__ = [
    "RULE_KEYS",
    "AlertEngine",
    "Channel",
    "alert_history",
    "alerts_with_overrides",
    "build_channels",
    "check_rule",
    "rules_config",
]
