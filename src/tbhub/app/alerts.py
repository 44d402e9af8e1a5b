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

from __future__ import annotations

import fnmatch
import json
import logging
import math
import os
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tbhub.adapters.db.alert_rules import AlertRuleStore, RuleOverride
from tbhub.adapters.db.store import AlertRow, StateStore
from tbhub.adapters.notifiers import EmailNotifier, SlackNotifier, UndeliverableMessage, WebhookNotifier
from tbhub.adapters.scalar_decoder import ProtobufDecoder
from tbhub.app.hub import Hub, run_scalars, run_statuses
from tbhub.config import AlertsConfig, Config, EndpointAlertsConfig, NotifyConfig, StatusRuleConfig
from tbhub.core.models import Alert, EndpointSpec, RunStatus, RunSummary
from tbhub.core.names import shown
from tbhub.core.ports import Notifier
from tbhub.core.scalars import TagSummary
from tbhub.core.status import StatusRules, StatusVerdict
from tbhub.core.units import parse_duration
from tbhub.errors import ConfigError, DeliveryError, UsageError

__all__ = [
    "RULE_KEYS",
    "AlertEngine",
    "Channel",
    "alerts_with_overrides",
    "build_channels",
    "check_rule",
    "rules_config",
]

log = logging.getLogger("tbhub.watch")
ALERTED = (RunStatus.DIVERGED, RunStatus.STALLED, RunStatus.FINISHED)
#: Seconds between two messages to one channel (Slack allows about one a second per webhook).
MIN_SEND_INTERVAL_S = 1.0
MAX_BACKOFF_S = 300.0


# -- channels --------------------------------------------------------------------------------------------
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
    hub_url = config.server.public_url or f"http://{config.server.host}:{config.server.port}"
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


# -- rules: the config's, with the hub's overrides on top ------------------------------------------------
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


def rules_config(config: Config, state: StateStore) -> Config:
    """``config`` with the hub's alert rule overrides applied: what the alert engine evaluates with."""
    overrides = AlertRuleStore(state.engine).overrides()
    if not overrides:
        return config
    return config.model_copy(update={"alerts": alerts_with_overrides(config.alerts, overrides)})


# -- the engine ------------------------------------------------------------------------------------------
def _best(tag: str, summary: TagSummary) -> tuple[float | None, int | None]:
    lower_is_better = any(word in tag.lower() for word in ("loss", "error", "perplexity", "wer"))
    if lower_is_better:
        return summary.min_value, summary.min_step
    return summary.max_value, summary.max_step


def _finite(value: float | None) -> float | str | None:
    if value is None:
        return None
    return value if math.isfinite(value) else str(value)


class AlertEngine:
    """Evaluates runs into alerts and delivers them. Thread-safe only per method and endpoint."""

    def __init__(
        self,
        config: Config,
        state: StateStore,
        channels: list[Channel] | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.state = state
        self.channels = {c.name: c for c in (channels if channels is not None else build_channels(config))}
        self.clock = clock
        self.decoder = ProtobufDecoder()
        self._last_send: dict[str, float] = {}
        self.hub_url = (config.server.public_url or f"http://{config.server.host}:{config.server.port}").rstrip("/")
        self.max_age_s = parse_duration(config.alerts.max_age)

    def scalar_tags(self, endpoint: EndpointSpec, runs: list[RunSummary]) -> dict[str, dict[str, TagSummary]]:
        return run_scalars(self.state, endpoint, runs, self.decoder, config=self.config)

    # -- statuses and alerts -------------------------------------------------------------------------------
    def statuses(
        self, endpoint: EndpointSpec, runs: list[RunSummary], config: Config | None = None
    ) -> tuple[dict[str, StatusVerdict], dict[str, dict[str, TagSummary]]]:
        """Each run's status now (by relpath), and the tag summaries it was decided on."""
        config = config or rules_config(self.config, self.state)
        return run_statuses(config, self.state, endpoint, runs, self.decoder, now_ns=int(self.clock() * 1e9))

    def _details(self, run: RunSummary, verdict: StatusVerdict, tags: Mapping[str, TagSummary],
                 rules: StatusRules) -> dict[str, Any]:
        details: dict[str, Any] = dict(verdict.evidence)
        details["last_step"] = run.last_step
        if verdict.status is RunStatus.FINISHED:
            if run.first_wall_time is not None and run.last_wall_time is not None:
                details["duration_s"] = round(run.last_wall_time - run.first_wall_time, 1)
            rule = rules.rule_for(run.dataset)
            watched = [t for t in tags if any(fnmatch.fnmatchcase(t, w) for w in rule.watch)]
            key_tags = (watched + [t for t in tags if t not in watched])[:8]
            scalars = {}
            for tag in key_tags:
                best, best_step = _best(tag, tags[tag])
                scalars[tag] = {"final": _finite(tags[tag].last_value), "best": _finite(best), "best_step": best_step}
            details["scalars"] = scalars
        return details

    def run_url(self, run: RunSummary) -> str:
        from urllib.parse import quote

        # Escaped as the hub shows it: a name that is not UTF-8 cannot be percent-encoded as text.
        return f"{self.hub_url}/tb/{run.endpoint}/#scalars&regexInput={quote(shown(run.dataset + '/' + run.run))}"

    def evaluate(self, endpoint: EndpointSpec, runs: list[RunSummary]) -> list[Alert]:
        """Decide every run's status; record (and return) an alert for each change into an alerted status.

        A run seen for the first time is alerted only when it is diverged or finished and was
        written to within ``stalled_after`` (a run that finished weeks ago is history, not news).
        """
        config = rules_config(self.config, self.state)  # the hub's overrides, read afresh each time
        rules = config.alerts.rules_for(endpoint.name)
        verdicts, tags = self.statuses(endpoint, runs, config)
        previous = self.state.load_run_states(endpoint.name)
        now = self.clock()
        updates: list[tuple[str, str, str, str]] = []
        fired: list[Alert] = []
        for run in runs:
            rule = rules.rule_for(run.dataset)
            verdict = verdicts[run.relpath]
            before = previous.get(run.relpath)
            if before is not None and before[0] == verdict.status.value:
                if before[1] != verdict.key:
                    updates.append((run.relpath, verdict.status.value, verdict.key, verdict.reason))
                continue
            updates.append((run.relpath, verdict.status.value, verdict.key, verdict.reason))
            if verdict.status not in ALERTED:
                continue
            if before is None and (
                verdict.status is RunStatus.STALLED or run.age_seconds(int(now * 1e9)) > rule.stalled_after_s
            ):
                continue
            alert = Alert(
                key=verdict.key,
                endpoint=run.endpoint,
                dataset=run.dataset,
                run=run.run,
                status=verdict.status,
                at=now,
                message=verdict.reason,
                details=self._details(run, verdict, tags.get(run.relpath, {}), rules),
                url=self.run_url(run),
            )
            alert_id = self.state.insert_alert(
                key=alert.key,
                endpoint=alert.endpoint,
                dataset=alert.dataset,
                run=alert.run,
                status=alert.status.value,
                at=alert.at,
                message=alert.message,
                details=json.dumps(alert.details),
                url=alert.url,
            )
            if alert_id is not None:
                fired.append(replace(alert, id=alert_id))
        self.state.save_run_states(endpoint.name, updates)
        return fired

    def evaluate_hub(self, hub: Hub) -> list[Alert]:
        return [a for name in hub.specs for a in self.evaluate(hub.specs[name], hub.runs(name))]

    # -- delivery ------------------------------------------------------------------------------------------
    def deliver(self, name: str) -> int:
        """One pass over ``name``'s queue: returns how many alerts were sent.

        Alerts go out oldest first; the pass stops at the first failure (the queue waits for its
        backoff) so order is kept. Alerts older than ``alerts.max_age`` are recorded as expired; an
        alert that cannot be delivered at all (its content, see ``UndeliverableMessage``) is recorded as
        undeliverable and passed over, without stopping the queue or disabling the channel.
        """
        channel = self.channels[name]
        disabled = self.state.channel_states().get(name)
        if disabled and disabled[0]:
            return 0
        sent = 0
        now = self.clock()
        for pending in self.state.pending_deliveries(name, channel.config.on, since=0.0):
            alert = pending.alert
            if now - alert.at > self.max_age_s:
                self.state.record_delivery(
                    alert.id,
                    name,
                    pending.attempts + 1,
                    "expired",
                    f"older than alerts.max_age ({self.config.alerts.max_age})",
                )
                continue
            if pending.next_at is not None and pending.next_at > now:
                break
            wait = self._last_send.get(name, 0.0) + MIN_SEND_INTERVAL_S - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            attempt = pending.attempts + 1
            try:
                channel.notifier.send(_alert_from_row(alert))
            except UndeliverableMessage as error:
                # This alert's content, not the channel: fail it alone and go on with the next.
                self._last_send[name] = time.monotonic()
                self.state.record_delivery(alert.id, name, attempt, "undeliverable", error.message)
                log.warning("notify channel %s: alert %s not delivered: %s", name, alert.id, error.message)
                now = self.clock()
                continue
            except DeliveryError as error:
                self._last_send[name] = time.monotonic()
                if error.permanent:
                    self.state.record_delivery(alert.id, name, attempt, "failed", error.message)
                    self.state.set_channel(name, disabled=True, reason=error.message)
                    log.warning("notify channel %s disabled: %s", name, error.message)
                    return sent
                backoff = min(MAX_BACKOFF_S, 2.0 ** min(attempt, 16))
                delay = max(error.retry_after or 0.0, backoff if error.retry_after is None else 0.0)
                self.state.record_delivery(alert.id, name, attempt, "retry", error.message, self.clock() + delay)
                return sent
            except Exception as error:
                # A notifier that breaks on one alert (a bug its content triggers) must not leave that
                # alert pending for ever, with a traceback every pass, and the rest of the queue behind it.
                self._last_send[name] = time.monotonic()
                reason = f"{type(error).__name__} while sending this alert"
                self.state.record_delivery(alert.id, name, attempt, "undeliverable", reason)
                log.exception("notify channel %s: alert %s not delivered", name, alert.id)
                now = self.clock()
                continue
            self._last_send[name] = time.monotonic()
            self.state.record_delivery(alert.id, name, attempt, "sent")
            sent += 1
            now = self.clock()
        return sent

    def send_test(self, name: str) -> None:
        """Send a test message through ``name`` (raises ``DeliveryError``); success re-enables it."""
        channel = self.channels[name]
        channel.notifier.send(
            Alert(
                key=f"test:{time.time_ns()}",
                endpoint="tbhub",
                dataset="test",
                run="notification",
                status=RunStatus.FINISHED,
                at=self.clock(),
                message=f"test message from tbhub to {name}",
                details={"last_step": 0, "duration_s": 0, "scalars": {}},
                url=self.hub_url + "/",
            )
        )
        self.state.set_channel(name, disabled=False, reason=None)


def _alert_from_row(row: AlertRow) -> Alert:
    return Alert(
        key=row.key,
        endpoint=row.endpoint,
        dataset=row.dataset,
        run=row.run,
        status=RunStatus(row.status),
        at=row.at,
        message=row.message,
        details=json.loads(row.details),
        url=row.url,
        id=row.id,
    )
