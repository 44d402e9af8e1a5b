"""Alerts, their deliveries to each channel, and the channels' state, in the state database.

An alert is recorded once per key (``insert_alert`` answers ``None`` for a key seen before), so a
run never alerts twice for the same event. Every delivery attempt is a row of its own; an alert is
done for a channel once one attempt ended "sent", "expired" or "undeliverable".
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, exists, func, insert, select
from sqlalchemy.exc import IntegrityError

from tbhub.adapters.db.tables import alerts, channels, deliveries
from tbhub.core.names import shown, without_surrogates

__all__ = ["AlertRow", "AlertStore", "DeliveryState"]


@dataclass(frozen=True, slots=True)
class AlertRow:
    id: int
    key: str
    endpoint: str
    dataset: str
    run: str
    status: str
    at: float
    message: str
    details: str  # JSON
    url: str | None


@dataclass(frozen=True, slots=True)
class DeliveryState:
    """Where delivering one alert to one channel stands: attempts so far, when to try next."""

    alert: AlertRow
    attempts: int
    next_at: float | None
    last_error: str | None


class AlertStore:
    """Alerts, deliveries and channels on the state database's engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def insert_alert(
        self,
        *,
        key: str,
        endpoint: str,
        dataset: str,
        run: str,
        status: str,
        at: float,
        message: str,
        details: str,
        url: str | None,
    ) -> int | None:
        """Record an alert; ``None`` when an alert with that key exists already (never alert twice).

        Alerts are messages for people and receivers, so names in them are kept in their display form."""
        try:
            with self.engine.begin() as connection:
                result = connection.execute(
                    insert(alerts).values(
                        key=shown(key),
                        endpoint=endpoint,
                        dataset=shown(dataset),
                        run=shown(run),
                        status=status,
                        at=at,
                        message=without_surrogates(message),
                        details=details,
                        url=None if url is None else shown(url),
                    )
                )
                pk = result.inserted_primary_key
                return int(pk[0]) if pk else None
        except IntegrityError:
            return None

    def alerts(self, *, limit: int = 200, run: tuple[str, str, str] | None = None) -> list[AlertRow]:
        """The newest alerts, newest first; only those of ``run`` (endpoint, dataset, run) if given."""
        query = select(alerts).order_by(alerts.c.id.desc()).limit(limit)
        if run is not None:
            endpoint, dataset, name = run
            query = query.where(alerts.c.endpoint == endpoint, alerts.c.dataset == shown(dataset),
                                alerts.c.run == shown(name))
        with self.engine.connect() as connection:
            rows = connection.execute(query)
            return [AlertRow(*r) for r in rows]

    def alert(self, alert_id: int) -> AlertRow | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(alerts).where(alerts.c.id == alert_id)).first()
            return AlertRow(*row) if row else None

    def pending_deliveries(self, channel: str, statuses: Iterable[str], since: float) -> list[DeliveryState]:
        """Alerts of ``statuses`` at or after ``since`` not yet sent to (nor expired for, nor found
        undeliverable by) ``channel``, oldest first."""
        done = exists().where(
            deliveries.c.alert_id == alerts.c.id,
            deliveries.c.channel == channel,
            deliveries.c.outcome.in_(("sent", "expired", "undeliverable")),
        )
        attempts = (
            select(
                deliveries.c.alert_id,
                func.count().label("attempts"),
                func.max(deliveries.c.next_at).label("next_at"),
                func.max(deliveries.c.id).label("last_id"),
            )
            .where(deliveries.c.channel == channel)
            .group_by(deliveries.c.alert_id)
            .subquery()
        )
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(alerts, attempts.c.attempts, attempts.c.next_at, attempts.c.last_id)
                .outerjoin(attempts, attempts.c.alert_id == alerts.c.id)
                .where(alerts.c.status.in_(list(statuses)), alerts.c.at >= since, ~done)
                .order_by(alerts.c.id)
            ).all()
            errors: dict[int, str | None] = {}
            last_ids = [r.last_id for r in rows if r.last_id is not None]
            if last_ids:
                for rid, err in connection.execute(
                    select(deliveries.c.id, deliveries.c.error).where(deliveries.c.id.in_(last_ids))
                ):
                    errors[rid] = err
        return [DeliveryState(AlertRow(*r[:10]), r.attempts or 0, r.next_at, errors.get(r.last_id)) for r in rows]

    def record_delivery(
        self,
        alert_id: int,
        channel: str,
        attempt: int,
        outcome: str,
        error: str | None = None,
        next_at: float | None = None,
    ) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                insert(deliveries).values(
                    alert_id=alert_id,
                    channel=channel,
                    attempt=attempt,
                    at=time.time(),
                    outcome=outcome,
                    error=error,
                    next_at=next_at,
                )
            )

    def deliveries(self, alert_id: int | None = None) -> list[dict[str, Any]]:
        query = select(deliveries).order_by(deliveries.c.id)
        if alert_id is not None:
            query = query.where(deliveries.c.alert_id == alert_id)
        with self.engine.connect() as connection:
            return [dict(r._mapping) for r in connection.execute(query)]

    def alert_counts(self) -> dict[tuple[str, str], int]:
        """(endpoint, status) → how many alerts were ever recorded (one GROUP BY; for ``/metrics``)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(alerts.c.endpoint, alerts.c.status, func.count()).group_by(alerts.c.endpoint, alerts.c.status)
            )
            return {(endpoint, status): int(n) for endpoint, status, n in rows}

    def delivery_counts(self) -> dict[tuple[str, str], int]:
        """(channel, outcome) → how many delivery attempts ended so (one GROUP BY; for ``/metrics``)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(deliveries.c.channel, deliveries.c.outcome, func.count()).group_by(
                    deliveries.c.channel, deliveries.c.outcome
                )
            )
            return {(channel, outcome): int(n) for channel, outcome, n in rows}

    def set_channel(self, name: str, *, disabled: bool, reason: str | None) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(channels).where(channels.c.name == name))
            connection.execute(
                insert(channels).values(name=name, disabled=disabled, reason=reason, updated_at=time.time())
            )

    def channel_states(self) -> dict[str, tuple[bool, str | None]]:
        with self.engine.connect() as connection:
            return {r.name: (bool(r.disabled), r.reason) for r in connection.execute(select(channels))}
