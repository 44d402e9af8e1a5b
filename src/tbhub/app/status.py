"""Each run's status (running, stalled, finished, diverged) under its endpoint's rules."""

from __future__ import annotations

from collections.abc import Sequence

from tbhub.app.scalars import run_scalars
from tbhub.app.services import Services
from tbhub.config import AlertsConfig
from tbhub.core.inventory import EndpointInventory
from tbhub.core.models import EndpointSpec, RunSummary
from tbhub.core.scalars import EventDecoder, TagSummary
from tbhub.core.status import StatusVerdict, run_status

__all__ = ["current_statuses", "run_statuses"]


def run_statuses(
    services: Services,
    endpoint: EndpointSpec,
    runs: Sequence[RunSummary],
    decoder: EventDecoder | None,
    *,
    now_ns: int,
    alerts: AlertsConfig | None = None,
    parse: bool = True,
) -> tuple[dict[str, StatusVerdict], dict[str, dict[str, TagSummary]]]:
    """Each run's status (by relpath) under the endpoint's rules (those of ``alerts``, by default the
    config's), and the tag summaries behind it. ``parse`` and ``decoder`` as for ``run_scalars``."""
    rules = (alerts or services.config.alerts).rules_for(endpoint.name)
    tags = run_scalars(services, endpoint, runs, decoder, parse=parse)
    store = services.store(endpoint.name)
    verdicts = {}
    for run in runs:
        rule = rules.rule_for(run.dataset)
        markers = {m for m in rule.marker_files if store.exists(f"{run.relpath}/{m}")}
        verdicts[run.relpath] = run_status(run, tags.get(run.relpath, {}), rule, now_ns=now_ns, markers=markers)
    return verdicts, tags


def current_statuses(
    services: Services, inventories: Sequence[EndpointInventory], now_ns: int
) -> dict[tuple[str, str], StatusVerdict]:
    """Each run's status by (endpoint, relpath), under the rules the alert engine uses: the config's with
    the hub's overrides on top. Brings the scalar summaries up to date (parses only new bytes)."""
    from tbhub.adapters.scalar_decoder import ProtobufDecoder  # protobuf: only when asked for
    from tbhub.app.alerts.rules import rules_config  # the alert engine imports this module

    decoder = ProtobufDecoder()
    alerts = rules_config(services).alerts
    out = {}
    for inv in inventories:
        verdicts, _ = run_statuses(services, inv.endpoint, inv.runs, decoder, now_ns=now_ns, alerts=alerts)
        out.update({(inv.endpoint.name, relpath): v for relpath, v in verdicts.items()})
    return out
