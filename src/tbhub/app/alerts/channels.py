"""The notification channels of the config: one notifier per ``[[notify]]`` entry."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from tbhub.adapters.notifiers import EmailNotifier, SlackNotifier, WebhookNotifier
from tbhub.config import Config, NotifyConfig
from tbhub.core.ports import Notifier
from tbhub.errors import ConfigError

__all__ = ["Channel", "build_channels"]


@dataclass(frozen=True, slots=True)
class Channel:
    name: str
    config: NotifyConfig
    notifier: Notifier


def _secret(
    cfg: NotifyConfig, name: str, what: str, direct: str | None, env: str | None, file: str | None
) -> str | None:
    if direct:
        return direct
    if env:
        value = os.environ.get(env)
        if not value:
            raise ConfigError(f"notify channel {name!r}: environment variable {env} ({what}) is not set")
        return value.strip()
    if file:
        try:
            return Path(file).expanduser().read_text().strip()
        except OSError as error:
            raise ConfigError(f"notify channel {name!r}: cannot read {what} from {file}: {error.strerror}") from None
    return None


def build_channels(config: Config) -> list[Channel]:
    """One notifier per ``[[notify]]`` entry; secrets read from the environment or files now."""
    hub_url = config.server.public_url or config.server.link_base  # public_url exactly as configured
    channels = []
    for name, cfg in zip(config.channel_names(), config.notify, strict=True):
        notifier: Notifier
        if cfg.type == "slack":
            url = _secret(cfg, name, "the webhook URL", cfg.url, cfg.url_env, cfg.url_file)
            assert url is not None  # the config model requires one of the three
            notifier = SlackNotifier(name, url, hub_url=hub_url, timeout=cfg.timeout)
        elif cfg.type == "webhook":
            url = _secret(cfg, name, "the URL", cfg.url, cfg.url_env, cfg.url_file)
            assert url is not None
            secret = _secret(cfg, name, "the signing secret", None, cfg.secret_env, cfg.secret_file)
            notifier = WebhookNotifier(name, url, secret=secret, timeout=cfg.timeout, headers=cfg.headers)
        else:
            password = _secret(cfg, name, "the SMTP password", None, cfg.password_env, cfg.password_file)
            assert cfg.host is not None
            notifier = EmailNotifier(
                name,
                cfg.host,
                cfg.port or (465 if cfg.security == "tls" else 587 if cfg.security == "starttls" else 25),
                sender=cfg.sender or f"tbhub@{cfg.host}",
                to=cfg.to,
                username=cfg.username,
                password=password,
                security=cfg.security,
                timeout=cfg.timeout,
                ssl_context=ssl.create_default_context(cafile=cfg.ca_file) if cfg.ca_file else None,
            )
        channels.append(Channel(name, cfg, notifier))
    return channels
