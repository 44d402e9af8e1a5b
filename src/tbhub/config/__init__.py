"""The typed configuration: the config file (``--config``, ``$TBHUB_CONFIG``, ``./tbhub.toml``) < flags.

A config names *endpoints* (log roots served as one TensorBoard each) three ways, the same for every
command: ``--config FILE`` (or ``$TBHUB_CONFIG``, or ``./tbhub.toml``), repeatable ``--logdir NAME=PATH``,
or a bare ``PATH`` (one endpoint named after the folder).

::

    settings.py    every setting as data: key, default, help, and its one check
    section.py     the base of every table (frozen, strict, unknown keys refused)
    models.py      [server] [state] [display] [endpoints.NAME] [auth], and Config
    cost.py        [cost], [cost.endpoints.NAME] (.datasets.GLOB): storage and compute prices
    s3.py          [s3], [endpoints.NAME.s3]
    retention.py   [retention], [retention.ENDPOINT]
    alerts.py      [alerts], [[notify]]
    endpoints.py   endpoint names, port assignment, the core's EndpointSpec view
    loading.py     load_config: file, flags, one-line errors

Import from here, not from the modules: this list is the package's public surface.
"""

from __future__ import annotations

from tbhub.config.alerts import (
    STATUSES_NOTIFIED,
    AlertsConfig,
    EndpointAlertsConfig,
    Notified,
    NotifyConfig,
    StatusRuleConfig,
)
from tbhub.config.endpoints import ENDPOINT_NAME
from tbhub.config.loading import load_config, parse_logdir_flag
from tbhub.config.models import (
    AuthConfig,
    Config,
    CostConfig,
    DisplayConfig,
    EndpointConfig,
    ServerConfig,
    StateConfig,
)
from tbhub.config.retention import EndpointRetentionConfig, RetentionConfig, RetentionRuleConfig
from tbhub.config.s3 import S3Config
from tbhub.config.settings import FIRST_ENDPOINT_PORT, LOOPBACK_HOSTS, SETTINGS, Setting, default_state_dir, setting

__all__ = [
    "ENDPOINT_NAME",
    "FIRST_ENDPOINT_PORT",
    "LOOPBACK_HOSTS",
    "SETTINGS",
    "STATUSES_NOTIFIED",
    "AlertsConfig",
    "AuthConfig",
    "Config",
    "CostConfig",
    "DisplayConfig",
    "EndpointAlertsConfig",
    "EndpointConfig",
    "EndpointRetentionConfig",
    "Notified",
    "NotifyConfig",
    "RetentionConfig",
    "RetentionRuleConfig",
    "S3Config",
    "ServerConfig",
    "Setting",
    "StateConfig",
    "StatusRuleConfig",
    "default_state_dir",
    "load_config",
    "parse_logdir_flag",
    "setting",
]
