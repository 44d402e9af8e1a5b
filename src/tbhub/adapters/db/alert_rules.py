"""Alert (status) rule overrides set from the hub, in the state database.

One override per scope: an endpoint as a whole (``dataset`` is ``""``) or one dataset glob of it. An
override holds only the keys someone set (the same keys as the config's ``[alerts]`` rules, as
JSON); every other key still comes from the config. This module stores and returns them as they
are; what they mean, and their validation, belong to ``tbhub.app.alerts``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from tbhub.adapters.db.tables import alert_rules

__all__ = ["AlertRuleStore", "RuleOverride"]


@dataclass(frozen=True, slots=True)
class RuleOverride:
    endpoint: str
    dataset: str  # "" for the endpoint's own rule, else a dataset glob
    rule: dict[str, Any] = field(default_factory=dict)
    updated_by: str = ""
    updated_at: float = 0.0
    id: int | None = None


class AlertRuleStore:
    """Rule overrides on the state database's engine (the table comes with migration 0007)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def set(self, endpoint: str, dataset: str, rule: dict[str, Any], by: str) -> RuleOverride:
        """Create or replace the override of (endpoint, dataset); it holds exactly ``rule``'s keys."""
        now, text = time.time(), json.dumps(rule, sort_keys=True)
        try:
            row_id = self._upsert(endpoint, dataset, {"rule": text, "updated_by": by, "updated_at": now})
        except IntegrityError:  # a concurrent first insert of the same scope won: update that row
            row_id = self._upsert(endpoint, dataset, {"rule": text, "updated_by": by, "updated_at": now})
        return RuleOverride(endpoint, dataset, dict(rule), by, now, row_id)

    def _upsert(self, endpoint: str, dataset: str, values: dict[str, Any]) -> int:
        scope = (alert_rules.c.endpoint == endpoint, alert_rules.c.dataset == dataset)
        with self.engine.begin() as connection:
            if not connection.execute(update(alert_rules).where(*scope).values(**values)).rowcount:
                connection.execute(insert(alert_rules).values(endpoint=endpoint, dataset=dataset, **values))
            return int(connection.execute(select(alert_rules.c.id).where(*scope)).scalar_one())

    def overrides(self, endpoint: str | None = None) -> list[RuleOverride]:
        """Every override (or one endpoint's), by endpoint, the endpoint's own rule first."""
        query = select(alert_rules).order_by(alert_rules.c.endpoint, alert_rules.c.dataset)
        if endpoint is not None:
            query = query.where(alert_rules.c.endpoint == endpoint)
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [RuleOverride(r.endpoint, r.dataset, json.loads(r.rule), r.updated_by, r.updated_at, r.id)
                for r in rows]

    def remove(self, endpoint: str, dataset: str) -> bool:
        """Drop an override (the config's rule applies again); ``False`` when there was none."""
        with self.engine.begin() as connection:
            result = connection.execute(
                delete(alert_rules).where(alert_rules.c.endpoint == endpoint, alert_rules.c.dataset == dataset)
            )
            return bool(result.rowcount)
