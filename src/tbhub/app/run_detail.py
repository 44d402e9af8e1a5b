"""What the run page shows of one run: its status with the reason, its scalars (last, best, a
sparkline's worth of points), its event files and its alerts.

Read from the index and the scalar states in the state database (no parsing for the status and
the figures; the hub's parse worker keeps them fresh) and, for the sparklines only, the run's own
event files through ``app.series`` (bounded points, cached by file identity).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from tbhub.app.alerts.rules import rules_config
from tbhub.app.series import SeriesCache, run_series
from tbhub.app.services import Services
from tbhub.app.status import run_statuses
from tbhub.core.models import RunSummary
from tbhub.core.scalars import TagSummary
from tbhub.core.series import SeriesPoints
from tbhub.core.status import StatusVerdict

__all__ = ["SPARK_POINTS", "RunDetail", "ScalarLine", "better_direction", "run_alerts", "run_detail"]

#: Points per sparkline: a 120 px wide line shows no more.
SPARK_POINTS = 120
#: Tags shown on the run page at most (a run with hundreds of tags lists the first ones).
MAX_TAGS = 40

_LOWER = re.compile(r"loss|err|perplex|ppl|wer|cer|mse|mae|rmse|nll|cost|regret|distance", re.IGNORECASE)
_HIGHER = re.compile(r"acc|f1|bleu|rouge|auc|precision|recall|score|reward|return|map|iou|dice|r2", re.IGNORECASE)


def better_direction(tag: str) -> str | None:
    """"min" when lower is better (a loss, an error), "max" when higher is (an accuracy, a
    reward), ``None`` when the name does not say (a learning rate, an epoch)."""
    leaf = tag.rpartition("/")[2]
    if _LOWER.search(leaf):
        return "min"
    if _HIGHER.search(leaf):
        return "max"
    return None


@dataclass(frozen=True, slots=True)
class ScalarLine:
    """One tag of the run: its summary, which way is better, the best value and a thinned series."""

    tag: str
    summary: TagSummary
    direction: str | None
    series: SeriesPoints | None

    @property
    def best(self) -> tuple[float, int] | None:
        """(value, step) of the best finite value, ``None`` when the direction is unknown or no value is finite."""
        s = self.summary
        if self.direction == "min" and s.min_value is not None and s.min_step is not None:
            return s.min_value, s.min_step
        if self.direction == "max" and s.max_value is not None and s.max_step is not None:
            return s.max_value, s.max_step
        return None

    @property
    def finite_last(self) -> bool:
        return math.isfinite(self.summary.last_value)


@dataclass(frozen=True, slots=True)
class RunDetail:
    run: RunSummary
    verdict: StatusVerdict
    scalars: list[ScalarLine]
    more_tags: int  # tags not shown (over ``MAX_TAGS``)


def _tag_order(tag: str) -> tuple[int, str]:
    # Losses and metrics first, then the rest (learning rate, epoch, norms), each by name.
    return (0 if better_direction(tag) else 1, tag)


def run_detail(
    services: Services, run: RunSummary, cache: SeriesCache, *, now_ns: int, sparklines: bool = True
) -> RunDetail:
    """The run's status (under the alert engine's rules, overrides included; with the framework, plan,
    progress, ETA and crash hint its logs show), its scalars and sparklines. Reads only this run's
    scalar states and, for ``sparklines``, its event files."""
    spec = services.spec(run.endpoint)
    verdicts, summaries = run_statuses(services, spec, [run], None, now_ns=now_ns,
                                       alerts=rules_config(services).alerts, parse=False, prune=False)
    verdict, tags = verdicts[run.relpath], summaries.get(run.relpath, {})
    shown = sorted(tags, key=_tag_order)[:MAX_TAGS]
    series = run_series(services, run, set(shown), cache, max_points=SPARK_POINTS) if sparklines else {}
    lines = [ScalarLine(t, tags[t], better_direction(t), series.get(t)) for t in shown]
    return RunDetail(run, verdict, lines, len(tags) - len(shown))


def run_alerts(services: Services, endpoint: str, dataset: str, run: str, limit: int = 50) -> list[dict[str, Any]]:
    """The run's alerts, newest first, each with the outcome of its delivery per channel."""
    state = services.state
    out = []
    for a in state.alerts(limit=limit, run=(endpoint, dataset, run)):
        deliveries = {d["channel"]: d["outcome"] for d in state.deliveries(a.id)}
        out.append({"id": a.id, "status": a.status, "at": a.at, "message": a.message, "deliveries": deliveries})
    return out
