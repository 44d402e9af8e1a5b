from __future__ import annotations

from tbhub.core.cost import CostRule, CostRules
from tbhub.core.dataset_globs import most_specific
from tbhub.core.retention import RetentionPolicy, RetentionRule
from tbhub.core.status import StatusRule, StatusRules

# "c*l*a*i*m*s*" has 6 literal characters, "claims-*" has 7: wildcards inside a glob are not literal.
GLOBS = ("c*l*a*i*m*s*", "claims-*", "claims-v2")


def test_an_exact_name_then_the_most_literal_characters() -> None:
    rules = [(glob, glob) for glob in GLOBS]
    assert most_specific("claims-v2", rules) == ("claims-v2", "claims-v2")
    assert most_specific("claims-v1", rules) == ("claims-*", "claims-*")
    assert most_specific("cxlxaxixmxs", rules) == ("c*l*a*i*m*s*", "c*l*a*i*m*s*")
    assert most_specific("chat", rules) is None
    assert most_specific("claims-v1", [("claims-?1", 1), ("claims-v?", 2)]) == ("claims-?1", 1)  # a tie: first


def test_status_cost_and_retention_pick_the_same_rule() -> None:
    status = StatusRules(StatusRule(), tuple((g, StatusRule(stalled_after_s=i + 1)) for i, g in enumerate(GLOBS)))
    cost = CostRules(CostRule(), tuple((g, CostRule(gpus=i + 1)) for i, g in enumerate(GLOBS)))
    retention = RetentionPolicy("e", datasets=tuple((g, RetentionRule(keep_last=i + 1)) for i, g in enumerate(GLOBS)))
    for dataset, picked in (("claims-v1", 2), ("claims-v2", 3), ("cxlxaxixmxs", 1)):
        assert status.rule_for(dataset).stalled_after_s == picked
        assert cost.rule_for(dataset).gpus == picked
        assert retention.rule_for(dataset)[1].keep_last == picked
