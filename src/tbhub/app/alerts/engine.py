"""The alert engine: each run's status from its logs, alerts once per change, delivery in order."""

from __future__ import annotations

import fnmatch
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import cached_property
from typing import Any

from tbhub.adapters.db.store import AlertRow
from tbhub.adapters.notifiers import UndeliverableMessage
from tbhub.app.alerts.channels import Channel, build_channels
from tbhub.app.alerts.rules import rules_config
from tbhub.app.inventory import endpoint_runs
from tbhub.app.scalars import run_scalars
from tbhub.app.services import Services
from tbhub.app.status import run_statuses
from tbhub.config import Config
from tbhub.core.bookmarks import tensorboard_link
from tbhub.core.models import Alert, EndpointSpec, RunStatus, RunSummary
from tbhub.core.scalars import EventDecoder, TagSummary
from tbhub.core.status import StatusRules, StatusVerdict
from tbhub.core.units import parse_duration
from tbhub.errors import DeliveryError

__all__ = ["AlertEngine"]

log = logging.getLogger("tbhub.watch")
ALERTED = (RunStatus.DIVERGED, RunStatus.STALLED, RunStatus.FINISHED)
#: Seconds between two messages to one channel (Slack allows about one a second per webhook).
MIN_SEND_INTERVAL_S = 1.0
MAX_BACKOFF_S = 300.0


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
        services: Services,
        channels: list[Channel] | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        config = services.config
        self.services = services
        self.config = config
        self.state = services.state
        self.channels = {c.name: c for c in (channels if channels is not None else build_channels(config))}
        self.clock = clock
        self._last_send: dict[str, float] = {}
        self.hub_url = config.server.link_base
        self.max_age_s = parse_duration(config.alerts.max_age)

    @cached_property
    def decoder(self) -> EventDecoder:
        # Imported on first parse only: the hub process evaluates with parse=False and never loads
        # protobuf (its parse worker does, see tbhub.app.workers).
        from tbhub.adapters.scalar_decoder import ProtobufDecoder

        return ProtobufDecoder()

    def scalar_tags(self, endpoint: EndpointSpec, runs: list[RunSummary]) -> dict[str, dict[str, TagSummary]]:
        return run_scalars(self.services, endpoint, runs, self.decoder)

    # -- statuses and alerts -------------------------------------------------------------------------------
    def statuses(
        self, endpoint: EndpointSpec, runs: list[RunSummary], config: Config | None = None, *, parse: bool = True
    ) -> tuple[dict[str, StatusVerdict], dict[str, dict[str, TagSummary]]]:
        """Each run's status now (by relpath), and the tag summaries it was decided on; ``parse=False``
        decides on the scalar states already stored (see ``run_scalars``)."""
        config = config or rules_config(self.services)
        return run_statuses(self.services, endpoint, runs, self.decoder if parse else None,
                            now_ns=int(self.clock() * 1e9), alerts=config.alerts, parse=parse)

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
        """TensorBoard's scalars of the run and its sub-runs: the run page's link, on the hub's URL."""
        return self.hub_url + tensorboard_link(run.endpoint, run.relpath)

    def evaluate(self, endpoint: EndpointSpec, runs: list[RunSummary], *, parse: bool = True) -> list[Alert]:
        """Decide every run's status; record (and return) an alert for each change into an alerted status.

        A run seen for the first time is alerted only when it is diverged or finished and was
        written to within ``stalled_after`` (a run that finished weeks ago is history, not news).
        ``parse=False``: the scalar states were brought up to date elsewhere (``tbhub serve``'s parse
        worker), only read them.
        """
        config = rules_config(self.services)  # the hub's overrides, read afresh each time
        rules = config.alerts.rules_for(endpoint.name)
        verdicts, tags = self.statuses(endpoint, runs, config, parse=parse)
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

    def evaluate_all(self) -> list[Alert]:
        """Evaluate every endpoint's indexed runs."""
        specs = self.services.specs
        return [a for name in specs for a in self.evaluate(specs[name], endpoint_runs(self.services, name))]

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
