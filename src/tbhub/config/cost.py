"""``[cost]``: storage and compute prices, and ``[cost.endpoints.NAME]`` (``.datasets.GLOB``) for GPUs.

Compute is priced per GPU-hour of a run's busy time (``tbhub.core.cost``). ``gpu_hour`` and ``gpus``
may be set for all endpoints, per endpoint and per dataset glob; the most specific level that sets a key
wins (dataset glob < endpoint < ``[cost]``), the same way as the status rules of ``[alerts]``.
"""

from __future__ import annotations

from pydantic import Field

from tbhub.config.section import Section, rule_levels
from tbhub.config.settings import default
from tbhub.core.cost import CostRule, CostRules

__all__ = ["CostConfig", "CostRuleConfig", "EndpointCostConfig"]


class CostRuleConfig(Section):
    """Compute prices; a key left unset comes from the enclosing level (dataset < endpoint < cost)."""

    gpu_hour: float | None = Field(default=None, ge=0)
    gpus: int | None = Field(default=None, ge=1)

    def over(self, base: CostRule) -> CostRule:
        return CostRule(
            self.gpu_hour if self.gpu_hour is not None else base.gpu_hour,
            self.gpus if self.gpus is not None else base.gpus,
        )


class EndpointCostConfig(CostRuleConfig):
    datasets: dict[str, CostRuleConfig] = Field(default_factory=dict)


class CostConfig(CostRuleConfig):
    """``[cost]``: the storage price, the currency of every price, and the compute prices."""

    storage_per_gb_month: float = Field(default=default("cost.storage_per_gb_month", float), ge=0)
    currency: str = default("cost.currency", str)
    endpoints: dict[str, EndpointCostConfig] = Field(default_factory=dict)

    def rules_for(self, endpoint: str) -> CostRules:
        """The compute prices of ``endpoint``: its default and one per dataset glob."""
        return CostRules(*rule_levels(self, self.endpoints.get(endpoint), CostRule()))
